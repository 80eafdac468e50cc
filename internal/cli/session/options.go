package session

import (
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/nsauth/nsauth/internal/cli/cliapp"
	"github.com/nsauth/nsauth/pkg/tokenstore"
)

// DefaultAPIURL is the API URL when neither --api-url nor the environment
// names one; it is Neosync's default too.
const DefaultAPIURL = "http://localhost:8080"

// apiURLEnv lists the environment variables that name the API URL, in order
// of preference. NEOSYNC_API_URL is the original CLI's.
var apiURLEnv = []string{"NSAUTH_API_URL", "NEOSYNC_API_URL"}

// Options are the settings every client command shares.
type Options struct {
	// APIURL is the server, normalized by resolve.
	APIURL string
	// ConfigDir holds the token files.
	ConfigDir string
	// InsecureAllowHTTP permits plain HTTP to a remote server.
	InsecureAllowHTTP bool
	// Account is the account to use, by name or ID (--account, for the
	// commands that take it); empty means the server's active account.
	Account string
	// NoStore is set before resolve by commands run with machine
	// credentials, which read and write no token file: ConfigDir stays
	// empty, and a machine without a configuration directory (a CI
	// container without $HOME) is no error.
	NoStore bool
}

// AddFlags adds the flags every client command shares: --api-url,
// --config-dir and --insecure-allow-http.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.APIURL, "api-url", "", "the API server's URL (default "+DefaultAPIURL+") [$"+strings.Join(apiURLEnv, ", $")+"]")
	fs.StringVar(&o.ConfigDir, "config-dir", "", "where tokens are stored (default: the nsauth directory in your user configuration directory) [$"+tokenstore.DirEnv+"]")
	fs.BoolVar(&o.InsecureAllowHTTP, "insecure-allow-http", false, "allow plain http:// to a server other than this machine (tokens cross the network unencrypted)")
}

// AddAccountFlag adds --account, for the commands that act on one account.
func (o *Options) AddAccountFlag(app *cliapp.App, cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.Account, "account", "", "the account to use, by its name or ID as nsauth accounts shows them (default: the active account)")
	_ = cmd.RegisterFlagCompletionFunc("account", CompleteAccounts(app, o))
}

// Resolve fills unset options from the environment and defaults, and checks
// them. Mistakes are usage errors.
func (o *Options) Resolve(getenv func(string) (string, bool)) error {
	raw := o.APIURL
	for _, name := range apiURLEnv {
		if raw != "" {
			break
		}
		if v, ok := getenv(name); ok {
			raw = strings.TrimSpace(v)
		}
	}
	if raw == "" {
		raw = DefaultAPIURL
	}
	u, err := tokenstore.NormalizeAPIURL(raw)
	if err != nil {
		return &cliapp.UsageError{Err: err}
	}
	if err := tokenstore.CheckTransport(u, o.InsecureAllowHTTP); err != nil {
		return &cliapp.UsageError{Err: err}
	}
	o.APIURL = u
	if o.ConfigDir == "" && !o.NoStore {
		if o.ConfigDir, err = tokenstore.DefaultDir(getenv); err != nil {
			return err
		}
	}
	return nil
}
