package web_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/nsauth/nsauth/internal/issuer/web"
)

const origin = "https://id.example"

func TestGuard(t *testing.T) {
	t.Parallel()
	token := strings.Repeat("A", 43) // what store.RandomToken(32) spells
	for _, tc := range []struct {
		name       string
		kind       web.Kind
		body       string
		header     map[string]string
		cookie     string
		refuseErr  error
		wantStatus int
		wantReason string // "" for a post let through
	}{
		{name: "same origin", body: "csrf=" + token, header: map[string]string{"Origin": origin, "Sec-Fetch-Site": "same-origin"}, cookie: token, wantStatus: http.StatusOK},
		{name: "no browser headers", body: "csrf=" + token, cookie: token, wantStatus: http.StatusOK},
		{name: "the issuer's origin behind a proxy that rewrote Host", body: "csrf=" + token, header: map[string]string{"Origin": origin}, cookie: token, wantStatus: http.StatusOK},
		{name: "another origin", body: "csrf=" + token, header: map[string]string{"Origin": "https://evil.example"}, cookie: token, wantStatus: http.StatusForbidden, wantReason: web.ReasonCSRF},
		{name: "Origin null", body: "csrf=" + token, header: map[string]string{"Origin": "null", "Sec-Fetch-Site": "same-origin"}, cookie: token, wantStatus: http.StatusForbidden, wantReason: web.ReasonCSRF},
		{name: "cross-site fetch", body: "csrf=" + token, header: map[string]string{"Sec-Fetch-Site": "cross-site"}, cookie: token, wantStatus: http.StatusForbidden, wantReason: web.ReasonCSRF},
		{name: "same-site fetch", body: "csrf=" + token, header: map[string]string{"Sec-Fetch-Site": "same-site"}, cookie: token, wantStatus: http.StatusForbidden, wantReason: web.ReasonCSRF},
		{name: "no token", body: "x=1", cookie: token, wantStatus: http.StatusForbidden, wantReason: web.ReasonCSRF},
		{name: "no cookie", body: "csrf=" + token, wantStatus: http.StatusForbidden, wantReason: web.ReasonCSRF},
		{name: "another token", body: "csrf=" + strings.Repeat("B", 43), cookie: token, wantStatus: http.StatusForbidden, wantReason: web.ReasonCSRF},
		{name: "oversize form", body: "csrf=" + token + "&x=" + strings.Repeat("a", 2048), cookie: token, wantStatus: http.StatusRequestEntityTooLarge, wantReason: web.ReasonTooLarge},
		{name: "malformed form", body: "csrf=" + token + "&%zz", cookie: token, wantStatus: http.StatusBadRequest, wantReason: web.ReasonBadForm},
		{name: "JSON", kind: web.JSONPost, body: `{}`, header: map[string]string{"X-CSRF-Token": token}, cookie: token, wantStatus: http.StatusOK},
		{name: "JSON without the header", kind: web.JSONPost, body: `{}`, cookie: token, wantStatus: http.StatusForbidden, wantReason: web.ReasonCSRF},
		{name: "oversize JSON", kind: web.JSONPost, body: `{"a":"` + strings.Repeat("a", 2048) + `"}`, header: map[string]string{"X-CSRF-Token": token}, cookie: token,
			wantStatus: http.StatusRequestEntityTooLarge, wantReason: web.ReasonTooLarge},
		{name: "a refusal whose event was not recorded", body: "x=1", cookie: token, refuseErr: errors.New("audit down"),
			wantStatus: http.StatusInternalServerError, wantReason: web.ReasonCSRF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var refusals []web.Refusal
			g := web.NewGuard(origin, web.CSRF{}, web.Renderer{}, func(_ *http.Request, x web.Refusal) error {
				refusals = append(refusals, x)
				return tc.refuseErr
			})
			var sawToken string
			h := g.Wrap(web.Form{Kind: tc.kind, Limit: 1024, Title: "Sign in"}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				sawToken = web.Token(r)
			}))
			req := httptest.NewRequest(http.MethodPost, "http://proxy.internal/login", strings.NewReader(tc.body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tc.kind == web.JSONPost {
				req.Header.Set("Content-Type", "application/json")
			}
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			if tc.cookie != "" {
				req.AddCookie(&http.Cookie{Name: web.CSRF{}.Name(), Value: tc.cookie})
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.wantStatus {
				t.Errorf("HTTP %d, want %d", rec.Code, tc.wantStatus)
			}
			switch {
			case tc.wantReason == "" && (len(refusals) != 0 || sawToken != token):
				t.Errorf("refusals %v, handler saw token %q: want the post let through with the cookie's token", refusals, sawToken)
			case tc.wantReason != "" && (len(refusals) != 1 || refusals[0].Reason != tc.wantReason || sawToken != ""):
				t.Errorf("refusals %v, handler ran %v: want one %s refusal and no handler", refusals, sawToken != "", tc.wantReason)
			}
		})
	}
}
