package cli

import (
	"github.com/spf13/cobra"
)

func newCompletionCommand(app *App) *cobra.Command {
	return &cobra.Command{
		Use:   "completion bash|zsh|fish|powershell",
		Short: "Print a shell completion script",
		Long: `Print the completion script for a shell on standard output. Load it in the
current shell, or install it where your shell looks for completions.`,
		Example: `  # bash, this shell only
  source <(nsauth completion bash)
  # bash, for good (Linux)
  nsauth completion bash > ~/.local/share/bash-completion/completions/nsauth

  # zsh: a directory in $fpath
  nsauth completion zsh > "${fpath[1]}/_nsauth"

  # fish
  nsauth completion fish > ~/.config/fish/completions/nsauth.fish`,
		ValidArgs:             []string{"bash", "zsh", "fish", "powershell"},
		DisableFlagsInUseLine: true,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return UsageErrorf("%s needs exactly one shell: bash, zsh, fish or powershell", cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			root, out := cmd.Root(), app.Out
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(out, true)
			case "zsh":
				return root.GenZshCompletion(out)
			case "fish":
				return root.GenFishCompletion(out, true)
			case "powershell":
				return root.GenPowerShellCompletionWithDesc(out)
			}
			return UsageErrorf("unknown shell %q: use bash, zsh, fish or powershell", args[0])
		},
	}
}
