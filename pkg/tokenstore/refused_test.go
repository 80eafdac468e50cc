package tokenstore_test

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nsauth/nsauth/pkg/tokenstore"
)

// TestMarkRefused: a refused session keeps its refusal time, in the file
// whatever the storage, and none of its tokens anywhere.
func TestMarkRefused(t *testing.T) {
	t.Parallel()
	at := time.Date(2030, 1, 1, 9, 30, 15, 500, time.FixedZone("CET", 3600))
	for _, storage := range []tokenstore.Storage{tokenstore.StorageFile, tokenstore.StorageKeyring} {
		t.Run(string(storage), func(t *testing.T) {
			t.Parallel()
			kr := newFakeKeyring()
			s, _ := newStore(t, kr)
			e := sampleEntry()
			e.Storage = storage
			if err := s.Save(e); err != nil {
				t.Fatal(err)
			}
			if e.Refused() {
				t.Fatal("a fresh entry counts as refused")
			}
			e.MarkRefused(at)
			if err := s.Save(e); err != nil {
				t.Fatal(err)
			}
			for name, load := range map[string]func(string) (*tokenstore.Entry, error){"Load": s.Load, "LoadMetadata": s.LoadMetadata} {
				got, err := load(testURL)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if !got.Refused() || !got.RefusedAt.Equal(at.Truncate(time.Second)) {
					t.Errorf("%s: RefusedAt = %v, want %v", name, got.RefusedAt, at.Truncate(time.Second))
				}
				if got.AccessToken != "" || got.RefreshToken != "" || got.IDToken != "" || !got.Expiry.IsZero() || got.Fresh(at, 0) {
					t.Errorf("%s: a refused entry still holds tokens or an expiry: %v", name, got)
				}
			}
			raw, err := os.ReadFile(s.Path(testURL))
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(raw, []byte("secret-value")) || !bytes.Contains(raw, []byte(`"refused_at": "2030-01-01T08:30:15Z"`)) {
				t.Errorf("token file after MarkRefused:\n%s", raw)
			}
			if secrets, _ := kr.Get("nsauth", testURL); strings.Contains(secrets, "secret-value") {
				t.Errorf("the keyring still holds a token: %s", secrets)
			}
			if !strings.Contains(e.String(), "refused_at=2030-01-01T08:30:15Z") {
				t.Errorf("String() = %s, want the refusal time", e)
			}
		})
	}
}
