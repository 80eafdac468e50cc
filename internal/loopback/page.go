package loopback

import (
	"html/template"
	"net/http"
	"strings"
)

// pageKind selects what the browser is told.
type pageKind int

const (
	pageSuccess pageKind = iota
	pageProviderError
	pageStateMismatch
	pageNoCode
	pageAlreadyDone
	pageNotFound
	pageMethod
	pageRefusedHost
)

var pageText = map[pageKind][2]string{
	pageSuccess:       {"Logged in", "You are logged in. You can close this tab and return to your terminal."},
	pageProviderError: {"Login failed", "The identity provider did not log you in. Return to your terminal and try again."},
	pageStateMismatch: {"Response ignored", "This response does not belong to the login your terminal is waiting for (it may come from an old browser tab), so it was ignored. To log in, open the URL your terminal printed for this login."},
	pageNoCode:        {"Login failed", "The identity provider's response carried no authorization code. Return to your terminal and try again."},
	pageAlreadyDone:   {"Login already finished", "This login attempt has already received its response. Return to your terminal."},
	pageNotFound:      {"Not found", "This address only receives login responses."},
	pageMethod:        {"Method not allowed", "This address only receives login responses by GET."},
	pageRefusedHost:   {"Refused", "This listener only answers requests addressed to the login's own redirect address."},
}

// pageTemplate is self-contained: no scripts, images or external requests.
// Description is the provider's error_description; html/template escapes it.
var pageTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>nsauth: {{.Title}}</title>
<style>
body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#1b1b1b;background:#fff}
h1{font-size:1.5rem}
.detail{background:#f4f4f4;border-left:4px solid #b00;padding:.5rem 1rem;white-space:pre-wrap;word-break:break-word}
@media (prefers-color-scheme:dark){body{color:#eee;background:#161616}.detail{background:#262626}}
</style>
</head>
<body>
<main>
<h1>{{.Title}}</h1>
<p>{{.Message}}</p>
{{with .Description}}<p>The provider said:</p><p class="detail">{{.}}</p>{{end}}
</main>
</body>
</html>
`))

// maxDescription bounds the provider text echoed to the browser.
const maxDescription = 500

func writePage(w http.ResponseWriter, status int, kind pageKind, description string) {
	if len(description) > maxDescription {
		description = strings.ToValidUTF8(description[:maxDescription], "") + "…"
	}
	text := pageText[kind]
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_ = pageTemplate.Execute(w, struct{ Title, Message, Description string }{text[0], text[1], description})
}
