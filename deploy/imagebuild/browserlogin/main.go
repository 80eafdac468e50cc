// Command browserlogin signs in at nsauth's built-in login page the way a
// browser without JavaScript does, for deploy/ci-image.sh: it opens the URL
// `nsauth login --no-browser` printed, fills the page's form with the
// username and password from NSAUTH_LOGIN_USER and NSAUTH_LOGIN_PASSWORD
// (never from arguments, which other users can read), and follows the
// redirects back to the waiting `nsauth login`. It exits 0 when that
// callback answered 200.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"strings"
	"time"

	"golang.org/x/net/html"
)

func main() {
	if err := run(os.Args[1:], os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "browserlogin:", err)
		os.Exit(1)
	}
}

func run(args []string, getenv func(string) string) error {
	fs := flag.NewFlagSet("browserlogin", flag.ContinueOnError)
	authorizeURL := fs.String("url", "", "the authorize URL to open")
	timeout := fs.Duration("timeout", 30*time.Second, "how long the whole login may take")
	if err := fs.Parse(args); err != nil {
		return err
	}
	user, password := getenv("NSAUTH_LOGIN_USER"), getenv("NSAUTH_LOGIN_PASSWORD")
	if *authorizeURL == "" || user == "" || password == "" {
		return errors.New("-url, NSAUTH_LOGIN_USER and NSAUTH_LOGIN_PASSWORD are required")
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	jar, err := cookiejar.New(nil)
	if err != nil {
		return err
	}
	client := &http.Client{Jar: jar}

	page, err := fetch(ctx, client, http.MethodGet, *authorizeURL, nil)
	if err != nil {
		return fmt.Errorf("opening the authorize URL: %w", err)
	}
	action, fields, err := loginForm(page.body, page.url)
	if err != nil {
		return err
	}
	fields.Set("username", user)
	fields.Set("password", password)
	done, err := fetch(ctx, client, http.MethodPost, action, fields)
	if err != nil {
		return fmt.Errorf("posting the login form: %w", err)
	}
	if done.url.Path != "/api/auth/callback" {
		return fmt.Errorf("the login ended at %s, not at the client's callback (wrong password?)", done.url.Redacted())
	}
	fmt.Println("logged in: the client's callback answered 200")
	return nil
}

type page struct {
	url  *url.URL
	body string
}

// fetch makes a request, follows redirects, and wants a 200 at the end.
func fetch(ctx context.Context, client *http.Client, method, target string, form url.Values) (*page, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return nil, err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		// The path only: a query may hold a code.
		return nil, fmt.Errorf("%s %s answered HTTP %d", method, resp.Request.URL.Path, resp.StatusCode)
	}
	return &page{url: resp.Request.URL, body: string(b)}, nil
}

// loginForm finds the page's first form: the URL it posts to, and its
// hidden fields (the request id, the CSRF token).
func loginForm(doc string, base *url.URL) (string, url.Values, error) {
	z := html.NewTokenizer(strings.NewReader(doc))
	var action string
	inForm := false
	fields := url.Values{}
	for {
		switch z.Next() {
		case html.ErrorToken:
			if !inForm {
				return "", nil, errors.New("no form on the login page")
			}
			return action, fields, nil
		case html.StartTagToken, html.SelfClosingTagToken:
			t := z.Token()
			attr := func(k string) string {
				for _, a := range t.Attr {
					if a.Key == k {
						return a.Val
					}
				}
				return ""
			}
			switch {
			case t.Data == "form" && !inForm:
				inForm = true
				ref, err := url.Parse(attr("action"))
				if err != nil {
					return "", nil, errors.New("the login form's action is not a URL")
				}
				action = base.ResolveReference(ref).String()
			case t.Data == "input" && inForm && attr("type") == "hidden":
				fields.Set(attr("name"), attr("value"))
			}
		case html.EndTagToken:
			if inForm && z.Token().Data == "form" {
				return action, fields, nil
			}
		}
	}
}
