package issuer

import (
	"net/http"

	"github.com/nsauth/nsauth/internal/issuer/endsession"
	"github.com/nsauth/nsauth/internal/issuer/web"
)

// endSessionPages are the web layer as package endsession writes its pages
// with it (endsession.Pages): the provider's renderer and CSRF cookie.
type endSessionPages struct {
	pages web.Renderer
	csrf  web.CSRF
}

var _ endsession.Pages = endSessionPages{}

func (p endSessionPages) Message(w http.ResponseWriter, status int, title, msg string) {
	p.pages.Message(w, status, title, msg)
}

func (p endSessionPages) Internal(w http.ResponseWriter, status int, title string) {
	p.pages.Message(w, status, title, msgInternal)
}

func (p endSessionPages) Render(w http.ResponseWriter, status int, name string, data any, redirect string) {
	p.pages.Render(w, status, name, data, web.Origin(redirect))
}

func (p endSessionPages) CSRFCookie(w http.ResponseWriter, r *http.Request) string {
	return p.csrf.Cookie(w, r)
}
