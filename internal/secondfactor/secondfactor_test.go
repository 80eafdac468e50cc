package secondfactor_test

import (
	"errors"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/secondfactor"
)

// rfcSecret is RFC 6238's SHA-1 key, "12345678901234567890", in base32.
const rfcSecret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"

// TestCheckTOTPAgainstRFC6238: the codes of RFC 6238 appendix B (SHA-1,
// last six digits) are accepted at their time and one step around it,
// with the step they belong to; two steps off, or mangled, they are not.
func TestCheckTOTPAgainstRFC6238(t *testing.T) {
	t.Parallel()
	vectors := []struct {
		unix int64
		code string
	}{{59, "287082"}, {1111111109, "081804"}, {1111111111, "050471"}, {1234567890, "005924"}, {2000000000, "279037"}}
	for _, v := range vectors {
		at := time.Unix(v.unix, 0)
		step := v.unix / 30
		for _, c := range []struct {
			name string
			now  time.Time
			code string
			ok   bool
		}{
			{"on time", at, v.code, true},
			{"typed with a space", at, v.code[:3] + " " + v.code[3:], true},
			{"one step later", at.Add(30 * time.Second), v.code, true},
			{"one step earlier", at.Add(-30 * time.Second), v.code, true},
			{"two steps later", at.Add(60 * time.Second), v.code, false},
			{"two steps earlier", at.Add(-60 * time.Second), v.code, false},
			{"five digits", at, v.code[1:], false},
			{"letters", at, "abcdef", false},
		} {
			if c.now.Unix() < 0 {
				continue // before 1970: no clock says that
			}
			t.Run(v.code+" "+c.name, func(t *testing.T) {
				got, err := secondfactor.CheckTOTP(rfcSecret, c.code, c.now)
				if !c.ok {
					if !errors.Is(err, secondfactor.ErrWrongCode) {
						t.Fatalf("CheckTOTP = %d, %v; want ErrWrongCode", got, err)
					}
					return
				}
				if err != nil || got != step {
					t.Fatalf("CheckTOTP = %d, %v; want step %d", got, err, step)
				}
			})
		}
	}
}

func TestNewTOTP(t *testing.T) {
	t.Parallel()
	secret, uri, err := secondfactor.NewTOTP("nsauth auth.example.com", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[A-Z2-7]{32}$`).MatchString(secret) {
		t.Fatalf("secret %q is not 160 bits of base32", secret)
	}
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "otpauth" || u.Host != "totp" {
		t.Fatalf("URI %q: %v", uri, err)
	}
	q := u.Query()
	if q.Get("secret") != secret || q.Get("issuer") != "nsauth auth.example.com" || q.Get("digits") != "6" || q.Get("period") != "30" || q.Get("algorithm") != "SHA1" {
		t.Fatalf("URI parameters %v", q)
	}
	again, err := secondfactor.TOTPURI("nsauth auth.example.com", "alice", secret)
	if err != nil || again != uri {
		t.Fatalf("TOTPURI = %q, %v; want %q", again, err, uri)
	}
	if other, _, _ := secondfactor.NewTOTP("x", "alice"); other == secret {
		t.Fatal("two secrets are equal")
	}
	if _, err := secondfactor.TOTPURI("x", "alice", "not base32!"); err == nil {
		t.Fatal("TOTPURI accepted a secret that is not base32")
	}
}

func TestRecoveryCodes(t *testing.T) {
	t.Parallel()
	shape := regexp.MustCompile(`^[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}$`)
	seen := map[string]bool{}
	for range 20 {
		codes := secondfactor.NewRecoveryCodes()
		if len(codes) != secondfactor.RecoveryCodeCount {
			t.Fatalf("%d codes", len(codes))
		}
		for _, c := range codes {
			if !shape.MatchString(c) || seen[c] {
				t.Fatalf("code %q: wrong shape or repeated", c)
			}
			seen[c] = true
			if n, ok := secondfactor.NormalizeRecoveryCode(c); !ok || n != c {
				t.Fatalf("NormalizeRecoveryCode(%q) = %q, %v", c, n, ok)
			}
		}
	}
	for _, c := range []struct {
		in, want string
		ok       bool
	}{
		{"abcd-efgh-ijkl-mnop", "ABCD-EFGH-IJKL-MNOP", true},
		{" ABCD EFGH IJKL MNOP ", "ABCD-EFGH-IJKL-MNOP", true},
		{"ABCDEFGHIJKLMNOP", "ABCD-EFGH-IJKL-MNOP", true},
		{"ABCD-EFGH-IJKL-MNO", "", false},
		{"ABCD-EFGH-IJKL-MNO1", "", false}, // 1 is not base32
		{strings.Repeat("A", 100), "", false},
		{"", "", false},
	} {
		got, ok := secondfactor.NormalizeRecoveryCode(c.in)
		if ok != c.ok || got != c.want {
			t.Errorf("NormalizeRecoveryCode(%q) = %q, %v; want %q, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

func TestQRDrawings(t *testing.T) {
	t.Parallel()
	const content = "otpauth://totp/nsauth:alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=nsauth"
	svg, err := secondfactor.QRSVG(content, 200)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`^<svg [^>]*viewBox="0 0 (\d+) (\d+)"[^>]*><rect [^>]*/><path fill="#000" d="(M\d+ \d+h1v1h-1z)+"/></svg>$`).FindStringSubmatch(string(svg))
	if m == nil || m[1] != m[2] {
		t.Fatalf("QRSVG is not a square of module paths:\n%.300s", svg)
	}
	if strings.Contains(string(svg), "secret") || strings.ContainsAny(string(svg), "'&") {
		t.Fatal("the SVG carries the content as text")
	}
	term, err := secondfactor.QRTerminal(content)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(term, "\n"), "\n")
	width := len([]rune(lines[0]))
	if len(lines) != (width+1)/2 || width != atoi(m[1]) {
		t.Fatalf("terminal QR: %d lines of %d characters; the SVG is %s modules wide", len(lines), width, m[1])
	}
	for _, l := range lines {
		if strings.Trim(l, "█▀▄ ") != "" || len([]rune(l)) != width {
			t.Fatalf("terminal QR line %q", l)
		}
	}
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

// TestIssuerName: the name every enrolment (login, account page, links,
// nsauth users totp enroll) gives authenticator apps.
func TestIssuerName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, issuer, want string }{
		{"https with a port", "https://auth.example.com:8443", "nsauth auth.example.com:8443"},
		{"loopback http", "http://127.0.0.1:8080", "nsauth 127.0.0.1:8080"},
		{"with a path", "https://example.com/auth", "nsauth example.com"},
		{"none", "", "nsauth"},
		{"not a URL", "::", "nsauth"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := secondfactor.IssuerName(tc.issuer); got != tc.want {
				t.Errorf("IssuerName(%q) = %q, want %q", tc.issuer, got, tc.want)
			}
		})
	}
}
