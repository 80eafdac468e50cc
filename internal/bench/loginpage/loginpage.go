// Package loginpage signs in at the built-in provider's login page as a
// browser without JavaScript does, for the bench: it mints the codes
// whose exchange the bench times, and times whole logins.
package loginpage

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Browser logs in at the built-in provider's login page the way a browser
// without JavaScript does: it follows the authorize redirect to the form,
// posts the form's fields with the credentials, and stops at the redirect
// back to the client. It keeps cookies (CSRF, device, and the browser
// session a login begins), and is safe for concurrent use.
//
// Once a login has begun a browser session, the provider answers the next
// ones from it: a page that continues as the session's user, no password
// asked. Login takes that page only for the same user; [Browser.Fresh]
// gives a browser without the session, whose every login checks the
// password.
type Browser struct {
	client *http.Client
}

// New returns a Browser that keeps up to conns connections open and gives
// up on a request after timeout.
func New(conns int, timeout time.Duration) *Browser {
	jar, _ := cookiejar.New(nil) // never fails without options
	tr := &http.Transport{MaxIdleConns: conns, MaxIdleConnsPerHost: conns, IdleConnTimeout: time.Minute}
	return &Browser{client: &http.Client{
		Jar:       jar,
		Transport: tr,
		Timeout:   timeout,
		CheckRedirect: func(req *http.Request, _ []*http.Request) error {
			if req.URL.Path != "/login" {
				return http.ErrUseLastResponse // the redirect to the client carries the code
			}
			return nil
		},
	}}
}

// Fresh returns a browser that shares b's connections but none of its
// cookies: a first visit, whose login checks the password, as one from a
// browser the provider has not seen.
func (b *Browser) Fresh() *Browser {
	jar, _ := cookiejar.New(nil) // never fails without options
	c := *b.client
	c.Jar = jar
	return &Browser{client: &c}
}

var (
	// sessionUser is the user a page continuing a browser session names
	// (the provider's continue.html).
	sessionUser = regexp.MustCompile(`(?is)<span\b[^>]*\bid="session-user"[^>]*>([^<]*)</span>`)
	formTag     = regexp.MustCompile(`(?is)<form\b[^>]*>`)
	inputTag    = regexp.MustCompile(`(?is)<input\b[^>]*>`)
	attrName    = regexp.MustCompile(`(?i)\bname="([^"]*)"`)
	attrValue   = regexp.MustCompile(`(?i)\bvalue="([^"]*)"`)
	attrType    = regexp.MustCompile(`(?i)\btype="([^"]*)"`)
	attrAct     = regexp.MustCompile(`(?i)\baction="([^"]*)"`)
)

// maxBusyRetries bounds how often one login is retried while the provider
// answers that its password checks are busy.
const maxBusyRetries = 50

// Login opens authorizeURL, signs in and returns the code.
func (b *Browser) Login(ctx context.Context, authorizeURL, username, password string) (string, error) {
	page, pageURL, err := b.get(ctx, authorizeURL)
	if err != nil {
		return "", err
	}
	// A page continuing another user's session would give that user's
	// code, whatever the credentials.
	if m := sessionUser.FindStringSubmatch(page); m != nil && html.UnescapeString(m[1]) != username {
		return "", errors.New("the login page continues another user's browser session")
	}
	action, fields, err := loginForm(page, pageURL)
	if err != nil {
		return "", err
	}
	fields.Set("username", username)
	fields.Set("password", password)
	for range maxBusyRetries {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, action, strings.NewReader(fields.Encode()))
		if err != nil {
			return "", err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := b.client.Do(req)
		if err != nil {
			return "", fmt.Errorf("posting the login form: %w", err)
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusSeeOther, http.StatusFound:
			loc, err := url.Parse(resp.Header.Get("Location"))
			if err != nil || loc.Query().Get("code") == "" {
				return "", errors.New("the login redirected without a code")
			}
			return loc.Query().Get("code"), nil
		case http.StatusTooManyRequests:
			wait := 50 * time.Millisecond
			if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
				wait = min(time.Duration(s)*time.Second, 2*time.Second)
			}
			select {
			case <-ctx.Done():
				return "", ctx.Err()
			case <-time.After(wait):
			}
		default:
			return "", fmt.Errorf("the login form answered HTTP %d", resp.StatusCode)
		}
	}
	return "", errors.New("the provider stayed busy")
}

// get fetches a page, following redirects to the login page.
func (b *Browser) get(ctx context.Context, u string) (string, *url.URL, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", nil, err
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return "", nil, fmt.Errorf("opening the authorize URL: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return "", nil, fmt.Errorf("the authorize URL led to HTTP %d, not the login page", resp.StatusCode)
	}
	return string(body), resp.Request.URL, nil
}

// loginForm reads the login page's form: where it posts, and its hidden
// fields.
func loginForm(page string, pageURL *url.URL) (string, url.Values, error) {
	form := formTag.FindString(page)
	if form == "" {
		return "", nil, errors.New("no form on the login page")
	}
	action := pageURL
	if m := attrAct.FindStringSubmatch(form); m != nil {
		ref, err := url.Parse(html.UnescapeString(m[1]))
		if err != nil {
			return "", nil, errors.New("the login form's action is not a URL")
		}
		action = pageURL.ResolveReference(ref)
	}
	fields := url.Values{}
	for _, in := range inputTag.FindAllString(page, -1) {
		t := attrType.FindStringSubmatch(in)
		n := attrName.FindStringSubmatch(in)
		if t == nil || !strings.EqualFold(t[1], "hidden") || n == nil {
			continue
		}
		v := ""
		if m := attrValue.FindStringSubmatch(in); m != nil {
			v = html.UnescapeString(m[1])
		}
		fields.Set(html.UnescapeString(n[1]), v)
	}
	return action.String(), fields, nil
}
