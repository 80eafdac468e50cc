package adminservice

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"connectrpc.com/connect"

	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/pkg/authn"
)

// Who may call the service remotely.
const (
	// AdminGroup is the nsauth group whose members are administrators
	// (the first-start administrator is one).
	AdminGroup = store.AdminGroup
	// AdminScope is the scope that makes a machine client's token an
	// administrator's (give it with nsauth clients add --scope).
	AdminScope = "nsauth:admin"
)

// Interceptor admits administrators to the service, and puts the
// [Caller] in the context of every call it admits. It runs inside the
// authn interceptor of the server (the one CheckToken is behind), which
// has verified the bearer access token (issued by the built-in provider,
// signed, unexpired, not revoked) and put its claims in the context:
//
//   - no verified token: Unauthenticated (the authn interceptor answers
//     that first, with the same message);
//   - a person's token: admitted when it was issued to nsauth's terminal
//     client (Config.TerminalClientID: not a token an app received), and
//     the user exists, is enabled and is, at the time of the call, in the
//     nsauth group [AdminGroup];
//   - a machine client's token: admitted when it carries [AdminScope] and
//     the client exists and is enabled;
//   - anything else: PermissionDenied, saying what is missing.
func (s *callerRPC) Interceptor() connect.Interceptor { return authorizer{s} }

type authorizer struct{ s *callerRPC }

func (a authorizer) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		c, err := a.s.authorize(ctx)
		if err != nil {
			return nil, err
		}
		resp, err := next(WithCaller(ctx, c), req)
		if d := Detail(err); d != err {
			// The cause of an Internal error, which the caller is not told.
			a.s.cfg.Log.ErrorContext(ctx, "admin call failed", "procedure", req.Spec().Procedure, "actor", c.Actor, "error", d)
		}
		return resp, err
	}
}

func (a authorizer) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

// WrapStreamingHandler refuses: the service has no streaming procedure,
// and none may be reached unauthorized.
func (a authorizer) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		c, err := a.s.authorize(ctx)
		if err != nil {
			return err
		}
		return next(WithCaller(ctx, c), conn)
	}
}

// authorize judges the verified claims in ctx.
func (s *callerRPC) authorize(ctx context.Context) (Caller, error) {
	claims, ok := authn.ClaimsFromContext(ctx)
	if !ok || claims == nil || claims.Subject == "" {
		return Caller{}, connect.NewError(connect.CodeUnauthenticated, errors.New(authn.UnauthenticatedMessage))
	}
	if claims.Machine() {
		return s.authorizeMachine(ctx, claims)
	}
	if id := s.cfg.TerminalClientID; id != "" && claims.ClientID != id {
		return Caller{}, denied(fmt.Sprintf("the token was issued to the app %q; the admin API takes the tokens of nsauth login", claims.ClientID))
	}
	u, err := s.cfg.Store.UserByID(ctx, claims.Subject)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return Caller{}, denied("the token's user no longer exists")
	case err != nil:
		return Caller{}, s.authzError(ctx, err)
	case u.Disabled():
		return Caller{}, denied(fmt.Sprintf("user %q is disabled", u.Username))
	}
	admin, err := s.isAdmin(ctx, u.ID)
	if err != nil {
		return Caller{}, s.authzError(ctx, err)
	}
	if !admin {
		return Caller{}, denied(fmt.Sprintf("user %q is not in the nsauth group %q (nsauth users groups %s --add %s)", u.Username, AdminGroup, u.Username, AdminGroup))
	}
	return Caller{Actor: u.Username, Subject: u.ID}, nil
}

func (s *callerRPC) authorizeMachine(ctx context.Context, claims *authn.Claims) (Caller, error) {
	if !slices.Contains(claims.Scopes, AdminScope) {
		return Caller{}, denied(fmt.Sprintf("the machine client's token lacks the scope %q", AdminScope))
	}
	c, err := s.cfg.Store.MachineClientByID(ctx, claims.ClientID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return Caller{}, denied("the token's machine client no longer exists")
	case err != nil:
		return Caller{}, s.authzError(ctx, err)
	case c.Disabled():
		return Caller{}, denied(fmt.Sprintf("machine client %q is disabled", c.Name))
	}
	return Caller{Actor: "client:" + c.Name, Subject: c.ID, Machine: true}, nil
}

// isAdmin reports whether the user is in AdminGroup now.
func (s *callerRPC) isAdmin(ctx context.Context, userID string) (bool, error) {
	return s.cfg.Store.InGroup(ctx, userID, AdminGroup)
}

func denied(why string) error {
	return connect.NewError(connect.CodePermissionDenied, errors.New("not an nsauth administrator: "+why))
}

func (s *callerRPC) authzError(ctx context.Context, err error) error {
	s.cfg.Log.ErrorContext(ctx, "authorizing an admin call", "error", err)
	return toConnect(err, "caller")
}
