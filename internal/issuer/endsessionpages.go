package issuer

import (
	"net/http"

	"github.com/nsauth/nsauth/internal/issuer/endsession"
)

// endSessionPages are the issuer's web layer as package endsession writes
// its pages with it (endsession.Pages).
type endSessionPages struct{ i *Issuer }

var _ endsession.Pages = endSessionPages{}

func (p endSessionPages) Message(w http.ResponseWriter, status int, title, msg string) {
	p.i.message(w, status, title, msg)
}

func (p endSessionPages) Internal(w http.ResponseWriter, status int, title string) {
	p.i.message(w, status, title, msgInternal)
}

func (p endSessionPages) Render(w http.ResponseWriter, status int, name string, data any, redirect string) {
	p.i.render(w, status, name, data, origin(redirect))
}

func (p endSessionPages) CSRFCookie(w http.ResponseWriter, r *http.Request) string {
	return p.i.csrfCookie(w, r)
}

func (p endSessionPages) CheckCSRF(r *http.Request, formValue string) bool {
	_, ok := p.i.checkCSRF(r, formValue)
	return ok
}

func (p endSessionPages) SameOrigin(r *http.Request) bool { return p.i.sameOrigin(r) }
