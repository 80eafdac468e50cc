package tokenstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nsauth/nsauth/pkg/tokenstore"
)

const testURL = "http://127.0.0.1:8080"

// fakeKeyring is an in-memory keyring; fail makes every call fail as an
// unreachable Secret Service does.
type fakeKeyring struct {
	mu    sync.Mutex
	items map[string]string
	fail  error
}

func newFakeKeyring() *fakeKeyring { return &fakeKeyring{items: map[string]string{}} }

func (k *fakeKeyring) Get(service, user string) (string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.fail != nil {
		return "", k.fail
	}
	v, ok := k.items[service+"/"+user]
	if !ok {
		return "", fmt.Errorf("fake: %w", tokenstore.ErrNotFound)
	}
	return v, nil
}

func (k *fakeKeyring) Set(service, user, secret string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.fail != nil {
		return k.fail
	}
	k.items[service+"/"+user] = secret
	return nil
}

func (k *fakeKeyring) Delete(service, user string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.fail != nil {
		return k.fail
	}
	if _, ok := k.items[service+"/"+user]; !ok {
		return fmt.Errorf("fake: %w", tokenstore.ErrNotFound)
	}
	delete(k.items, service+"/"+user)
	return nil
}

func newStore(t *testing.T, kr tokenstore.Keyring) (*tokenstore.Store, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "cfg")
	s, err := tokenstore.New(tokenstore.Config{Dir: dir, Keyring: kr})
	if err != nil {
		t.Fatal(err)
	}
	return s, dir
}

func sampleEntry() *tokenstore.Entry {
	return &tokenstore.Entry{
		APIURL:       testURL,
		AccessToken:  "AT-secret-value",
		RefreshToken: "RT-secret-value",
		IDToken:      "IDT-secret-value",
		TokenType:    "Bearer",
		Scope:        "openid offline_access",
		Expiry:       time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC),
	}
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestSaveLoadRoundTripAndPermissions(t *testing.T) {
	t.Parallel()
	if runtime.GOOS == "windows" {
		t.Skip("Unix permissions")
	}
	s, _ := newStore(t, newFakeKeyring())
	if _, err := s.Load(testURL); !errors.Is(err, tokenstore.ErrNotFound) {
		t.Fatalf("Load before Save: err = %v, want ErrNotFound", err)
	}
	in := sampleEntry()
	if err := s.Save(in); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load(testURL)
	if err != nil {
		t.Fatal(err)
	}
	if got.AccessToken != in.AccessToken || got.RefreshToken != in.RefreshToken || got.IDToken != in.IDToken ||
		!got.Expiry.Equal(in.Expiry) || got.Scope != in.Scope || got.Storage != tokenstore.StorageFile {
		t.Errorf("Load = %+v (tokens elided), want the saved entry", got)
	}
	if m := mode(t, s.Dir()); m != 0o700 {
		t.Errorf("token directory mode = %04o, want 0700", m)
	}
	if m := mode(t, s.Path(testURL)); m != 0o600 {
		t.Errorf("token file mode = %04o, want 0600", m)
	}
	entries, err := os.ReadDir(s.Dir())
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range entries {
		if strings.Contains(de.Name(), ".tmp-") {
			t.Errorf("temporary file left behind: %s", de.Name())
		}
	}
}

func TestEntriesPerAPIURL(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, nil)
	urls := []string{"http://127.0.0.1:8080", "http://127.0.0.1:9090", "https://api.example.com", "https://api.example.com/prefix"}
	for i, u := range urls {
		e := sampleEntry()
		e.APIURL, e.AccessToken = u, fmt.Sprintf("token-%d", i)
		if err := s.Save(e); err != nil {
			t.Fatal(err)
		}
	}
	for i, u := range urls {
		e, err := s.Load(u)
		if err != nil {
			t.Fatalf("Load(%s): %v", u, err)
		}
		if want := fmt.Sprintf("token-%d", i); e.AccessToken != want {
			t.Errorf("Load(%s).AccessToken = %q, want %q", u, e.AccessToken, want)
		}
	}
}

func TestLoadRefusesInsecureFiles(t *testing.T) {
	t.Parallel()
	if runtime.GOOS == "windows" {
		t.Skip("Unix permissions and symbolic links")
	}
	tests := []struct {
		name   string
		tamper func(t *testing.T, s *tokenstore.Store)
		want   string
	}{
		{"world-readable file", func(t *testing.T, s *tokenstore.Store) { chmod(t, s.Path(testURL), 0o644) }, "accessible by other users (mode 0644)"},
		{"group-readable file", func(t *testing.T, s *tokenstore.Store) { chmod(t, s.Path(testURL), 0o640) }, "accessible by other users (mode 0640)"},
		{"world-writable file", func(t *testing.T, s *tokenstore.Store) { chmod(t, s.Path(testURL), 0o602) }, "accessible by other users (mode 0602)"},
		{"group-accessible directory", func(t *testing.T, s *tokenstore.Store) { chmod(t, s.Dir(), 0o750) }, "accessible by other users (mode 0750)"},
		{"symlinked file", func(t *testing.T, s *tokenstore.Store) {
			target := filepath.Join(t.TempDir(), "elsewhere.json")
			data, err := os.ReadFile(s.Path(testURL))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(target, data, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(s.Path(testURL)); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, s.Path(testURL)); err != nil {
				t.Fatal(err)
			}
		}, "is a symbolic link"},
		{"symlinked directory", func(t *testing.T, s *tokenstore.Store) {
			moved := filepath.Join(t.TempDir(), "moved")
			if err := os.Rename(s.Dir(), moved); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(moved, s.Dir()); err != nil {
				t.Fatal(err)
			}
		}, "is a symbolic link"},
		{"fifo instead of file", func(t *testing.T, s *tokenstore.Store) {
			if err := os.Remove(s.Path(testURL)); err != nil {
				t.Fatal(err)
			}
			mkfifo(t, s.Path(testURL))
		}, "not a regular file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, _ := newStore(t, nil)
			if err := s.Save(sampleEntry()); err != nil {
				t.Fatal(err)
			}
			tc.tamper(t, s)
			e, err := s.Load(testURL)
			if !errors.Is(err, tokenstore.ErrInsecureFile) {
				t.Fatalf("Load: err = %v, entry = %v; want ErrInsecureFile", err, e)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "secret-value") {
				t.Errorf("error leaks a token: %q", err)
			}
		})
	}
}

func chmod(t *testing.T, path string, m os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, m); err != nil {
		t.Fatal(err)
	}
}

func TestLoadRejectsForeignOrCorruptFiles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		content string
		want    string
	}{
		{"not JSON", "AT-secret-value garbage", "invalid JSON"},
		{"truncated", `{"version":1,"api_url":"` + testURL + `","access_token":"AT-secret-val`, "truncated"},
		{"other version", `{"version":7,"api_url":"` + testURL + `"}`, "unsupported format version 7"},
		{"other URL", `{"version":1,"api_url":"http://elsewhere:1"}`, "belongs to http://elsewhere:1"},
		{"unknown storage", `{"version":1,"api_url":"` + testURL + `","storage":"cloud"}`, `unknown storage "cloud"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, _ := newStore(t, nil)
			if err := s.Save(sampleEntry()); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(s.Path(testURL), []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := s.Load(testURL)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load: err = %v, want it to say %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error quotes the file: %q", err)
			}
		})
	}
}

func TestKeyringStorage(t *testing.T) {
	t.Parallel()
	kr := newFakeKeyring()
	s, _ := newStore(t, kr)
	e := sampleEntry()
	e.Storage = tokenstore.StorageKeyring
	if err := s.Save(e); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(s.Path(testURL))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("secret-value")) {
		t.Errorf("keyring entry's file holds a token:\n%s", raw)
	}
	if !bytes.Contains(raw, []byte(`"storage": "keyring"`)) {
		t.Errorf("file does not record keyring storage:\n%s", raw)
	}
	got, err := s.Load(testURL)
	if err != nil {
		t.Fatal(err)
	}
	if got.AccessToken != e.AccessToken || got.RefreshToken != e.RefreshToken || got.IDToken != e.IDToken {
		t.Error("Load did not return the secrets from the keyring")
	}
	meta, err := s.LoadMetadata(testURL)
	if err != nil {
		t.Fatal(err)
	}
	if meta.AccessToken != "" || !meta.Expiry.Equal(e.Expiry) {
		t.Errorf("LoadMetadata = %v, want metadata without tokens", meta)
	}

	// Back to a file: the keyring copy goes.
	e.Storage = tokenstore.StorageFile
	if err := s.Save(e); err != nil {
		t.Fatal(err)
	}
	if _, err := kr.Get("nsauth", testURL); !errors.Is(err, tokenstore.ErrNotFound) {
		t.Errorf("keyring item still present after moving to file storage (err %v)", err)
	}

	e.Storage = tokenstore.StorageKeyring
	if err := s.Save(e); err != nil {
		t.Fatal(err)
	}
	if existed, err := s.Delete(testURL); err != nil || !existed {
		t.Fatalf("Delete = %v, %v", existed, err)
	}
	if _, err := kr.Get("nsauth", testURL); !errors.Is(err, tokenstore.ErrNotFound) {
		t.Errorf("keyring item survived Delete (err %v)", err)
	}
	if _, err := os.Lstat(s.Path(testURL)); !os.IsNotExist(err) {
		t.Errorf("file survived Delete (err %v)", err)
	}
}

func TestKeyringUnavailableFailsWithoutFallback(t *testing.T) {
	t.Parallel()
	kr := newFakeKeyring()
	kr.fail = errors.New("dbus: no session bus")
	s, _ := newStore(t, kr)
	e := sampleEntry()
	e.Storage = tokenstore.StorageKeyring
	err := s.Save(e)
	if !errors.Is(err, tokenstore.ErrKeyringUnavailable) {
		t.Fatalf("Save: err = %v, want ErrKeyringUnavailable", err)
	}
	if !strings.Contains(err.Error(), "without --keyring") {
		t.Errorf("error %q does not say how to do without the keyring", err)
	}
	if _, err := os.Lstat(s.Path(testURL)); !os.IsNotExist(err) {
		t.Errorf("a token file was written although the keyring failed (err %v)", err)
	}
}

// TestSystemKeyringUnavailable checks the real keyring fails clearly on a
// machine without a Secret Service, as CI containers are.
func TestSystemKeyringUnavailable(t *testing.T) {
	t.Parallel()
	if runtime.GOOS != "linux" || os.Getenv("DBUS_SESSION_BUS_ADDRESS") != "" {
		t.Skip("only meaningful on Linux without a D-Bus session")
	}
	s, _ := newStore(t, tokenstore.SystemKeyring{})
	e := sampleEntry()
	e.Storage = tokenstore.StorageKeyring
	if err := s.Save(e); !errors.Is(err, tokenstore.ErrKeyringUnavailable) {
		t.Fatalf("Save with no Secret Service: err = %v, want ErrKeyringUnavailable", err)
	}
	if _, err := os.Lstat(s.Path(testURL)); !os.IsNotExist(err) {
		t.Errorf("a token file was written although the keyring failed (err %v)", err)
	}
}

func TestDeleteMissingAndInsecure(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, nil)
	if existed, err := s.Delete(testURL); err != nil || existed {
		t.Fatalf("Delete of nothing = %v, %v; want false, nil", existed, err)
	}
	if err := s.Save(sampleEntry()); err != nil {
		t.Fatal(err)
	}
	chmod(t, s.Path(testURL), 0o644)
	if existed, err := s.Delete(testURL); err != nil || !existed {
		t.Fatalf("Delete of an insecure file = %v, %v; want true, nil", existed, err)
	}
}

func TestEntryNeverPrintsTokens(t *testing.T) {
	t.Parallel()
	e := sampleEntry()
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("entry", "e", e, "v", *e)
	outputs := map[string]string{
		"%v":       fmt.Sprintf("%v", e),
		"%+v":      fmt.Sprintf("%+v", e),
		"%#v":      fmt.Sprintf("%#v", e),
		"%s":       fmt.Sprintf("%s", *e),
		"value %v": fmt.Sprintf("%v", *e),
		"slog":     logged.String(),
	}
	for name, out := range outputs {
		if strings.Contains(out, "secret-value") {
			t.Errorf("%s prints a token: %s", name, out)
		}
		if !strings.Contains(out, testURL) {
			t.Errorf("%s omits the API URL: %s", name, out)
		}
	}
}

func TestFresh(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		entry *tokenstore.Entry
		want  bool
	}{
		{"nil", nil, false},
		{"no access token", &tokenstore.Entry{Expiry: now.Add(time.Hour)}, false},
		{"plenty left", &tokenstore.Entry{AccessToken: "a", Expiry: now.Add(2 * time.Minute)}, true},
		{"inside margin", &tokenstore.Entry{AccessToken: "a", Expiry: now.Add(59 * time.Second)}, false},
		{"exactly margin", &tokenstore.Entry{AccessToken: "a", Expiry: now.Add(time.Minute)}, false},
		{"expired", &tokenstore.Entry{AccessToken: "a", Expiry: now.Add(-time.Second)}, false},
		{"unknown expiry", &tokenstore.Entry{AccessToken: "a"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := tc.entry.Fresh(now, time.Minute); got != tc.want {
				t.Errorf("Fresh = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestLockExcludesAndHonoursContext(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, nil)
	unlock, err := s.Lock(context.Background(), testURL)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := s.Lock(ctx, testURL); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second Lock while held: err = %v, want DeadlineExceeded", err)
	}
	// Another URL has its own lock.
	unlockOther, err := s.Lock(context.Background(), "http://127.0.0.1:9")
	if err != nil {
		t.Fatalf("Lock on another URL: %v", err)
	}
	unlockOther()

	acquired := make(chan func())
	go func() {
		u, err := s.Lock(context.Background(), testURL)
		if err != nil {
			t.Error(err)
			close(acquired)
			return
		}
		acquired <- u
	}()
	select {
	case <-acquired:
		t.Fatal("lock acquired while held")
	case <-time.After(50 * time.Millisecond):
	}
	unlock()
	select {
	case u := <-acquired:
		if u != nil {
			u()
		}
	case <-time.After(5 * time.Second):
		t.Fatal("lock not acquired after release")
	}
	if m := mode(t, filepath.Join(s.Dir(), filepath.Base(strings.TrimSuffix(s.Path(testURL), ".json")+".lock"))); m != 0o600 {
		t.Errorf("lock file mode = %04o, want 0600", m)
	}
}

// TestConcurrentSaveLoad checks readers never see a partly written file.
func TestConcurrentSaveLoad(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, nil)
	if err := s.Save(sampleEntry()); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	defer wg.Wait()
	defer close(stop)
	for w := range 2 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				e := sampleEntry()
				e.AccessToken = strings.Repeat(fmt.Sprint(w), 1000+i%500)
				if err := s.Save(e); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	deadline := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(deadline) {
		e, err := s.Load(testURL)
		if err != nil {
			t.Fatalf("Load during concurrent saves: %v", err)
		}
		if len(e.AccessToken) < 1000 && e.AccessToken != sampleEntry().AccessToken {
			t.Fatalf("Load returned a torn entry (access token of %d bytes)", len(e.AccessToken))
		}
	}
}

func TestCheckKeyring(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		fail    error
		wantErr bool
	}{
		{"available, item missing", nil, false},
		{"unavailable", errors.New("no D-Bus session"), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			kr := newFakeKeyring()
			kr.fail = tc.fail
			s, _ := newStore(t, kr)
			err := s.CheckKeyring(testURL)
			if tc.wantErr != errors.Is(err, tokenstore.ErrKeyringUnavailable) {
				t.Errorf("CheckKeyring = %v, want unavailable: %v", err, tc.wantErr)
			}
		})
	}
}
