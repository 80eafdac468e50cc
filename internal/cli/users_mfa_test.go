package cli_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/cli"
	"github.com/nsauth/nsauth/internal/cli/servercmd"
	"github.com/nsauth/nsauth/internal/seal"
	"github.com/nsauth/nsauth/internal/servetest"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

// rfc6238 computes a TOTP code (SHA-1, 6 digits, 30 s) on its own, to
// judge the command's secret without the library it uses.
func rfc6238(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	key, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(secret)
	if err != nil {
		t.Fatal(err)
	}
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], uint64(at.Unix()/30))
	m := hmac.New(sha1.New, key)
	m.Write(msg[:])
	sum := m.Sum(nil)
	off := sum[len(sum)-1] & 0xf
	return fmt.Sprintf("%06d", (binary.BigEndian.Uint32(sum[off:off+4])&0x7fffffff)%1000000)
}

// answerReader answers the command's prompts: on its first read, the
// command has printed its output, and answer computes the lines to type
// from it.
type answerReader struct {
	out    *servetest.Buffer
	answer func(out string) string
	r      io.Reader
}

func (a *answerReader) Read(p []byte) (int, error) {
	if a.r == nil {
		a.r = strings.NewReader(a.answer(a.out.String()))
	}
	return a.r.Read(p)
}

var (
	keyLine      = regexp.MustCompile(`(?m)^  ([A-Z2-7]{32})$`)
	uriLine      = regexp.MustCompile(`(?m)^  (otpauth://totp/\S+)$`)
	recoveryLine = regexp.MustCompile(`(?m)^  ([A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4})$`)
)

func TestUsersTOTPEnrollAndReset(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		env, st := usersEnv(t, b)
		env["NSAUTH_SECRET_KEY"] = seal.GenerateKey()
		env["NSAUTH_ISSUER"] = "https://auth.example.com"
		now := time.Date(2026, 11, 30, 12, 0, 10, 0, time.UTC)
		run := func(answer func(out string) string, args ...string) usersResult {
			out, errOut := &servetest.Buffer{}, &servetest.Buffer{}
			in := &answerReader{out: out, answer: answer}
			app := &cli.App{In: in, Out: out, ErrOut: errOut, Getenv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }, Now: func() time.Time { return now }}
			code := cli.Run(context.Background(), app, append([]string{"users"}, args...), servercmd.Commands...)
			return usersResult{code, out.String(), errOut.String()}
		}
		none := func(string) string { return "" }
		if r := run(func(string) string { return "first-password\n" }, "add", "alice"); r.code != 0 {
			t.Fatalf("add: exit %d\n%s", r.code, r.errOut)
		}

		var secret string
		r := run(func(out string) string {
			m := keyLine.FindStringSubmatch(out)
			if m == nil {
				return ""
			}
			secret = m[1]
			return "000000\n" + rfc6238(t, secret, now) + "\n"
		}, "totp", "enroll", "alice")
		if r.code != 0 {
			t.Fatalf("totp enroll: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.out, r.errOut)
		}
		uri := uriLine.FindStringSubmatch(r.out)
		if secret == "" || uri == nil || !strings.Contains(uri[1], "secret="+secret) || !strings.Contains(uri[1], "issuer=nsauth%20auth.example.com") {
			t.Fatalf("enroll printed no key or URI:\n%s", r.out)
		}
		if !strings.Contains(r.errOut, "That code is not right") {
			t.Errorf("a wrong code was not reported:\n%s", r.errOut)
		}
		codes := recoveryLine.FindAllStringSubmatch(r.out, -1)
		if len(codes) != 10 {
			t.Fatalf("enroll printed %d recovery codes:\n%s", len(codes), r.out)
		}
		// The QR code: half blocks, as many characters wide as a line is
		// long, half as many lines.
		var qr []string
		for _, line := range strings.Split(r.out, "\n") {
			if strings.ContainsAny(line, "█▀▄") {
				qr = append(qr, line)
			}
		}
		if width := len([]rune(qr[0])); len(qr) < 10 || len(qr) != (width+1)/2 {
			t.Errorf("the QR code is %d lines of %d characters", len(qr), width)
		}

		u, _ := st.UserByUsername(context.Background(), "alice")
		f, err := st.SecondFactors(context.Background(), u.ID)
		if err != nil || !f.TOTP || f.RecoveryCodes != 10 {
			t.Fatalf("stored factors %+v, %v", f, err)
		}
		if l := run(none, "list"); !regexpLine(l.out, "alice", "enabled", "totp,recovery:10") {
			t.Errorf("list does not show alice's factors:\n%s", l.out)
		}
		if r := run(none, "totp", "enroll", "alice"); r.code == 0 || !strings.Contains(r.errOut, "already has an authenticator app") {
			t.Errorf("a second enrolment: exit %d\n%s", r.code, r.errOut)
		}

		if r := run(none, "mfa-reset", "alice"); r.code != 0 {
			t.Fatalf("mfa-reset: exit %d\n%s", r.code, r.errOut)
		}
		if f, _ := st.SecondFactors(context.Background(), u.ID); f.TOTP || f.RecoveryCodes != 0 {
			t.Fatalf("after mfa-reset: %+v", f)
		}
		if l := run(none, "list"); !regexpLine(l.out, "alice", "enabled", "-") || strings.Contains(l.out, "totp") {
			t.Errorf("list after the reset:\n%s", l.out)
		}
		if r := run(none, "totp", "remove", "alice"); r.code == 0 || !strings.Contains(r.errOut, "has no authenticator app") {
			t.Errorf("removing what is not there: exit %d\n%s", r.code, r.errOut)
		}
		if r := run(none, "mfa-reset", "nobody"); r.code == 0 || !strings.Contains(r.errOut, `no user "nobody"`) {
			t.Errorf("resetting an unknown user: exit %d\n%s", r.code, r.errOut)
		}

		// Three wrong codes: nothing stored, and the secret is gone.
		r = run(func(string) string { return "000000\n111111\n222222\n" }, "totp", "enroll", "alice")
		if r.code == 0 || !strings.Contains(r.errOut, "nothing was stored") {
			t.Fatalf("three wrong codes: exit %d\n%s", r.code, r.errOut)
		}
		if f, _ := st.SecondFactors(context.Background(), u.ID); f.TOTP {
			t.Fatal("a secret was stored without a right code")
		}
		// No code at all (stdin closed).
		if r := run(none, "totp", "enroll", "alice"); r.code == 0 || !strings.Contains(r.errOut, "no code on standard input") {
			t.Errorf("no code: exit %d\n%s", r.code, r.errOut)
		}
		// The recovery codes and the secret stay out of the audit trail.
		trail, err := st.AuditEvents(context.Background(), store.AuditFilter{})
		if err != nil {
			t.Fatal(err)
		}
		var kinds []string
		for _, e := range trail {
			blob := fmt.Sprintf("%+v", e)
			if strings.Contains(blob, secret) || strings.Contains(blob, codes[0][1]) {
				t.Fatalf("the audit trail holds a secret: %s", blob)
			}
			if strings.HasPrefix(string(e.Type), "mfa.") {
				kinds = append(kinds, string(e.Type)+":"+e.Reason)
			}
		}
		if want := "mfa.enrolled:totp mfa.reset:mfa_reset"; strings.Join(kinds, " ") != want {
			t.Errorf("audit events %v, want %s", kinds, want)
		}
	})
}

// TestUsersTOTPEnrollNeedsTheKey: without the server's secret key the
// command says which setting to give, and stores nothing.
func TestUsersTOTPEnrollNeedsTheKey(t *testing.T) {
	t.Parallel()
	env, _ := usersEnv(t, storetest.Backends()[0])
	if r := runUsers(env, strings.NewReader("first-password\n"), "add", "alice"); r.code != 0 {
		t.Fatalf("add: exit %d\n%s", r.code, r.errOut)
	}
	r := runUsers(env, strings.NewReader("123456\n"), "totp", "enroll", "alice")
	if r.code == 0 || !strings.Contains(r.errOut, "NSAUTH_SECRET_KEY") || strings.Contains(r.out, "otpauth://") {
		t.Fatalf("enroll without a key: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.out, r.errOut)
	}
}
