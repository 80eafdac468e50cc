// Package adminservice is nsauth.admin.v1.AdminService: the administration
// of the built-in provider's store (users, groups, one-time links, apps,
// machine clients, federation policies, browser sessions, the audit
// trail) as RPCs. It is the one implementation of every administrative
// act the nsauth commands offer: remotely through a Connect client, and
// offline (the break-glass path) by calling a [Service] in process, since
// its handler methods have the client's signatures.
//
// Who calls is a [Caller] in the context: set by the authorization
// interceptor for remote calls, by the command for in-process ones. Every
// change is audited with the caller as its actor. Errors are *connect.Error
// made here, at the edge; their messages name the fix and never carry a
// secret.
package adminservice

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"connectrpc.com/connect"

	adminv1 "github.com/nsauth/nsauth/gen/nsauth/admin/v1"
	"github.com/nsauth/nsauth/gen/nsauth/admin/v1/adminv1connect"
	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/store"
)

// Config is what a [Service] works with.
type Config struct {
	// Store is the built-in provider's store. Required.
	Store *store.Store
	// Audit records every change. Required.
	Audit audit.Recorder
	// Now is the clock. Required.
	Now func() time.Time
	// Issuer is the provider's URL, for one-time links; empty means the
	// issuer the store was last served under (store.ServedIssuer).
	Issuer string
	// LinkTTL is how long a one-time link stays valid when the request
	// names no lifetime (NSAUTH_LINK_TTL); zero means
	// config.DefaultLinkTTL.
	LinkTTL time.Duration
	// Log receives operational messages; nil discards them.
	Log *slog.Logger
	// TerminalClientID is the client `nsauth login` (the AuthService) logs
	// people in with. A person's token is admitted only when issued to it:
	// a token an app received when an administrator signed in to it
	// carries the server's audience too, and must not administer nsauth.
	// Empty admits a person's token of any client.
	TerminalClientID string
}

// Service implements adminv1connect.AdminServiceHandler (and, for calls in
// process, adminv1connect.AdminServiceClient).
//
// Its RPCs are declared on one type per domain (usersRPC in users.go, ...),
// each embedding the *Service whose config and helpers it uses, and all
// embedded here, so that the Service has them all and no type has too
// many methods (STYLE.md's 30).
type Service struct {
	unimplemented
	cfg Config
	*usersRPC
	*auditRPC
	*callerRPC
	*groupsRPC
	*linksRPC
	*appsRPC
	*clientsRPC
	*federationRPC
	*sessionsRPC
	*factorsRPC
}

// unimplemented answers the RPCs no domain type declares (Unimplemented),
// one level deeper than the domain types, so that theirs win.
type unimplemented struct {
	adminv1connect.UnimplementedAdminServiceHandler
}

// The domain types: each embeds the *Service it belongs to. A domain's
// file declares its RPCs and helpers on its type (func (s *groupsRPC)
// ListGroups...), reaching the config and the shared helpers through the
// embedded *Service.
type (
	usersRPC      struct{ *Service } // users.go
	auditRPC      struct{ *Service } // audit.go
	callerRPC     struct{ *Service } // auth.go, whoami.go
	groupsRPC     struct{ *Service } // groups.go
	linksRPC      struct{ *Service } // links.go
	appsRPC       struct{ *Service } // apps.go
	clientsRPC    struct{ *Service } // clients.go
	federationRPC struct{ *Service } // federation.go
	sessionsRPC   struct{ *Service } // sessions.go
	factorsRPC    struct{ *Service } // factors.go
)

var (
	_ adminv1connect.AdminServiceHandler = (*Service)(nil)
	_ adminv1connect.AdminServiceClient  = (*Service)(nil)
)

// New returns the service.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Audit == nil || cfg.Now == nil {
		return nil, errors.New("adminservice: a store, an audit recorder and a clock are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	s := &Service{cfg: cfg}
	s.usersRPC, s.auditRPC, s.callerRPC = &usersRPC{s}, &auditRPC{s}, &callerRPC{s}
	s.groupsRPC, s.linksRPC, s.appsRPC = &groupsRPC{s}, &linksRPC{s}, &appsRPC{s}
	s.clientsRPC, s.federationRPC, s.sessionsRPC = &clientsRPC{s}, &federationRPC{s}, &sessionsRPC{s}
	s.factorsRPC = &factorsRPC{s}
	return s, nil
}

// Caller is who makes a call: the actor the audit trail names.
type Caller struct {
	// Actor names the caller in audit records: a username, "client:NAME"
	// for a machine client, or the operating-system user of an offline
	// command.
	Actor string
	// Subject is the token's subject (empty offline).
	Subject string
	// Machine is whether the caller is a machine client.
	Machine bool
	// Offline is whether the call runs in process from a command with
	// store access (the break-glass path).
	Offline bool
}

type callerKey struct{}

// WithCaller returns ctx carrying c.
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFrom returns the caller ctx carries.
func CallerFrom(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(Caller)
	return c, ok
}

// record audits e with the caller as its actor. It is called once the
// change is made: its error (a *connect.Error, Internal) says so, for the
// caller to return as is.
func (s *Service) record(ctx context.Context, e audit.Event) error {
	c, _ := CallerFrom(ctx)
	e.Actor = c.Actor
	if err := s.cfg.Audit.Record(ctx, e); err != nil {
		s.cfg.Log.ErrorContext(ctx, "an admin change was made but its audit event was not recorded", "type", e.Type, "actor", e.Actor, "error", err)
		return connect.NewError(connect.CodeInternal, internalError{msg: "the change was made, but its audit event was not recorded", cause: err})
	}
	return nil
}

// Procedures lists the service's procedures ("/nsauth.admin.v1.AdminService/ListUsers", ...),
// for rate limits.
func Procedures() []string {
	methods := adminv1.File_nsauth_admin_v1_admin_proto.Services().ByName("AdminService").Methods()
	out := make([]string, 0, methods.Len())
	for i := range methods.Len() {
		out = append(out, "/"+adminv1connect.AdminServiceName+"/"+string(methods.Get(i).Name()))
	}
	return out
}
