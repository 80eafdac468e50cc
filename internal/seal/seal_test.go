package seal_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/nsauth/nsauth/internal/seal"
)

func mustKey(t *testing.T, text string) *seal.Key {
	t.Helper()
	k, err := seal.ParseKey(text)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestParseKey(t *testing.T) {
	t.Parallel()
	raw := bytes.Repeat([]byte{0xfb}, 32) // encodes differently in std and url alphabets
	for _, tc := range []struct {
		name, text, wantErr string
	}{
		{"standard base64", base64.StdEncoding.EncodeToString(raw), ""},
		{"with a newline, as openssl writes it", base64.StdEncoding.EncodeToString(raw) + "\n", ""},
		{"unpadded", base64.RawStdEncoding.EncodeToString(raw), ""},
		{"base64url", base64.URLEncoding.EncodeToString(raw), ""},
		{"empty", "  \n", "is empty"},
		{"not base64", "this is not base64 at all!", "is not base64"},
		{"16 bytes", base64.StdEncoding.EncodeToString(raw[:16]), "decodes to 16 bytes, not 32"},
		{"33 bytes", base64.StdEncoding.EncodeToString(append(raw, 1)), "decodes to 33 bytes, not 32"},
		{"hex of 32 bytes", fmt.Sprintf("%x", raw), "decodes to 48 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			k, err := seal.ParseKey(tc.text)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("ParseKey: %v", err)
				}
				if want := mustKey(t, base64.StdEncoding.EncodeToString(raw)).ID(); k.ID() != want {
					t.Fatalf("ID = %s, want %s (the same key in another encoding)", k.ID(), want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("ParseKey error = %v, want one containing %q", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), strings.TrimSpace(tc.text)) && strings.TrimSpace(tc.text) != "" {
				t.Fatalf("the error repeats the key text: %v", err)
			}
		})
	}
}

func TestParseKeys(t *testing.T) {
	t.Parallel()
	a, b, c := seal.GenerateKey(), seal.GenerateKey(), seal.GenerateKey()
	short := base64.StdEncoding.EncodeToString([]byte("sixteen byte key"))
	for _, tc := range []struct {
		name, text string
		want       []string // the keys' texts, in order
		wantErr    string
	}{
		{"one key", a, []string{a}, ""},
		{"one key and a newline", a + "\n", []string{a}, ""},
		{"two, by a comma", a + "," + b, []string{a, b}, ""},
		{"three, by commas and spaces", a + " , " + b + ",\t" + c, []string{a, b, c}, ""},
		{"lines, as a key file", a + "\n" + b + "\n" + c + "\n", []string{a, b, c}, ""},
		{"CRLF lines", a + "\r\n" + b + "\r\n", []string{a, b}, ""},
		{"empty", "", nil, "is empty"},
		{"a bad first key", "!!," + a, nil, "key 1 of 2 is not base64"},
		{"a short last key", a + "," + b + "," + short, nil, "key 3 of 3 decodes to 16 bytes, not 32"},
		{"an empty place", a + ",," + b, nil, "key 2 of 3 is empty"},
		{"a blank line between", a + "\n\n" + b, nil, "key 2 of 3 is empty"},
		{"a trailing comma", a + ",", nil, "key 2 of 2 is empty"},
		{"a key twice", a + "," + b + "," + a, nil, "key 3 of 3 is key 1 again"},
		{"the same key in two encodings", a + "," + strings.TrimRight(a, "="), nil, "key 2 of 2 is key 1 again"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			keys, err := seal.ParseKeys(tc.text)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseKeys error = %v, want one containing %q", err, tc.wantErr)
				}
				for _, k := range []string{a, b, c, short} {
					if strings.Contains(err.Error(), k) || strings.Contains(err.Error(), strings.TrimRight(k, "=")) {
						t.Fatalf("the error shows a key: %v", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseKeys: %v", err)
			}
			if len(keys) != len(tc.want) {
				t.Fatalf("ParseKeys gave %d keys, want %d", len(keys), len(tc.want))
			}
			for i, text := range tc.want {
				if want := mustKey(t, text).ID(); keys[i].ID() != want {
					t.Fatalf("key %d has id %s, want %s", i+1, keys[i].ID(), want)
				}
			}
		})
	}
	if strings.ContainsAny(seal.KeySeparator, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_ \t\r\n") {
		t.Fatalf("the separator %q can appear in a key's encoding", seal.KeySeparator)
	}
}

func TestSealWith(t *testing.T) {
	t.Parallel()
	older, newer := mustKey(t, seal.GenerateKey()), mustKey(t, seal.GenerateKey())
	ring := seal.NewKeyring(newer, older, nil, newer)
	if got := strings.Join(ring.IDs(), ","); got != newer.ID()+","+older.ID() {
		t.Fatalf("IDs = %s, want the current key, then the old one, once each", got)
	}
	sealed, err := ring.SealWith(older.ID(), []byte("v"), []byte("row"))
	if err != nil || seal.KeyID(sealed) != older.ID() {
		t.Fatalf("SealWith(older) = key %s, %v; want sealed under %s", seal.KeyID(sealed), err, older.ID())
	}
	if plain, err := seal.NewKeyring(older).Open(sealed, []byte("row")); err != nil || string(plain) != "v" {
		t.Fatalf("the older key alone opens it: %q, %v", plain, err)
	}
	var ke *seal.KeyError
	if _, err := seal.NewKeyring(older).SealWith(newer.ID(), []byte("v"), nil); !errors.As(err, &ke) || ke.ID != newer.ID() {
		t.Fatalf("SealWith a key the keyring lacks = %v, want a KeyError naming it", err)
	}
}

func TestKeyNeverPrintsItself(t *testing.T) {
	t.Parallel()
	text := seal.GenerateKey()
	k := mustKey(t, text)
	raw, _ := base64.StdEncoding.DecodeString(text)
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		for _, v := range []any{k, struct{ K *seal.Key }{k}, seal.NewKeyring(k)} {
			out := fmt.Sprintf(format, v)
			if strings.Contains(out, text) || bytes.Contains([]byte(out), raw) || strings.Contains(out, fmt.Sprintf("%x", raw)) {
				t.Fatalf("%s of %T shows the key: %s", format, v, out)
			}
		}
	}
	if len(k.ID()) != 16 {
		t.Fatalf("ID %q is not 16 hex digits", k.ID())
	}
}

func TestSealOpen(t *testing.T) {
	t.Parallel()
	a, b, c := mustKey(t, seal.GenerateKey()), mustKey(t, seal.GenerateKey()), mustKey(t, seal.GenerateKey())
	plain := []byte("the private key")
	sealedA := seal.NewKeyring(a).Seal(plain, []byte("row 1"))
	sealedB := seal.NewKeyring(b).Seal(plain, []byte("row 1"))
	tampered := bytes.Clone(sealedA)
	if tampered[len(tampered)-3] == 'A' { // another base64url character, so the value still decodes
		tampered[len(tampered)-3] = 'B'
	} else {
		tampered[len(tampered)-3] = 'A'
	}
	relabelled := []byte(strings.Replace(string(sealedA), a.ID(), b.ID(), 1))

	for _, tc := range []struct {
		name    string
		ring    *seal.Keyring
		sealed  []byte
		ad      string
		wantErr error
	}{
		{"same key and row", seal.NewKeyring(a), sealedA, "row 1", nil},
		{"an old key given for rotation", seal.NewKeyring(b, a), sealedA, "row 1", nil},
		{"the new key, sealed with it", seal.NewKeyring(b, a), sealedB, "row 1", nil},
		{"another row", seal.NewKeyring(a), sealedA, "row 2", seal.ErrNotAuthentic},
		{"the wrong key", seal.NewKeyring(c), sealedA, "row 1", seal.ErrUnknownKey},
		{"only the new key after rotation", seal.NewKeyring(b), sealedA, "row 1", seal.ErrUnknownKey},
		{"altered ciphertext", seal.NewKeyring(a), tampered, "row 1", seal.ErrNotAuthentic},
		{"header names another key", seal.NewKeyring(a, b), relabelled, "row 1", seal.ErrNotAuthentic},
		{"plaintext", seal.NewKeyring(a), plain, "row 1", seal.ErrMalformed},
		{"truncated", seal.NewKeyring(a), sealedA[:30], "row 1", seal.ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := tc.ring.Open(tc.sealed, []byte(tc.ad))
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Open error = %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr == nil && !bytes.Equal(got, plain) {
				t.Fatalf("Open = %q, want %q", got, plain)
			}
		})
	}
	if bytes.Contains(sealedA, plain) || !seal.IsSealed(sealedA) || seal.IsSealed(plain) {
		t.Fatal("a sealed value must carry the header and not the plaintext")
	}
	if seal.KeyID(sealedA) != a.ID() || seal.KeyID(plain) != "" {
		t.Fatalf("KeyID = %q, %q", seal.KeyID(sealedA), seal.KeyID(plain))
	}
	if bytes.Equal(seal.NewKeyring(a).Seal(plain, nil), seal.NewKeyring(a).Seal(plain, nil)) {
		t.Fatal("two seals of one value are equal: the nonce is not random")
	}
	var ke *seal.KeyError
	if _, err := seal.NewKeyring(c).Open(sealedA, nil); !errors.As(err, &ke) || ke.ID != a.ID() {
		t.Fatalf("Open with the wrong key: %v, want a KeyError naming %s", err, a.ID())
	}
}

func ExampleKeyring() {
	key, _ := seal.ParseKey("q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=")
	ring := seal.NewKeyring(key)
	sealed := ring.Seal([]byte("client secret"), []byte("client_secret:nsauth-cli"))
	plain, err := ring.Open(sealed, []byte("client_secret:nsauth-cli"))
	fmt.Println(string(plain), err, seal.KeyID(sealed) == key.ID())
	// Output: client secret <nil> true
}
