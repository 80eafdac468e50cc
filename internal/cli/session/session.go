package session

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/oauth2"

	mgmtv1alpha1 "github.com/nsauth/nsauth/gen/mgmt/v1alpha1"
	"github.com/nsauth/nsauth/gen/mgmt/v1alpha1/mgmtv1alpha1connect"
	"github.com/nsauth/nsauth/pkg/tokensource"
	"github.com/nsauth/nsauth/pkg/tokenstore"
)

// What the client commands remember of a session the server refused, and
// what they say about it. A refused session must not be handed out again:
// `nsauth token` would print a token that only fails later, and status
// would call it a login.

// sessionTimeout bounds waiting for the token lock to record a refusal, and
// asking the server whether authentication is enabled.
const sessionTimeout = 10 * time.Second

// RefusedError says that the server refused the stored session.
func RefusedError(apiURL string) error {
	return fmt.Errorf("the server refused your session; %s", LoginHint(apiURL))
}

// authDisabledError says that apiURL needs no login at all.
func authDisabledError(apiURL string) error {
	return fmt.Errorf("authentication is disabled on %s: requests need no token, and there is nothing to log in to", apiURL)
}

// Token returns a usable access token for c, and the account it belongs
// to, refreshing it if it has less than margin left (see
// tokensource.Config.Margin). When there is none it says why: apiURL is
// not an API server, --account names no account (a usage error), none is
// active, the server refused the session (now, which is recorded, or
// before), authentication is disabled there, or a login is needed.
func (d Deps) Token(ctx context.Context, c Options, margin time.Duration) (*oauth2.Token, tokenstore.Account, error) {
	var none tokenstore.Account
	store, err := d.Store(c.ConfigDir)
	if err != nil {
		return nil, none, err
	}
	if err := CheckAccountFlag(store, c); err != nil {
		return nil, none, err
	}
	ts, err := d.tokenSource(c, margin)
	if err != nil {
		return nil, none, err
	}
	refreshes := d.Exchanges.called(mgmtv1alpha1connect.AuthServiceRefreshCliProcedure)
	tok, err := ts.TokenContext(ctx)
	if err == nil {
		return tok, ts.Account(), nil
	}
	if s := d.Exchanges.Diagnosis(c.APIURL); s != "" {
		return nil, none, errors.New(s)
	}
	if errors.Is(err, tokenstore.ErrNoActiveAccount) {
		return nil, none, NoActiveAccountError(store, c.APIURL)
	}
	if !errors.Is(err, tokensource.ErrLoginRequired) {
		return nil, none, fmt.Errorf("%w; try again later, or %s", err, LoginHint(c.APIURL))
	}
	// The account the source read, if it got that far.
	account := cmp.Or(ts.Account().ID, c.Account)
	// tokensource asks for a login after calling RefreshCli only when the
	// server refused the refresh token. It forgets that token; the access
	// token, which may look fresh, must go too.
	if d.Exchanges.called(mgmtv1alpha1connect.AuthServiceRefreshCliProcedure) > refreshes {
		if err := d.recordRefusal(ctx, store, c.APIURL, account, func(e *tokenstore.Entry) bool { return e.RefreshToken == "" }); err != nil {
			return nil, none, err
		}
		return nil, none, RefusedError(c.APIURL)
	}
	if e, lerr := store.LoadAccountMetadata(c.APIURL, account); lerr == nil && e.Refused() {
		return nil, none, RefusedError(c.APIURL)
	}
	// Nothing usable is stored. Before sending anyone to log in, check that
	// there is something to log in to.
	if enabled, known := d.authEnabled(ctx, c.APIURL); known && !enabled {
		return nil, none, authDisabledError(c.APIURL)
	}
	if s := d.Exchanges.Diagnosis(c.APIURL); s != "" {
		return nil, none, errors.New(s)
	}
	return nil, none, fmt.Errorf("%w; %s", err, LoginHint(c.APIURL))
}

// authEnabled asks apiURL whether it has authentication enabled; known is
// false when it could not tell.
func (d Deps) authEnabled(ctx context.Context, apiURL string) (enabled, known bool) {
	ctx, cancel := context.WithTimeout(ctx, sessionTimeout)
	defer cancel()
	resp, err := d.AuthClient(apiURL).GetAuthStatus(ctx, connect.NewRequest(&mgmtv1alpha1.GetAuthStatusRequest{}))
	if err != nil {
		return false, false
	}
	return resp.Msg.GetIsEnabled(), true
}

// RefusedAccessToken handles CheckToken's refusal of accessToken. With a
// refresh token stored, the access token alone is forgotten and canRefresh
// is true: a refresh may still work. Without one the session is over and
// recorded as refused. An entry that no longer holds accessToken (another
// process refreshed or logged in meanwhile) is left alone, with canRefresh
// true.
func (d Deps) RefusedAccessToken(ctx context.Context, c Options, account, accessToken string) (canRefresh bool, err error) {
	store, err := d.Store(c.ConfigDir)
	if err != nil {
		return false, err
	}
	canRefresh = true
	err = d.updateEntry(ctx, store, c.APIURL, account, func(e *tokenstore.Entry) bool {
		if e.AccessToken != accessToken {
			return false
		}
		if e.RefreshToken != "" {
			e.AccessToken, e.Expiry = "", time.Time{}
		} else {
			canRefresh = false
			e.MarkRefused(d.Now())
		}
		return true
	})
	return canRefresh, err
}

// recordRefusal marks the entry of apiURL's account (an ID, or empty for
// the active one) refused if stillRefused says it is still the refused one.
func (d Deps) recordRefusal(ctx context.Context, store *tokenstore.Store, apiURL, account string, stillRefused func(*tokenstore.Entry) bool) error {
	return d.updateEntry(ctx, store, apiURL, account, func(e *tokenstore.Entry) bool {
		if e.Refused() || !stillRefused(e) {
			return false
		}
		e.MarkRefused(d.Now())
		return true
	})
}

// updateEntry changes the entry of apiURL's account (as for
// recordRefusal) under the server's lock; change reports whether there is
// anything to save. A missing entry is left missing.
func (d Deps) updateEntry(ctx context.Context, store *tokenstore.Store, apiURL, account string, change func(*tokenstore.Entry) bool) error {
	ctx, cancel := context.WithTimeout(ctx, sessionTimeout)
	defer cancel()
	unlock, err := store.Lock(ctx, apiURL)
	if err != nil {
		return fmt.Errorf("recording the server's refusal: %w", err)
	}
	defer unlock()
	e, err := store.LoadAccount(apiURL, account)
	switch {
	case errors.Is(err, tokenstore.ErrNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("recording the server's refusal: %w", err)
	}
	if !change(e) {
		return nil
	}
	if err := store.Save(e); err != nil {
		return fmt.Errorf("recording the server's refusal: %w", err)
	}
	return nil
}
