package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nsauth/nsauth/internal/app"
	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/config"
	"github.com/nsauth/nsauth/internal/servetest"
	"github.com/nsauth/nsauth/internal/store"
)

// TestAuditIsWired: the built-in provider's recorder writes to the store
// and to the stream NSAUTH_AUDIT_LOG names, and its refs are keyed with
// the store's audit key.
func TestAuditIsWired(t *testing.T) {
	t.Parallel()
	logFile := filepath.Join(t.TempDir(), "audit.jsonl")
	tests := []struct {
		name   string
		log    string
		stream func(s *servetest.Server) string
	}{
		{"stdout", "stdout", func(s *servetest.Server) string { return s.Stdout.String() }},
		{"file", logFile, func(*servetest.Server) string {
			fi, err := os.Stat(logFile)
			if err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("audit log file: %v, %v; want mode 0600", fi, err)
				return ""
			}
			data, _ := os.ReadFile(logFile)
			return string(data)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := builtinEnv(t)
			env["NSAUTH_AUDIT_LOG"] = tc.log
			s := servetest.Start(t, servetest.Options{Env: env})
			rec := s.App.Audit()
			ref := rec.Ref("a-token")
			if err := rec.Record(context.Background(), audit.Event{Type: audit.TokenRevoked, Username: "admin", Refs: map[string]string{audit.RefToken: ref}}); err != nil {
				t.Fatal(err)
			}
			// The last line: the server recorded its own events before
			// (the first signing key).
			lines := strings.Split(strings.TrimSpace(tc.stream(s)), "\n")
			var streamed audit.Event
			if err := json.Unmarshal([]byte(lines[len(lines)-1]), &streamed); err != nil || streamed.Type != audit.TokenRevoked || streamed.Replica == "" {
				t.Errorf("stream: %+v, %v", streamed, err)
			}
			st, err := app.OpenSealedStore(context.Background(), config.Builtin{DataDir: env["NSAUTH_DATA_DIR"]}, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			stored, err := st.AuditEvents(context.Background(), store.AuditFilter{Ref: ref})
			if err != nil || len(stored) != 1 {
				t.Fatalf("stored events with the ref: %v, %v", stored, err)
			}
			key, err := app.AuditKey(context.Background(), st)
			if err != nil || audit.Hash(key, "a-token") != ref {
				t.Errorf("the ref is not keyed with the store's audit key (%v)", err)
			}
		})
	}
}

// TestAuditRequiredFailsClosedInTheServer: with NSAUTH_AUDIT_REQUIRED=true
// an event the store cannot take (the server's database is closed) is an
// error for the caller; by default it is not.
func TestAuditRequiredFailsClosedInTheServer(t *testing.T) {
	t.Parallel()
	for _, required := range []string{"true", "false"} {
		t.Run("required="+required, func(t *testing.T) {
			t.Parallel()
			env := builtinEnv(t)
			env["NSAUTH_AUDIT_REQUIRED"] = required
			srv, err := servetest.New(context.Background(), env, []string{"--listen", "127.0.0.1:0"}, app.Deps{})
			if err != nil {
				t.Fatal(err)
			}
			if err := srv.Close(); err != nil {
				t.Fatal(err)
			}
			err = srv.Audit().Record(context.Background(), audit.Event{Type: audit.LoginSucceeded, Username: "admin"})
			if got := errors.Is(err, audit.ErrNotRecorded); got != (required == "true") {
				t.Errorf("Record after the store closed = %v", err)
			}
		})
	}
}

// TestStoreAuditor: the store-administration commands' recorder writes
// events, with the operating-system user, to a store opened without the
// secret key.
func TestStoreAuditor(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	sealed, err := app.OpenSealedStore(context.Background(), config.Builtin{DataDir: dir}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = sealed.Close()
	st, err := app.OpenStore(context.Background(), config.Store{DataDir: dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a, err := app.StoreAuditor(st, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Record(context.Background(), audit.Event{Type: audit.UserChanged, Username: "alice", Reason: "disabled", Actor: audit.OSUser()}); err != nil {
		t.Fatal(err)
	}
	got, err := st.AuditEvents(context.Background(), store.AuditFilter{User: "alice"})
	if err != nil || len(got) != 1 || got[0].Actor == "" || got[0].Reason != "disabled" {
		t.Fatalf("events %+v, %v", got, err)
	}
}
