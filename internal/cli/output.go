package cli

import (
	"fmt"

	"github.com/spf13/cobra"
)

// outputFormat is the value of --output.
type outputFormat string

const (
	outputText outputFormat = "text"
	outputJSON outputFormat = "json"
)

// addOutputFlag binds --output (-o) to p, which starts as text; the flag
// takes only text or json.
func addOutputFlag(cmd *cobra.Command, p *outputFormat) {
	*p = outputText
	cmd.Flags().VarP(p, "output", "o", "output format: text or json")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"text", "json"}, cobra.ShellCompDirectiveNoFileComp))
}

// Set takes an --output value: text or json.
func (f *outputFormat) Set(s string) error {
	switch v := outputFormat(s); v {
	case outputText, outputJSON:
		*f = v
		return nil
	}
	return fmt.Errorf("--output %q is not text or json", s)
}

func (f *outputFormat) String() string { return string(*f) }

// Type names the flag's value in help.
func (f *outputFormat) Type() string { return "format" }
