package issuer_test

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/nsauth/nsauth/internal/issuer"
	"github.com/nsauth/nsauth/internal/issuer/issuertest"
	"github.com/nsauth/nsauth/internal/store"
)

// msgLinkEnrolled is what the last page of an enrolment link's flow says.
const msgLinkEnrolled = "Your second factor is set up."

// enrolLink makes an enrolment link for alice, valid for an hour, as
// nsauth users enrol-link does, and returns its URL.
func (h *harness) enrolLink() string {
	h.t.Helper()
	token := store.RandomToken(32)
	if err := h.st.CreateEnrolLink(ctx, h.alice.ID, token, h.clock.Now().Add(time.Hour)); err != nil {
		h.t.Fatal(err)
	}
	return h.url + issuer.EnrolLinkPath + "?link=" + url.QueryEscape(token)
}

// openLink opens an enrolment link in b and fails unless its password form
// follows.
func (h *harness) openLink(b *issuertest.Browser, link string) *issuertest.Page {
	h.t.Helper()
	page := b.Open(h.t, link)
	if page.Response.StatusCode != http.StatusOK || page.Form.Get("link") == "" || page.Form.Get("csrf") == "" {
		h.t.Fatalf("the enrolment link did not lead to its password form: HTTP %d\n%s", page.Response.StatusCode, page.Body)
	}
	return page
}

// linkStep opens a new enrolment link of alice's in b and gives her
// password: the page that follows (the enrolment page, or the
// second-factor page of a user who has one).
func (h *harness) linkStep(b *issuertest.Browser) *issuertest.Page {
	h.t.Helper()
	return b.Post(h.t, h.openLink(b, h.enrolLink()), issuer.EnrolLinkPath, url.Values{"password": {alicePassword}})
}

// enrolPage is linkStep, failing unless the enrolment page follows.
func (h *harness) enrolPage(b *issuertest.Browser) *issuertest.Page {
	h.t.Helper()
	page := h.linkStep(b)
	if page.Response.StatusCode != http.StatusOK || !strings.Contains(page.Body, `action="/login/mfa/`) || page.Form.Get("token") == "" {
		h.t.Fatalf("the enrolment link and the password did not lead to the enrolment page: HTTP %d\n%s", page.Response.StatusCode, page.Body)
	}
	return page
}

// wantLinkDone fails unless p is the last page of an enrolment link's
// flow.
func wantLinkDone(t interface {
	Helper()
	Fatalf(string, ...any)
}, p *issuertest.Page) {
	t.Helper()
	if p.Response.StatusCode != http.StatusOK || !strings.Contains(p.Body, msgLinkEnrolled) {
		t.Fatalf("the enrolment did not end with its message: HTTP %d\n%s", p.Response.StatusCode, p.Body)
	}
}
