package issuer

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/store"
)

// Until branch mfa's second-factor step is merged: the end of a login
// (its completeLogin), and no passkey second factor. This file goes with
// that merge.

func (i *Issuer) completeLogin(w http.ResponseWriter, r *http.Request, ar *store.AuthRequest, user *store.User, amr []string, csrf string) {
	ctx := r.Context()
	if isDeviceLogin(ar) {
		i.showDeviceApproval(w, ctx, ar, user, amr, csrf)
		return
	}
	if err := i.st.InsertCompletedAuthRequest(ctx, ar, user.ID, amr, CodeTTL+time.Minute); err != nil {
		if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
			i.message(w, http.StatusBadRequest, "Sign in", msgExpired)
			return
		}
		i.log.ErrorContext(ctx, "completing an auth request failed", "error", err)
		i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
		return
	}
	code := store.RandomToken(32)
	if err := i.storage.SaveAuthCode(ctx, ar.ID, code); err != nil {
		i.log.ErrorContext(ctx, "storing a code failed", "error", err)
		i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
		return
	}
	if err := i.record(ctx, audit.Event{Type: audit.CodeIssued, Subject: user.ID, Username: user.Username, ClientID: ar.ClientID,
		Refs: i.refs(audit.RefCode, code, audit.RefGrant, ar.ID)}); err != nil {
		i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
		return
	}
	target, err := op.AuthResponseURL(ar.RedirectURI, oidc.ResponseTypeCode, oidc.ResponseModeQuery,
		&op.CodeResponseType{Code: code, State: ar.State}, oidc.NewEncoder())
	if err != nil {
		i.log.ErrorContext(ctx, "building the redirect failed", "error", err)
		i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
		return
	}
	i.log.InfoContext(ctx, "login", "username", user.Username, "client_id", ar.ClientID)
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, target, http.StatusSeeOther)
}

func (i *Issuer) beginSecondFactor(context.Context, *store.AuthRequest) (any, error) {
	return nil, store.ErrNotFound
}

func (i *Issuer) finishSecondFactor(w http.ResponseWriter, _ *http.Request, _ *store.AuthRequest, _, _, _ string) {
	i.message(w, http.StatusBadRequest, "Sign in", msgExpired)
}
