package issuerurl_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/nsauth/nsauth/pkg/issuerurl"
)

func TestCheck(t *testing.T) {
	t.Parallel()
	var (
		strict   = issuerurl.Options{}
		withPath = issuerurl.Options{AllowPath: true}
		insecure = issuerurl.Options{InsecureAllowHTTP: true}
	)
	for _, tc := range []struct {
		name     string
		raw      string
		opts     issuerurl.Options
		want     string // part of the error; "" for none
		insecure bool   // the error wraps ErrInsecureHTTP
	}{
		{name: "https", raw: "https://auth.example.com", opts: strict},
		{name: "https with a port", raw: "https://auth.example.com:8443", opts: strict},
		{name: "http on 127.0.0.1", raw: "http://127.0.0.1:8080", opts: strict},
		{name: "http elsewhere in 127/8", raw: "http://127.0.0.2:8080", opts: strict},
		{name: "http on localhost", raw: "http://localhost:8080", opts: strict},
		{name: "http on LOCALHOST", raw: "http://LOCALHOST:8080", opts: strict},
		{name: "http on ::1", raw: "http://[::1]:8080", opts: strict},
		{name: "http elsewhere", raw: "http://auth.example.com", opts: strict, want: "https", insecure: true},
		{name: "http on a name under localhost", raw: "http://app.localhost", opts: strict, want: "https", insecure: true},
		{name: "http on 0.0.0.0", raw: "http://0.0.0.0:8080", opts: strict, want: "https", insecure: true},
		{name: "http elsewhere, opted in", raw: "http://auth.example.com", opts: insecure},
		{name: "a path", raw: "https://auth.example.com/nsauth", opts: strict, want: "must not have a path"},
		{name: "a trailing slash", raw: "https://auth.example.com/", opts: strict, want: "must not have a path"},
		{name: "a path, allowed", raw: "https://oidc.eks.eu-west-1.amazonaws.com/id/ABC", opts: withPath},
		{name: "a path over http elsewhere, allowed", raw: "http://ci.example.com/x", opts: withPath, want: "https", insecure: true},
		{name: "a query", raw: "https://auth.example.com?a=b", opts: strict, want: "query"},
		{name: "an empty query", raw: "https://auth.example.com?", opts: withPath, want: "query"},
		{name: "a fragment", raw: "https://auth.example.com#x", opts: strict, want: "fragment"},
		{name: "an empty fragment", raw: "https://auth.example.com#", opts: withPath, want: "fragment"},
		{name: "user info", raw: "https://u:p@auth.example.com", opts: strict, want: "user info"},
		{name: "another scheme", raw: "ftp://auth.example.com", opts: insecure, want: "must use https"},
		{name: "relative", raw: "auth.example.com", opts: strict, want: "not an absolute URL"},
		{name: "no host", raw: "https:///x", opts: withPath, want: "not an absolute URL"},
		{name: "opaque", raw: "https:auth.example.com", opts: strict, want: "not an absolute URL"},
		{name: "empty", raw: "", opts: strict, want: "not an absolute URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			u, err := issuerurl.Check(tc.raw, tc.opts)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Check(%q) = %v, want no error", tc.raw, err)
			case tc.want == "" && u.String() != tc.raw:
				t.Fatalf("Check(%q) returned %q", tc.raw, u)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Check(%q) = %v, want an error about %q", tc.raw, err, tc.want)
			case errors.Is(err, issuerurl.ErrInsecureHTTP) != tc.insecure:
				t.Fatalf("Check(%q) = %v; wraps ErrInsecureHTTP: %v, want %v", tc.raw, err, !tc.insecure, tc.insecure)
			}
		})
	}
}

func TestCheckNeverQuotesUserInfo(t *testing.T) {
	t.Parallel()
	_, err := issuerurl.Check("https://user:s3cret@auth.example.com", issuerurl.Options{})
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("Check = %v; want an error that does not quote the password", err)
	}
}
