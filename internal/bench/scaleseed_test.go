package bench

import (
	"context"
	"io"
	"maps"
	"strconv"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/store"
)

// TestSeedKeepsTheSchema seeds a SQLite store directly: the audit events'
// indexes are those the schema made, every seeded ref is indexed (the
// schema's trigger ran), the event stored before seeding comes after the
// seeded history, and the rows read back through the store as the server
// reads them.
func TestSeedKeepsTheSchema(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.OpenSQLite(ctx, dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.InsertAuditEvent(ctx, audit.Event{Time: time.Now(), Type: audit.SigningKeyRotated}); err != nil {
		t.Fatal(err)
	}
	w, err := openSQLiteWriter(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	before, err := w.indexes(ctx, "nsauth_audit_events")
	if err != nil || len(before) < 5 {
		t.Fatalf("indexes before: %v, %v", before, err)
	}
	d := &scaleData{users: 20, events: 300, revocations: 10, now: time.Now(), window: 24 * time.Hour,
		key: []byte("0123456789abcdef0123456789abcdef"), clientID: "nsauth-cli", passwordHash: "$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA"}
	// The store's users and client are what the seeded rows refer to.
	if _, err := w.db.ExecContext(ctx, `INSERT INTO nsauth_clients (id, secret_hash, redirect_uris, created_at) VALUES ('nsauth-cli', x'00', '[]', 0)`); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := seed(ctx, w, d, io.Discard); err != nil {
		t.Fatal(err)
	}
	after, err := w.indexes(ctx, "nsauth_audit_events")
	if err != nil || !maps.Equal(before, after) {
		t.Errorf("indexes after seeding: %v (%v), want %v", after, err, before)
	}
	refs := 0
	for j := range d.events {
		row := make([]any, len(eventColumns))
		d.eventRow(j, row)
		for _, c := range row[13].(string) {
			if c == ':' {
				refs++
			}
		}
	}
	if n, err := w.count(ctx, `SELECT COUNT(*) FROM nsauth_audit_refs`); err != nil || n != int64(refs) {
		t.Errorf("%d refs indexed (%v), want %d", n, err, refs)
	}
	all, err := st.AuditEvents(ctx, store.AuditFilter{})
	if err != nil || len(all) != d.events+1 {
		t.Fatalf("%d events read back (%v), want %d", len(all), err, d.events+1)
	}
	for i := 1; i < len(all); i++ {
		if all[i].Time.Before(all[i-1].Time) {
			t.Fatalf("event %d is older than the one before it: ids do not grow with time", all[i].ID)
		}
	}
	if last := all[len(all)-1]; last.Type != audit.SigningKeyRotated {
		t.Errorf("the last event is %s, want the one stored before seeding", last.Type)
	}
	j := 2 // a code exchange: its refs name the code, the refresh token and the access token
	evs, err := st.AuditEvents(ctx, store.AuditFilter{Ref: d.eventRef(j, "token")})
	if err != nil || len(evs) != 1 || evs[0].Type != audit.CodeExchanged || evs[0].Username != d.username(d.eventUser(j)) {
		t.Errorf("the events of event %d's token: %+v, %v", j, evs, err)
	}
	u, err := st.UserByUsername(ctx, d.username(7))
	if err != nil || u.ID != d.userID(7) || !u.HasPassword() {
		t.Errorf("user 7: %+v, %v", u, err)
	}
	if n, err := w.count(ctx, `SELECT COUNT(*) FROM nsauth_revocations r JOIN nsauth_access_tokens t ON t.id = r.token_id
		WHERE t.revoked_at IS NOT NULL AND r.expires_at = t.expires_at AND r.expires_at > `+strconv.FormatInt(time.Now().UnixMilli(), 10)); err != nil || n != int64(d.revocations) {
		t.Errorf("%d live revocations with their token records (%v), want %d", n, err, d.revocations)
	}
}
