package backuprestore_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/oauth2"

	mgmtv1alpha1 "github.com/nsauth/nsauth/gen/mgmt/v1alpha1"
	"github.com/nsauth/nsauth/gen/mgmt/v1alpha1/mgmtv1alpha1connect"
	"github.com/nsauth/nsauth/internal/cli"
	"github.com/nsauth/nsauth/internal/cli/servercmd"
	"github.com/nsauth/nsauth/internal/issuer/issuertest"
	"github.com/nsauth/nsauth/internal/servetest"
)

const (
	adminPassword = "backup-admin-password"
	userPassword  = "backup-user-password"
	redirectURI   = "http://127.0.0.1:4242/api/auth/callback"
)

// node is a running server as clients see it.
type node struct {
	srv  *servetest.Server
	url  string // the issuer, http://localhost:PORT (passkeys need a host name)
	port int
	api  mgmtv1alpha1connect.AuthServiceClient
}

// freePort returns a loopback port nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startNode serves the store env points at (NSAUTH_DATA_DIR or
// NSAUTH_DATABASE_URL, NSAUTH_SECRET_KEY) on port (0: a free one), with
// the issuer http://localhost:PORT. A restored server takes the place of
// the one backed up: the same port, so the same issuer, whose name is in
// every token and passkey.
func startNode(t *testing.T, env map[string]string, port int) *node {
	t.Helper()
	if port == 0 {
		port = freePort(t)
	}
	issuerURL := fmt.Sprintf("http://localhost:%d", port)
	env["NSAUTH_ADMIN_PASSWORD"] = adminPassword
	srv := servetest.Start(t, servetest.Options{Env: env, Args: []string{
		"--listen", fmt.Sprintf("127.0.0.1:%d", port), "--issuer", issuerURL,
		// The load is one client address: no per-address limits.
		"--rate-limit", "0", "--authorize-rate-limit", "0", "--login-attempts", "1000",
	}})
	return &node{srv: srv, url: issuerURL, port: port, api: mgmtv1alpha1connect.NewAuthServiceClient(http.DefaultClient, srv.URL)}
}

// runCommand runs an nsauth-server command in this process with exactly
// env as its environment, and returns its exit code and output.
func runCommand(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	a := &cli.App{In: strings.NewReader(""), Out: &out, ErrOut: &errOut, Getenv: servetest.Env(env), Now: time.Now}
	code := cli.Run(context.Background(), a, args, servercmd.Commands...)
	return code, out.String(), errOut.String()
}

// session is a CLI login: its tokens.
type session struct {
	access, refresh string
}

// loginStart opens a CLI login on n: the verifier and the login page.
func (n *node) loginStart(t *testing.T) (string, *issuertest.Browser, *issuertest.Page) {
	t.Helper()
	verifier := oauth2.GenerateVerifier()
	challenge, method := oauth2.S256ChallengeFromVerifier(verifier), "S256"
	authz, err := n.api.GetAuthorizeUrl(context.Background(), connect.NewRequest(&mgmtv1alpha1.GetAuthorizeUrlRequest{
		State: "backup", RedirectUri: redirectURI, Scope: "openid offline_access",
		CodeChallenge: &challenge, CodeChallengeMethod: &method,
	}))
	if err != nil {
		t.Fatalf("GetAuthorizeUrl: %v", err)
	}
	b := issuertest.NewBrowser(t)
	page := b.Open(t, authz.Msg.GetUrl())
	if page.Response.StatusCode != http.StatusOK || page.Form.Get("authRequestID") == "" {
		t.Fatalf("no login page: HTTP %d\n%s", page.Response.StatusCode, page.Body)
	}
	return verifier, b, page
}

// loginFinish exchanges the code of the redirect that ended a login.
func (n *node) loginFinish(t *testing.T, verifier string, b *issuertest.Browser, last *issuertest.Page) session {
	t.Helper()
	if strings.Contains(last.Body, `action="/login/passkey/skip"`) {
		// After a one-time code, the offer of a passkey: not now.
		last = b.Post(t, last, "/login/passkey/skip", nil)
	}
	loc, err := issuertest.RedirectOf(last)
	if err != nil {
		t.Fatalf("the login did not end at the client: %v\nHTTP %d\n%s", err, last.Response.StatusCode, last.Body)
	}
	resp, err := n.api.LoginCli(context.Background(), connect.NewRequest(&mgmtv1alpha1.LoginCliRequest{
		Code: loc.Query().Get("code"), RedirectUri: redirectURI, CodeVerifier: &verifier,
	}))
	if err != nil {
		t.Fatalf("LoginCli: %v", err)
	}
	tok := resp.Msg.GetAccessToken()
	if tok.GetRefreshToken() == "" || tok.GetAccessToken() == "" {
		t.Fatal("LoginCli gave no refresh or access token")
	}
	return session{access: tok.GetAccessToken(), refresh: tok.GetRefreshToken()}
}

// login logs username in with its password on the login page.
func (n *node) login(t *testing.T, username, password string) session {
	t.Helper()
	verifier, b, page := n.loginStart(t)
	return n.loginFinish(t, verifier, b, b.Submit(t, page, username, password))
}

// loginTOTP logs username in with its password and a one-time code.
func (n *node) loginTOTP(t *testing.T, username, password, secret string) session {
	t.Helper()
	verifier, b, page := n.loginStart(t)
	mfa := b.Submit(t, page, username, password)
	if !strings.Contains(mfa.Body, `action="/login/mfa"`) || mfa.Form.Get("token") == "" {
		t.Fatalf("the password did not lead to the second-factor page: HTTP %d\n%s", mfa.Response.StatusCode, mfa.Body)
	}
	res := b.Post(t, mfa, "/login/mfa", url.Values{"method": {"totp"}, "code": {totpAt(t, secret, time.Now())}})
	return n.loginFinish(t, verifier, b, res)
}

// loginPasskey logs in without a password, with the passkey k.
func (n *node) loginPasskey(t *testing.T, k *softKey) session {
	t.Helper()
	verifier, b, page := n.loginStart(t)
	body, _ := json.Marshal(map[string]string{"authRequestID": page.Form.Get("authRequestID"), "mode": "passwordless", "token": page.Form.Get("token")})
	req, err := http.NewRequest(http.MethodPost, n.url+"/login/passkey/begin", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-CSRF-Token", page.Form.Get("csrf"))
	resp, err := b.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
	var o struct {
		PublicKey struct {
			Challenge string `json:"challenge"`
		} `json:"publicKey"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(out, &o) != nil || o.PublicKey.Challenge == "" {
		t.Fatalf("passkey begin: HTTP %d %s", resp.StatusCode, out)
	}
	res := b.Post(t, page, "/login/passkey/finish", url.Values{"mode": {"passwordless"}, "credential": {k.get(t, o.PublicKey.Challenge)}})
	return n.loginFinish(t, verifier, b, res)
}

// refresh calls RefreshCli with rt.
func (n *node) refresh(rt string) (session, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := n.api.RefreshCli(ctx, connect.NewRequest(&mgmtv1alpha1.RefreshCliRequest{RefreshToken: rt}))
	if err != nil {
		return session{}, err
	}
	tok := resp.Msg.GetAccessToken()
	return session{access: tok.GetAccessToken(), refresh: tok.GetRefreshToken()}, nil
}

// revoke calls RevokeCli with rt.
func (n *node) revoke(rt string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := n.api.RevokeCli(ctx, connect.NewRequest(&mgmtv1alpha1.RevokeCliRequest{RefreshToken: rt}))
	return err
}

// check calls CheckToken with access.
func (n *node) check(access string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req := connect.NewRequest(&mgmtv1alpha1.CheckTokenRequest{})
	req.Header().Set("Authorization", "Bearer "+access)
	_, err := n.api.CheckToken(ctx, req)
	return err
}

// totpAt computes the RFC 6238 code of secret at t on its own (RFC 4226
// dynamic truncation), not with the library the provider uses.
func totpAt(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	key, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.ToUpper(secret))
	if err != nil {
		t.Fatal(err)
	}
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], uint64(at.Unix()/30))
	m := hmac.New(sha1.New, key)
	m.Write(msg[:])
	sum := m.Sum(nil)
	off := sum[len(sum)-1] & 0xf
	v := binary.BigEndian.Uint32(sum[off:off+4]) & 0x7fffffff
	return fmt.Sprintf("%06d", v%1000000)
}

// softKey is a WebAuthn authenticator in a few lines, from the
// specification: a P-256 key, user presence and verification, a counter.
type softKey struct {
	origin, rpID string
	id, user     []byte
	key          *ecdsa.PrivateKey
	count        uint32
}

func newSoftKey(t *testing.T, issuerURL, userID string) *softKey {
	t.Helper()
	u, err := url.Parse(issuerURL)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	return &softKey{origin: issuerURL, rpID: u.Hostname(), id: id, user: []byte(userID), key: key}
}

// cose is the key's COSE_Key (EC2, ES256, P-256), as a registration stores it.
func (k *softKey) cose() []byte {
	x, y := k.key.X.FillBytes(make([]byte, 32)), k.key.Y.FillBytes(make([]byte, 32))
	out := []byte{0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21, 0x58, 0x20}
	out = append(out, x...)
	out = append(out, 0x22, 0x58, 0x20)
	return append(out, y...)
}

var b64 = base64.RawURLEncoding

// get answers an assertion's challenge.
func (k *softKey) get(t *testing.T, challenge string) string {
	t.Helper()
	k.count++
	rp := sha256.Sum256([]byte(k.rpID))
	ad := binary.BigEndian.AppendUint32(append(rp[:], 0x01|0x04), k.count)
	cd, _ := json.Marshal(map[string]any{"type": "webauthn.get", "challenge": challenge, "origin": k.origin, "crossOrigin": false})
	cdHash := sha256.Sum256(cd)
	digest := sha256.Sum256(append(bytes.Clone(ad), cdHash[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, k.key, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(map[string]any{
		"id": b64.EncodeToString(k.id), "rawId": b64.EncodeToString(k.id), "type": "public-key",
		"clientExtensionResults": map[string]any{},
		"response": map[string]any{
			"clientDataJSON":    b64.EncodeToString(cd),
			"authenticatorData": b64.EncodeToString(ad),
			"signature":         b64.EncodeToString(sig),
			"userHandle":        b64.EncodeToString(k.user),
		},
	})
	return string(out)
}
