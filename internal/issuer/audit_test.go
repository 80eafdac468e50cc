package issuer_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"golang.org/x/oauth2"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/issuer"
	"github.com/nsauth/nsauth/internal/issuer/issuertest"
)

// failingRecorder stands for a required audit trail that cannot record
// one type of event: Record fails as audit.Auditor does under
// NSAUTH_AUDIT_REQUIRED.
type failingRecorder struct {
	mu   sync.Mutex
	fail audit.Type
}

func (r *failingRecorder) Record(_ context.Context, e audit.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e.Type == r.fail {
		return fmt.Errorf("%w (%s): the database is gone", audit.ErrNotRecorded, e.Type)
	}
	return nil
}

func (r *failingRecorder) Ref(string) string { return "" }

func (r *failingRecorder) set(t audit.Type) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fail = t
}

// TestAuditRequiredFailsTheRequest: an event that cannot be recorded fails
// its request, and nothing is issued: no code from the login page, no
// token from the token endpoint. The client learns no more than "audit
// unavailable".
func TestAuditRequiredFailsTheRequest(t *testing.T) {
	t.Parallel()
	rec := &failingRecorder{}
	h := newHarness(t, sqlite(), func(c *issuer.Config) { c.Audit = rec })

	t.Run("login", func(t *testing.T) {
		rec.set(audit.LoginSucceeded)
		defer rec.set("")
		b := issuertest.NewBrowser(t)
		page := b.Submit(t, b.Open(t, h.authorizeURL(oauth2.GenerateVerifier(), nil)), "alice", alicePassword)
		if page.Response.StatusCode != http.StatusInternalServerError {
			t.Fatalf("login with an unrecordable event: HTTP %d, want 500", page.Response.StatusCode)
		}
	})
	t.Run("code issued", func(t *testing.T) {
		rec.set(audit.CodeIssued)
		defer rec.set("")
		b := issuertest.NewBrowser(t)
		page := b.Submit(t, b.Open(t, h.authorizeURL(oauth2.GenerateVerifier(), nil)), "alice", alicePassword)
		if page.Response.StatusCode != http.StatusInternalServerError {
			t.Fatalf("a code whose issue is unrecordable: HTTP %d, want 500", page.Response.StatusCode)
		}
	})
	for _, typ := range []audit.Type{audit.CodeExchanged, audit.RefreshRotated} {
		t.Run(string(typ), func(t *testing.T) {
			v := oauth2.GenerateVerifier()
			code := h.login(v, nil)
			if typ == audit.CodeExchanged {
				rec.set(typ)
			}
			tr := h.exchange(code, v)
			if typ == audit.RefreshRotated {
				if tr.status != http.StatusOK {
					t.Fatalf("exchange: %d %s", tr.status, tr.Error)
				}
				rec.set(typ)
				tr = h.refresh(tr.RefreshToken)
			}
			rec.set("")
			if tr.Error != "server_error" || tr.AccessToken != "" || tr.RefreshToken != "" {
				t.Fatalf("got %d %s (tokens issued: %v), want server_error and no token", tr.status, tr.Error, tr.AccessToken != "")
			}
			if tr.ErrorDescription != "audit unavailable" || strings.Contains(tr.ErrorDescription, "database") {
				t.Fatalf("the client was told %q", tr.ErrorDescription)
			}
		})
	}
}
