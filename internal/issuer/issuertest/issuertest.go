// Package issuertest drives the built-in provider's login page the way a
// browser without JavaScript does, for tests: follow the authorize
// redirect, read the form, post it, and stop at the redirect back to the
// client.
package issuertest

import (
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// Browser is a cookie-keeping HTTP client that does not follow the final
// redirect to the client's redirect URI.
type Browser struct {
	// Client is the underlying HTTP client.
	Client *http.Client
	// Rewrite, when set, changes every request's URL before it is sent
	// (tests of replicas send each step to another server).
	Rewrite func(*url.URL)
}

// NewBrowser returns a Browser with an empty cookie jar.
func NewBrowser(t testing.TB) *Browser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	b := &Browser{}
	b.Client = &http.Client{
		Jar: jar,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if req.URL.Path != "/login" {
				return http.ErrUseLastResponse
			}
			if b.Rewrite != nil {
				b.Rewrite(req.URL)
				req.Host = req.URL.Host
			}
			return nil
		},
	}
	return b
}

// Page is a fetched login page.
type Page struct {
	// Response is the HTTP response; its body has been read into Body.
	Response *http.Response
	Body     string
	// Form holds the hidden fields of the login form.
	Form url.Values
	// URL is where the page was fetched from.
	URL *url.URL
}

var hiddenInput = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

// Do sends req, rewritten when Rewrite is set, and returns the answer with
// the hidden fields of its form.
func (b *Browser) Do(t testing.TB, req *http.Request) *Page {
	t.Helper()
	if b.Rewrite != nil {
		b.Rewrite(req.URL)
		req.Host = req.URL.Host
	}
	resp, err := b.Client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	p := &Page{Response: resp, Body: string(body), Form: url.Values{}, URL: resp.Request.URL}
	for _, m := range hiddenInput.FindAllStringSubmatch(p.Body, -1) {
		p.Form.Set(html.UnescapeString(m[1]), html.UnescapeString(m[2]))
	}
	return p
}

// Open starts a login at an authorize URL and returns the login page it
// leads to (or whatever the provider answered instead).
func (b *Browser) Open(t testing.TB, authorizeURL string) *Page {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, authorizeURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b.Do(t, req)
}

// FormWith returns the page's hidden fields with fields added or
// replacing them: the body of a POST of its form.
func (p *Page) FormWith(fields url.Values) url.Values {
	form := url.Values{}
	for k, v := range p.Form {
		form[k] = v
	}
	for k, v := range fields {
		form[k] = v
	}
	return form
}

// LoginForm returns the page's hidden fields with the credentials: the
// body of the login form's POST.
func (p *Page) LoginForm(username, password string) url.Values {
	return p.FormWith(url.Values{"username": {username}, "password": {password}})
}

// Submit posts the login form of page with the credentials and returns the
// answer: a redirect to the client, or the page again with an error.
func (b *Browser) Submit(t testing.TB, page *Page, username, password string) *Page {
	t.Helper()
	form := page.LoginForm(username, password)
	target := *page.URL
	target.RawQuery = ""
	target.Path = "/login"
	req, err := http.NewRequest(http.MethodPost, target.String(), strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.Do(t, req)
}

// Login opens authorizeURL, submits the credentials and returns the
// redirect back to the client (with code and state), saying "Not now" if
// the provider offers to add a passkey on the way. It fails the test when
// the provider does not redirect.
func (b *Browser) Login(t testing.TB, authorizeURL, username, password string) *url.URL {
	t.Helper()
	page := b.Open(t, authorizeURL)
	if page.Response.StatusCode != http.StatusOK || page.Form.Get("authRequestID") == "" {
		t.Fatalf("authorize did not lead to the login form: HTTP %d\n%s", page.Response.StatusCode, page.Body)
	}
	res := b.Submit(t, page, username, password)
	if res.Response.StatusCode == http.StatusOK && strings.Contains(res.Body, `action="/login/passkey/skip"`) {
		// The provider offers to add a passkey (an issuer with a host
		// name, a user without one): decline, as a user would.
		res = b.Post(t, res, "/login/passkey/skip", nil)
	}
	loc, err := RedirectOf(res)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// RedirectOf returns the Location of a redirect answer.
func RedirectOf(p *Page) (*url.URL, error) {
	if p.Response.StatusCode != http.StatusSeeOther && p.Response.StatusCode != http.StatusFound {
		return nil, fmt.Errorf("expected a redirect, got HTTP %d:\n%s", p.Response.StatusCode, p.Body)
	}
	return url.Parse(p.Response.Header.Get("Location"))
}

// PostRequest is the request Post would send, with the browser's cookies
// for its target, for sending otherwise (SendTogether).
func (b *Browser) PostRequest(t testing.TB, page *Page, path string, fields url.Values) *http.Request {
	t.Helper()
	target := *page.URL
	target.RawQuery = ""
	target.Path = path
	req, err := http.NewRequest(http.MethodPost, target.String(), strings.NewReader(page.FormWith(fields).Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, c := range b.Client.Jar.Cookies(req.URL) {
		req.AddCookie(c)
	}
	if b.Rewrite != nil {
		b.Rewrite(req.URL)
		req.Host = req.URL.Host
	}
	return req
}

// Post posts the hidden fields of page, with fields added or replacing
// them, to path on the page's server, and returns the answer.
func (b *Browser) Post(t testing.TB, page *Page, path string, fields url.Values) *Page {
	t.Helper()
	form := page.FormWith(fields)
	target := *page.URL
	target.RawQuery = ""
	target.Path = path
	req, err := http.NewRequest(http.MethodPost, target.String(), strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.Do(t, req)
}
