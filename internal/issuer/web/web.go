// Package web is the built-in provider's browser layer: its pages and
// assets, rendered under a strict Content-Security-Policy, the CSRF cookie,
// the headers every response carries, and the one guard that every form
// post of its pages goes through.
package web

import (
	"bytes"
	"embed"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

//go:embed templates assets
var files embed.FS

// AssetsPath is where the pages' stylesheet and script are served.
const AssetsPath = "/assets/"

// MsgInternal is every page's answer to a fault of the server's.
const MsgInternal = "Something went wrong on the server. Try again in a moment."

var pageTemplates = template.Must(template.New("").ParseFS(files, "templates/*.html"))

// Assets serves the pages' assets under AssetsPath.
func Assets() http.Handler {
	sub, err := fs.Sub(files, "assets")
	if err != nil {
		return http.NotFoundHandler()
	}
	return http.StripPrefix(AssetsPath, http.FileServerFS(sub))
}

// Scripted is implemented by the data of pages that run our passkey
// script: their CSP then allows scripts and fetches from our own origin,
// nothing else.
type Scripted interface{ Scripted() bool }

// Renderer writes the pages. Log receives rendering failures; nil
// discards them.
type Renderer struct {
	Log *slog.Logger
}

// Render writes a page with the pages' CSP. formTarget is the origin the
// form's redirect goes to (CSP form-action covers redirects after a form
// submission); empty allows only our own origin.
func (p Renderer) Render(w http.ResponseWriter, status int, name string, data any, formTarget string) {
	var buf bytes.Buffer
	if err := pageTemplates.ExecuteTemplate(&buf, name, data); err != nil {
		if p.Log != nil {
			p.Log.Error("rendering a page failed", "page", name, "error", err)
		}
		http.Error(w, MsgInternal, http.StatusInternalServerError)
		return
	}
	formAction := "'self'"
	if formTarget != "" {
		formAction += " " + formTarget
	}
	h := w.Header()
	// Only pages that run our passkey script may run scripts, and only
	// ours: same origin, no inline code.
	scripts := ""
	if s, ok := data.(Scripted); ok && s.Scripted() {
		scripts = "script-src 'self'; connect-src 'self'; "
	}
	h.Set("Content-Security-Policy", "default-src 'none'; "+scripts+"style-src 'self'; img-src 'self'; form-action "+formAction+
		"; frame-ancestors 'none'; base-uri 'none'")
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	// same-origin, not no-referrer: with no-referrer, browsers send
	// "Origin: null" on the form post, and the origin check needs the real
	// one. Cross-origin requests (the redirect to the client) still get no
	// referrer.
	h.Set("Referrer-Policy", "same-origin")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// MessagePage is the data of message.html.
type MessagePage struct {
	Title   string
	Message string
}

// Message writes the page that only says msg.
func (p Renderer) Message(w http.ResponseWriter, status int, title, msg string) {
	p.Render(w, status, "message.html", MessagePage{Title: title, Message: msg}, "")
}

// Origin returns scheme://host of a URL, for CSP, or "" when there is none.
func Origin(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return ""
	}
	// CSP source expressions cannot carry arbitrary characters; our
	// redirect URIs are already validated, but stay strict.
	if strings.ContainsAny(u.Host, " ;,'\"") {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// RetryAfter sets Retry-After for a wait that ends at retryAt and returns
// the wait, in whole seconds, at least one.
func RetryAfter(w http.ResponseWriter, now, retryAt time.Time) time.Duration {
	wait := max(time.Second, retryAt.Sub(now).Round(time.Second))
	w.Header().Set("Retry-After", strconv.Itoa(int(wait/time.Second)))
	return wait
}
