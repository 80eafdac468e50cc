package password_test

import (
	"errors"
	"runtime"
	"strings"
	"testing"

	"github.com/nsauth/nsauth/internal/password"
)

func TestHashVerify(t *testing.T) {
	t.Parallel()
	h, err := password.Hash("correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(h, "correct") {
		t.Fatal("hash contains the password")
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash %q does not carry the default parameters", h)
	}
	h2, err := password.Hash("correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	if h == h2 {
		t.Fatal("two hashes of one password are equal: salt is not random")
	}
	for _, tc := range []struct {
		name string
		pw   string
		want bool
	}{
		{"right password", "correct horse battery staple", true},
		{"wrong password", "correct horse battery stapler", false},
		{"empty", "", false},
		{"oversized", strings.Repeat("x", password.MaxLength+1), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ok, err := password.Verify(tc.pw, h)
			if err != nil {
				t.Fatal(err)
			}
			if ok != tc.want {
				t.Fatalf("Verify = %v, want %v", ok, tc.want)
			}
		})
	}
}

func TestVerifyMalformed(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, hash string
	}{
		{"empty", ""},
		{"bcrypt", "$2a$10$abcdefghijklmnopqrstuv"},
		{"argon2i", "$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA"},
		{"old version", "$argon2id$v=16$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA"},
		{"huge memory", "$argon2id$v=19$m=99999999,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA"},
		{"unknown param", "$argon2id$v=19$m=19456,t=2,x=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA"},
		{"bad base64", "$argon2id$v=19$m=19456,t=2,p=1$!!!$aGFzaGhhc2hoYXNoaGFzaA"},
		{"short key", "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ok, err := password.Verify("whatever", tc.hash)
			if ok || !errors.Is(err, password.ErrMalformedHash) {
				t.Fatalf("Verify = %v, %v; want false, ErrMalformedHash", ok, err)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		pw   string
		ok   bool
	}{
		{"long enough", "abcdefgh", true},
		{"too short", "abcdefg", false},
		{"multibyte counts runes", "ééééééé", false},
		{"too long", strings.Repeat("a", password.MaxLength+1), false},
		{"invalid utf-8", "abcdefgh\xff", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := password.Validate(tc.pw)
			if (err == nil) != tc.ok {
				t.Fatalf("Validate = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && strings.Contains(err.Error(), tc.pw) {
				t.Fatal("error echoes the password")
			}
		})
	}
}

func TestGenerate(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 50 {
		pw, err := password.Generate(24)
		if err != nil {
			t.Fatal(err)
		}
		if len(pw) != 24 {
			t.Fatalf("len = %d, want 24", len(pw))
		}
		if strings.ContainsAny(pw, "0O1lI") {
			t.Fatalf("%q contains a look-alike character", pw)
		}
		if seen[pw] {
			t.Fatal("Generate repeated itself")
		}
		seen[pw] = true
		if err := password.Validate(pw); err != nil {
			t.Fatalf("generated password is not valid: %v", err)
		}
	}
}

// TestBurnCostsAVerification checks that Burn really runs argon2id at the
// default cost. argon2id must fill Memory KiB of blocks, so the bytes the
// runtime hands out during one Burn are a measure of the work that does not
// depend on how busy the machine is (a timing comparison flaked under a full
// CI run). The test is not parallel: nothing else in this package allocates
// while it measures.
func TestBurnCostsAVerification(t *testing.T) {
	want := uint64(password.DefaultParams.Memory) * 1024
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	password.Burn("anything")
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got < want {
		t.Fatalf("Burn allocated %d bytes; argon2id at m=%d KiB needs at least %d: Burn is not doing the work",
			got, password.DefaultParams.Memory, want)
	}
}
