// Command zitadelop is an OpenID provider that nsauth did not write, for
// the interoperability tests of the device authorization grant (RFC 8628):
// zitadel/oidc's example provider (example/server/exampleop and
// example/server/storage, as published) with one confidential client
// registered for the device grant (or, with -client web, one without it).
//
//	ZITADELOP_CLIENT_SECRET=… zitadelop -listen 127.0.0.1:0 -client-id nsauth-cli -access-token opaque
//
// It prints one line, "issuer <URL>", on stdout once it accepts
// connections (with -listen on port 0 that is how the caller learns the
// port), logs requests (method and path only) on stderr, and stops on
// SIGINT or SIGTERM.
//
// With -client web, -redirect-uri (repeatable) registers the client's
// redirect URIs instead of the example's http://localhost:9999/auth/callback:
// the connector tests make it an upstream of nsauth's provider, whose
// callback is ISSUER/login/connector/NAME/callback.
//
// The example's users log in on its pages: test-user@<issuer host> with
// the password verysecure. The user side of the device flow is the
// example's pages under /device: enter the user code, log in, then allow
// (/device/confirm?action=allowed) or deny (action=denied).
//
// Two adjustments to the example, each for a quirk documented where it
// is handled: the client's access-token type is chosen (the example's
// device client always issues opaque tokens), and a user's ID is their
// username (the example's device pages record the username as the
// subject).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// clientSecretEnv holds the client's secret, kept off the command line
// where any local user's ps would show it.
const clientSecretEnv = "ZITADELOP_CLIENT_SECRET"

// Values of -access-token.
const (
	accessTokenOpaque = "opaque"
	accessTokenJWT    = "jwt"
)

// Values of -client: which of the example's clients is registered.
const (
	// clientDevice is storage.DeviceClient: the device grant only.
	clientDevice = "device"
	// clientWeb is storage.WebClient: the code, refresh and token-exchange
	// grants and no device grant, so the provider refuses its device
	// logins (unauthorized_client).
	clientWeb = "web"
)

// config is what the command line and the environment choose.
type config struct {
	// Listen is the TCP address to listen on; port 0 picks a free port.
	Listen string
	// Issuer is the issuer URL. Empty means http://<the listening address>.
	Issuer string
	// ClientID and ClientSecret are the device client's credentials
	// (client_secret_basic).
	ClientID, ClientSecret string
	// AccessToken is accessTokenOpaque (the example's default: checked by
	// introspection) or accessTokenJWT.
	AccessToken string
	// Client is clientDevice or clientWeb.
	Client string
	// RedirectURIs are the web client's redirect URIs; empty means the
	// example's default.
	RedirectURIs []string
}

func parseConfig(args []string, getenv func(string) string, errOut io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("zitadelop", flag.ContinueOnError)
	fs.SetOutput(errOut)
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:0", "TCP address to listen on")
	fs.StringVar(&cfg.Issuer, "issuer", "", "issuer URL (default: http://<listening address>)")
	fs.StringVar(&cfg.ClientID, "client-id", "nsauth-cli", "the device client's ID; its secret is $"+clientSecretEnv)
	fs.StringVar(&cfg.AccessToken, "access-token", accessTokenOpaque, "access tokens the client gets: opaque or jwt")
	fs.StringVar(&cfg.Client, "client", clientDevice, "the example's client to register: device (the device grant) or web (no device grant)")
	fs.Func("redirect-uri", "a redirect URI of the web client (repeatable; default: the example's)", func(v string) error {
		cfg.RedirectURIs = append(cfg.RedirectURIs, v)
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	cfg.ClientSecret = getenv(clientSecretEnv)
	if cfg.ClientSecret == "" {
		return config{}, fmt.Errorf("$%s is not set", clientSecretEnv)
	}
	if cfg.ClientID == "" {
		return config{}, errors.New("-client-id is empty")
	}
	if cfg.AccessToken != accessTokenOpaque && cfg.AccessToken != accessTokenJWT {
		return config{}, fmt.Errorf("-access-token %q: want %s or %s", cfg.AccessToken, accessTokenOpaque, accessTokenJWT)
	}
	if cfg.Client != clientDevice && cfg.Client != clientWeb {
		return config{}, fmt.Errorf("-client %q: want %s or %s", cfg.Client, clientDevice, clientWeb)
	}
	if len(cfg.RedirectURIs) > 0 && cfg.Client != clientWeb {
		return config{}, errors.New("-redirect-uri is for -client web only (the device client has none)")
	}
	return cfg, nil
}

// deviceClient is one of the example's clients with a chosen access-token
// type: storage.DeviceClient always issues opaque tokens, and its fields
// are not exported.
type deviceClient struct {
	*storage.Client
	accessTokenType op.AccessTokenType
}

func (c deviceClient) AccessTokenType() op.AccessTokenType { return c.accessTokenType }

// store is the example's storage, handing out deviceClient for the
// registered client (the example storage looks clients up in its own map
// and checks their secrets there, so the client is registered in that map
// too).
type store struct {
	*storage.Storage
	client deviceClient
}

func (s store) GetClientByClientID(ctx context.Context, clientID string) (op.Client, error) {
	if clientID == s.client.GetID() {
		return s.client, nil
	}
	return s.Storage.GetClientByClientID(ctx, clientID)
}

// usersByName is the example's users with their usernames as their IDs,
// so that every token names a user by the same subject. The example's
// device pages complete an authorization with the username as the subject
// (exampleop/device.go) while its storage looks subjects up by ID: with
// the example's IDs, a device login's ID token could not be made.
type usersByName struct {
	storage.UserStore
}

func (u usersByName) GetUserByID(id string) *storage.User { return u.GetUserByUsername(id) }

func (u usersByName) GetUserByUsername(username string) *storage.User {
	user := u.UserStore.GetUserByUsername(username)
	if user == nil {
		return nil
	}
	renamed := *user
	renamed.ID = renamed.Username
	return &renamed
}

// run serves the provider until ctx ends.
func run(ctx context.Context, cfg config, out, errOut io.Writer) error {
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	defer ln.Close()
	issuer := cfg.Issuer
	if issuer == "" {
		issuer = "http://" + ln.Addr().String()
	}

	tokenType := op.AccessTokenTypeBearer
	if cfg.AccessToken == accessTokenJWT {
		tokenType = op.AccessTokenTypeJWT
	}
	client := storage.DeviceClient(cfg.ClientID, cfg.ClientSecret)
	if cfg.Client == clientWeb {
		client = storage.WebClient(cfg.ClientID, cfg.ClientSecret, cfg.RedirectURIs...)
	}
	st := store{
		Storage: storage.NewStorageWithClients(usersByName{storage.NewUserStore(issuer)}, map[string]*storage.Client{cfg.ClientID: client}),
		client:  deviceClient{Client: client, accessTokenType: tokenType},
	}
	logger := slog.New(slog.NewTextHandler(errOut, &slog.HandlerOptions{Level: slog.LevelInfo}))
	srv := &http.Server{
		Handler:           exampleop.SetupServer(issuer, st, logger, false),
		ReadHeaderTimeout: 10 * time.Second,
	}

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	if _, err := fmt.Fprintf(out, "issuer %s\n", issuer); err != nil {
		return err
	}
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(shutdownCtx)
}

func main() {
	cfg, err := parseConfig(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "zitadelop:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "zitadelop:", err)
		os.Exit(1)
	}
}
