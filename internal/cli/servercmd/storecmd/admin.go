package storecmd

import (
	"context"
	"errors"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/pflag"

	"github.com/nsauth/nsauth/gen/nsauth/admin/v1/adminv1connect"
	"github.com/nsauth/nsauth/internal/adminservice"
	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/cli"
	"github.com/nsauth/nsauth/internal/cli/session"
	"github.com/nsauth/nsauth/internal/store"
)

// remoteFlags are the flags of the remote path, on the command group.
type remoteFlags struct {
	fs      *pflag.FlagSet
	session session.Options
}

// RegisterRemoteFlags adds to fs (the command group's persistent flags,
// beside config.RegisterStoreFlags) what makes [Command.Admin] call the
// admin API of a running server instead of opening the store: --api-url,
// and the terminal client's --config-dir, --account and
// --insecure-allow-http, which find the login `nsauth login --api-url`
// stored.
func (o *Command) RegisterRemoteFlags(fs *pflag.FlagSet) {
	o.remote = &remoteFlags{fs: fs}
	fs.StringVar(&o.remote.session.APIURL, "api-url", "", "administer the server at this URL through its admin API, as the user nsauth login --api-url logged in (instead of opening the store: no --data-dir or --database-url)")
	fs.StringVar(&o.remote.session.ConfigDir, "config-dir", "", "with --api-url: where nsauth login stored its tokens (default: the nsauth directory in your user configuration directory)")
	fs.StringVar(&o.remote.session.Account, "account", "", "with --api-url: the account to act as, by its name or ID as nsauth accounts shows them (default: the active account)")
	fs.BoolVar(&o.remote.session.InsecureAllowHTTP, "insecure-allow-http", false, "with --api-url: allow plain http:// to a server other than this machine")
}

// Remote reports whether the command was given --api-url.
func (o *Command) Remote() bool {
	return o.remote != nil && o.remote.fs.Changed("api-url")
}

// Admin runs fn with an AdminService client: the remote service when the
// command was given --api-url (and no store flags), else the service in
// process over the store the flags point at, with the operating-system
// user as the actor (the break-glass path). Commands that administer
// through the AdminService call this instead of WithStore, so that each
// administrative act has one implementation.
//
// fn's *connect.Error become what the command prints: the service's
// message alone (an invalid argument is a usage error), or for a remote
// call that did not reach the service, what went wrong.
func (o *Command) Admin(ctx context.Context, fn func(context.Context, adminv1connect.AdminServiceClient) error) error {
	if o.Remote() {
		return o.remoteAdmin(ctx, fn)
	}
	if o.remote != nil {
		for _, name := range []string{"config-dir", "account"} {
			if o.remote.fs.Changed(name) {
				return cli.UsageErrorf("--%s goes with --api-url (the admin API of a running server); without it the command opens the store", name)
			}
		}
	}
	return o.WithStore(ctx, func(ctx context.Context, st *store.Store) error {
		now := o.App.Now
		if now == nil {
			now = time.Now
		}
		svc, err := adminservice.New(adminservice.Config{Store: st, Audit: o.audit, Now: now, LinkTTL: o.linkTTL})
		if err != nil {
			return err
		}
		who := o.OSUser
		if who == nil {
			who = audit.OSUser
		}
		return adminError(fn(adminservice.WithCaller(ctx, adminservice.Caller{Actor: who(), Offline: true}), svc), nil)
	})
}

// OfflineOnly refuses --api-url for a command (or a flag of one) that
// works only on the store: what names it.
func (o *Command) OfflineOnly(what string) error {
	if o.Remote() {
		return cli.UsageErrorf("%s works only on the store (--data-dir or --database-url), not through --api-url", what)
	}
	return nil
}

func (o *Command) remoteAdmin(ctx context.Context, fn func(context.Context, adminv1connect.AdminServiceClient) error) error {
	for _, name := range []string{"data-dir", "database-url"} {
		if f := o.remote.fs.Lookup(name); f != nil && f.Changed {
			return cli.UsageErrorf("--api-url and --%s do not go together: --api-url administers a running server through its admin API, --%s opens its store", name, name)
		}
	}
	opts := o.remote.session
	if err := opts.Resolve(o.App.Getenv); err != nil {
		return err
	}
	deps := session.NewDeps(o.App)
	b := &bearer{deps: deps, opts: opts}
	if err := b.token(ctx); err != nil {
		return err
	}
	client := adminv1connect.NewAdminServiceClient(deps.HTTPClient, opts.APIURL, connect.WithInterceptors(b))
	return adminError(fn(ctx, client), func(err error) string { return deps.DescribeError(opts.APIURL, err) })
}

// bearer sends the stored login's access token with every call, and when
// the server refuses it, forgets it and tries once more with a refreshed
// one (as nsauth whoami does).
type bearer struct {
	deps    session.Deps
	opts    session.Options
	account string
	access  string
}

func (b *bearer) token(ctx context.Context) error {
	tok, account, err := b.deps.Token(ctx, b.opts, 0)
	if err != nil {
		return err
	}
	b.access, b.account = tok.AccessToken, account.ID
	return nil
}

func (b *bearer) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		req.Header().Set("Authorization", "Bearer "+b.access)
		resp, err := next(ctx, req)
		if connect.CodeOf(err) != connect.CodeUnauthenticated {
			return resp, err
		}
		canRefresh, rerr := b.deps.RefusedAccessToken(ctx, b.opts, b.account, b.access)
		if rerr != nil || !canRefresh {
			return resp, err
		}
		if rerr := b.token(ctx); rerr != nil {
			return nil, rerr
		}
		req.Header().Set("Authorization", "Bearer "+b.access)
		return next(ctx, req)
	}
}

func (b *bearer) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		conn.RequestHeader().Set("Authorization", "Bearer "+b.access)
		return conn
	}
}

func (b *bearer) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// adminError is what a command prints of err from the admin service: its
// message (a *connect.Error's code is for programs), a usage error for an
// invalid argument, the cause of an internal error in process; for a
// remote call (describe set) that never reached the service, describe's
// account of it (but the service's own Unavailable, its database
// unreachable, is its message).
func adminError(err error, describe func(error) string) error {
	var ce *connect.Error
	if err == nil || !errors.As(err, &ce) || error(ce) != err {
		return err
	}
	if d := adminservice.Detail(err); d != err {
		return d
	}
	switch ce.Code() {
	case connect.CodeInvalidArgument:
		return cli.UsageErrorf("%s", ce.Message())
	case connect.CodeUnavailable, connect.CodeUnknown, connect.CodeDeadlineExceeded, connect.CodeCanceled, connect.CodeUnimplemented:
		// The server's own Unavailable (its database cannot be reached)
		// says why; a call that never reached it is described.
		serverSaid := ce.Code() == connect.CodeUnavailable && connect.IsWireError(ce) && ce.Message() != ""
		if describe != nil && !serverSaid {
			return errors.New(describe(err))
		}
	}
	return errors.New(ce.Message())
}
