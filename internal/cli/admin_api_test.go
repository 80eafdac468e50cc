package cli_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpcreflect"

	mgmtv1alpha1 "github.com/nsauth/nsauth/gen/mgmt/v1alpha1"
	"github.com/nsauth/nsauth/gen/mgmt/v1alpha1/mgmtv1alpha1connect"
	adminv1 "github.com/nsauth/nsauth/gen/nsauth/admin/v1"
	"github.com/nsauth/nsauth/gen/nsauth/admin/v1/adminv1connect"
	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/cli"
	"github.com/nsauth/nsauth/internal/cli/servercmd"
	"github.com/nsauth/nsauth/internal/servetest"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

// openServedStore opens the store serverEnv (storeEnv's) points at, beside
// the running server, as an operator with database access would.
func openServedStore(t *testing.T, serverEnv map[string]string) *store.Store {
	t.Helper()
	var st *store.Store
	var err error
	if u := serverEnv["NSAUTH_DATABASE_URL"]; u != "" {
		st, err = store.OpenPostgres(context.Background(), u, store.Options{})
	} else {
		st, err = store.OpenSQLite(context.Background(), serverEnv["NSAUTH_DATA_DIR"], store.Options{})
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// loginAs runs `nsauth login` in e (its own configuration directory, no
// store settings at all) and signs in as username in the "browser".
func loginAs(t *testing.T, e *env, username, password string) {
	t.Helper()
	authURL, done := e.startLogin(context.Background(), nil, "--timeout", "30s")
	if b := signIn(t, authURL, username, password); b.status != http.StatusOK {
		t.Fatalf("signing in as %s: HTTP %d\n%s", username, b.status, b.body)
	}
	if r := wait(t, done); r.code != 0 {
		t.Fatalf("login as %s: exit %d\n%s", username, r.code, r.errOut)
	}
}

// TestAdminAPIFromAnotherDirectory is the admin API's acceptance: against
// `nsauth serve`, from a directory that holds nothing but what `nsauth
// login` stored (no --data-dir, no database URL, no secret key), an
// administrator (a user in the nsauth group admin) adds a user, lists the
// users, adds an app and follows the audit trail through --api-url; the
// audit trail names the administrator as actor. A user who is not in the
// group is refused with PermissionDenied, as is the administrator once
// taken out of the group (checked at each call, not at login); a call
// with no token is Unauthenticated; --api-url with a store flag is a
// usage error.
func TestAdminAPIFromAnotherDirectory(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		serverEnv := storeEnv(t, b)
		serverURL := startServe(t, serverEnv)
		waitReady(t, serverURL)

		// The operator, with the store (the break-glass path): carol is a
		// user; the first administrator needs no setup.
		st := openServedStore(t, serverEnv)
		admin, err := st.UserByUsername(ctx, "admin")
		if err != nil {
			t.Fatal(err)
		}
		// The first-start administrator is in the group admin already.
		if in, err := st.InGroup(ctx, admin.ID, "admin"); err != nil || !in {
			t.Fatalf("the first administrator in the group admin: %v, %v; want true", in, err)
		}
		if r := runUsers(serverEnv, strings.NewReader("carol-password-1\n"), "add", "carol"); r.code != 0 {
			t.Fatalf("users add carol (offline): exit %d\n%s", r.code, r.errOut)
		}

		// The administrator's laptop: a configuration directory, nothing else.
		e := &env{t: t, configDir: filepath.Join(t.TempDir(), "config"), counts: map[string]int{}}
		e.apiURL = e.countingProxy(serverURL)
		remote := func(e *env, stdin string, args ...string) result {
			t.Helper()
			return e.run(ctx, strings.NewReader(stdin), append(args, "--api-url", e.apiURL)...)
		}
		ok := func(r result, what string) result {
			t.Helper()
			if r.code != 0 {
				t.Fatalf("%s: exit %d\n%s", what, r.code, r.errOut)
			}
			return r
		}

		// No login yet: the command says to log in, and the API, called
		// without a token, answers Unauthenticated.
		if r := remote(e, "", "users", "list"); r.code != 1 || !strings.Contains(r.errOut, "nsauth login") {
			t.Errorf("users list before any login: exit %d, want 1 and a hint to log in\n%s", r.code, r.errOut)
		}
		api := adminv1connect.NewAdminServiceClient(http.DefaultClient, serverURL)
		if _, err := api.ListUsers(ctx, connect.NewRequest(&adminv1.ListUsersRequest{})); connect.CodeOf(err) != connect.CodeUnauthenticated {
			t.Errorf("ListUsers without a token: %v, want Unauthenticated", err)
		}
		forged := connect.NewRequest(&adminv1.ListUsersRequest{})
		forged.Header().Set("Authorization", "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.")
		if _, err := api.ListUsers(ctx, forged); connect.CodeOf(err) != connect.CodeUnauthenticated {
			t.Errorf("ListUsers with an unsigned token: %v, want Unauthenticated", err)
		}

		loginAs(t, e, "admin", biAdminPassword)

		// Follow the audit trail while the changes are made.
		followCtx, stopFollow := context.WithCancel(ctx)
		followOut := &syncBuffer{}
		followDone := make(chan int, 1)
		go func() {
			app := &cli.App{In: strings.NewReader(""), Out: followOut, ErrOut: &syncBuffer{}, Getenv: mapEnv(e.environ()), Now: time.Now}
			followDone <- cli.Run(followCtx, app, []string{"audit", "--follow", "--type", "admin,app", "-o", "json", "--api-url", e.apiURL}, servercmd.Commands...)
		}()

		r := ok(remote(e, "bob-password-12345\n", "users", "add", "bob", "--name", "Bob"), "users add bob")
		mustContain(t, "users add", r.errOut, `Created user "bob".`)
		if r := remote(e, "another-password-1\n", "users", "add", "bob"); r.code != 1 || !strings.Contains(r.errOut, `user "bob" already exists`) {
			t.Errorf("users add bob again: exit %d\n%s", r.code, r.errOut)
		}
		r = ok(remote(e, "", "users", "list"), "users list")
		mustContain(t, "users list", r.out, "USERNAME", "admin", "bob", "carol", "Bob")
		r = ok(remote(e, "", "apps", "add", "web", "--redirect-uri", "https://web.example.com/callback"), "apps add web")
		if _, err := st.ClientByID(ctx, "web"); err != nil {
			t.Errorf("apps add through the API made no app: %v", err)
		}
		ok(remote(e, "", "users", "disable", "carol"), "users disable carol")
		if r := remote(e, "", "users", "delete", "nobody"); r.code != 1 || !strings.Contains(r.errOut, `no user "nobody"`) {
			t.Errorf("users delete nobody: exit %d\n%s", r.code, r.errOut)
		}

		// The follower prints the administrator's changes as they come.
		followOut.waitFor(t, regexp.MustCompile(regexp.QuoteMeta(`"reason":"disabled"`)), 20*time.Second)
		stopFollow()
		if code := <-followDone; code != 0 {
			t.Errorf("audit --follow: exit %d", code)
		}
		for _, want := range []string{`"username":"bob"`, `"reason":"added"`, `"actor":"admin"`, `"type":"app.added"`} {
			if !strings.Contains(followOut.String(), want) {
				t.Errorf("audit --follow printed no %s:\n%s", want, followOut.String())
			}
		}

		// The audit trail names the administrator as actor.
		events, err := st.AuditEvents(ctx, store.AuditFilter{Types: []audit.Type{audit.UserChanged}, User: "bob"})
		if err != nil {
			t.Fatal(err)
		}
		if len(events) != 1 || events[0].Actor != "admin" || events[0].Reason != "added" {
			t.Errorf("bob's audit events: %+v, want one \"added\" by admin", events)
		}
		r = ok(remote(e, "", "audit", "--user", "bob"), "audit --user bob")
		mustContain(t, "audit", r.out, "admin.user", "added by admin")

		// A store flag beside --api-url is a usage error naming both.
		if r := remote(e, "", "users", "list", "--data-dir", t.TempDir()); r.code != 2 || !strings.Contains(r.errOut, "--api-url and --data-dir") {
			t.Errorf("--api-url with --data-dir: exit %d, want 2\n%s", r.code, r.errOut)
		}

		// Reflection lists the service.
		stream := grpcreflect.NewClient(servetest.H2CClient(), serverURL, connect.WithGRPC()).NewStream(ctx)
		names, err := stream.ListServices()
		_, _ = stream.Close()
		if err != nil || !slices.Contains(names, adminv1connect.AdminServiceName) {
			t.Errorf("reflection lists %v (%v), want %s", names, err, adminv1connect.AdminServiceName)
		}

		// A user who is not an administrator is refused.
		if r := runUsers(serverEnv, nil, "enable", "carol"); r.code != 0 {
			t.Fatalf("users enable carol (offline): exit %d\n%s", r.code, r.errOut)
		}
		other := &env{t: t, configDir: filepath.Join(t.TempDir(), "config"), counts: map[string]int{}}
		other.apiURL = e.apiURL
		loginAs(t, other, "carol", "carol-password-1")
		for _, args := range [][]string{{"users", "list"}, {"users", "disable", "admin"}, {"audit"}, {"apps", "add", "evil", "--redirect-uri", "https://evil.example.com/cb"}} {
			r := remote(other, "", args...)
			if r.code != 1 || !strings.Contains(r.errOut, "not an nsauth administrator") {
				t.Errorf("%s as carol: exit %d, want 1 and PermissionDenied's message\n%s", strings.Join(args, " "), r.code, r.errOut)
			}
		}
		if u, _ := st.UserByUsername(ctx, "admin"); u == nil || u.Disabled() {
			t.Error("carol disabled the administrator")
		}

		// Taken out of the group, the administrator is refused at the next
		// call, with the same login.
		if _, err := st.SetUserGroups(ctx, admin.ID, nil, []string{"admin"}); err != nil {
			t.Fatal(err)
		}
		if r := remote(e, "", "users", "list"); r.code != 1 || !strings.Contains(r.errOut, "not an nsauth administrator") {
			t.Errorf("users list once out of the group: exit %d\n%s", r.code, r.errOut)
		}
	})
}

// TestAdminAPIMachineClient: a machine client given the scope
// nsauth:admin administers through the API, named "client:NAME" in the
// audit trail; a machine token without that scope (or with the scope
// asked for but not granted) is refused with PermissionDenied.
func TestAdminAPIMachineClient(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		serverEnv := storeEnv(t, b)
		serverURL := startServe(t, serverEnv)
		waitReady(t, serverURL)
		st := openServedStore(t, serverEnv)

		machineToken := func(name, scopes string) string {
			t.Helper()
			r := runServerCommand(serverEnv, nil, "clients", "add", name, "--scopes", scopes, "--json")
			if r.code != 0 {
				t.Fatalf("clients add %s: exit %d\n%s", name, r.code, r.errOut)
			}
			var created struct {
				ClientID     string `json:"client_id"`
				ClientSecret string `json:"client_secret"`
			}
			if err := json.Unmarshal([]byte(r.out), &created); err != nil {
				t.Fatal(err)
			}
			env := map[string]string{"NSAUTH_API_URL": serverURL, "NSAUTH_CLIENT_ID": created.ClientID}
			tr := runServerCommand(env, strings.NewReader(created.ClientSecret+"\n"), "token", "--client-secret-stdin")
			if tr.code != 0 {
				t.Fatalf("token for %s: exit %d\n%s", name, tr.code, tr.errOut)
			}
			return strings.TrimSpace(tr.out)
		}
		api := adminv1connect.NewAdminServiceClient(http.DefaultClient, serverURL)
		call := func(tok string) (*adminv1.WhoAmIResponse, error) {
			req := connect.NewRequest(&adminv1.WhoAmIRequest{})
			req.Header().Set("Authorization", "Bearer "+tok)
			resp, err := api.WhoAmI(ctx, req)
			if err != nil {
				return nil, err
			}
			return resp.Msg, nil
		}

		robot := machineToken("robot", "nsauth:admin")
		who, err := call(robot)
		if err != nil || who.GetActor() != "client:robot" || !who.GetMachine() {
			t.Fatalf("WhoAmI as robot: %v, %v; want client:robot, a machine", who, err)
		}
		req := connect.NewRequest(&adminv1.CreateUserRequest{Username: "dave", Password: "dave-password-1"})
		req.Header().Set("Authorization", "Bearer "+robot)
		if _, err := api.CreateUser(ctx, req); err != nil {
			t.Fatalf("CreateUser as robot: %v", err)
		}
		events, err := st.AuditEvents(ctx, store.AuditFilter{Types: []audit.Type{audit.UserChanged}, User: "dave"})
		if err != nil || len(events) != 1 || events[0].Actor != "client:robot" {
			t.Errorf("dave's audit events: %+v, %v; want one by client:robot", events, err)
		}

		plain := machineToken("plain", "deploy")
		if _, err := call(plain); connect.CodeOf(err) != connect.CodePermissionDenied || !strings.Contains(err.Error(), "nsauth:admin") {
			t.Errorf("WhoAmI as a machine client without nsauth:admin: %v, want PermissionDenied naming the scope", err)
		}
		// Disabled, the admin client is refused at once.
		if r := runServerCommand(serverEnv, nil, "clients", "disable", "robot"); r.code != 0 {
			t.Fatalf("clients disable robot: exit %d\n%s", r.code, r.errOut)
		}
		if _, err := call(robot); connect.CodeOf(err) == 0 {
			t.Error("WhoAmI with a disabled admin client's token succeeded")
		}
	})
}

// TestStoreOnlyCommandsRefuseAPIURL: a command that works only on the
// store, given --api-url, refuses (a usage error) rather than open a store
// the user did not mean; one given --config-dir without --api-url too.
func TestStoreOnlyCommandsRefuseAPIURL(t *testing.T) {
	t.Parallel()
	env := map[string]string{"NSAUTH_DATA_DIR": filepath.Join(t.TempDir(), "data")}
	for _, args := range [][]string{
		{"users", "totp", "enroll", "alice", "--api-url", "https://auth.example.com"},
		{"users", "add", "bob", "--no-password", "--connector", "google", "--subject", "1", "--api-url", "https://auth.example.com"},
		{"audit", "hash", "--api-url", "https://auth.example.com"},
		{"apps", "consents", "list", "--api-url", "https://auth.example.com"},
		{"users", "list", "--config-dir", t.TempDir()},
	} {
		r := runServerCommand(env, strings.NewReader("a-token\n"), args...)
		if r.code != 2 || !strings.Contains(r.errOut, "api-url") {
			t.Errorf("%s: exit %d, want 2 (a usage error)\n%s", strings.Join(args, " "), r.code, r.errOut)
		}
	}
}

// TestAdminAPIRateLimited: the admin API's calls are limited per client
// address by --rate-limit, in a budget of their own: over it,
// ResourceExhausted with Retry-After, before any token is looked at; the
// logins' budget is untouched.
func TestAdminAPIRateLimited(t *testing.T) {
	t.Parallel()
	env := storeEnv(t, storetest.Backend{Name: "sqlite"})
	env["NSAUTH_RATE_LIMIT_PER_MINUTE"] = "2"
	serverURL := startServe(t, env)
	waitReady(t, serverURL)
	api := adminv1connect.NewAdminServiceClient(http.DefaultClient, serverURL)
	for i := range 3 {
		_, err := api.WhoAmI(context.Background(), connect.NewRequest(&adminv1.WhoAmIRequest{}))
		want := connect.CodeUnauthenticated
		if i == 2 {
			want = connect.CodeResourceExhausted
		}
		if connect.CodeOf(err) != want {
			t.Fatalf("call %d: %v, want %v", i+1, err, want)
		}
		if i == 2 {
			var ce *connect.Error
			if !errors.As(err, &ce) || ce.Meta().Get("Retry-After") == "" {
				t.Errorf("ResourceExhausted without Retry-After: %v", err)
			}
		}
	}
	_, err := mgmtv1alpha1connect.NewAuthServiceClient(http.DefaultClient, serverURL).LoginCli(context.Background(),
		connect.NewRequest(&mgmtv1alpha1.LoginCliRequest{Code: "not-a-code", RedirectUri: biRedirectURI}))
	if err == nil || connect.CodeOf(err) == connect.CodeResourceExhausted {
		t.Errorf("LoginCli after the admin calls: %v; want its own refusal, not the admin calls' limit", err)
	}
}
