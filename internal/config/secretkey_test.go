package config_test

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/nsauth/nsauth/internal/config"
	"github.com/nsauth/nsauth/internal/seal"
)

func TestSecretKeySettings(t *testing.T) {
	t.Parallel()
	key, old := seal.GenerateKey(), seal.GenerateKey()
	short := base64.StdEncoding.EncodeToString([]byte("sixteen byte key"))
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	newer := seal.GenerateKey()
	keyFile, oldFile, shortFile := write("key", key+"\n"), write("old", old), write("short", short)
	ringFile, crlfFile := write("ring", newer+"\n"+key+"\n"), write("crlf", newer+"\r\n"+key+"\r\n")
	badRingFile := write("badring", newer+"\n"+short+"\n")
	id := func(texts ...string) string {
		ids := make([]string, len(texts))
		for i, text := range texts {
			k, err := seal.ParseKey(text)
			if err != nil {
				t.Fatal(err)
			}
			ids[i] = k.ID()
		}
		return strings.Join(ids, ",")
	}
	pg := map[string]string{"NSAUTH_DATABASE_URL": "postgres://u@db/nsauth"}
	with := func(base map[string]string, kv ...string) map[string]string {
		m := map[string]string{"HOME": "/home/u"}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	for _, tc := range []struct {
		name             string
		env              map[string]string
		args             []string
		wantCur, wantOld string // key ids, comma-separated
		wantFile         string
		wantErr          string
		secrets          []string
	}{
		{"SQLite without a key: the data directory's file", with(nil), nil, "", "", "", "", nil},
		{"the key in the environment", with(pg, "NSAUTH_SECRET_KEY", key), nil, id(key), "", "", "", nil},
		{"the key in a file", with(pg, "NSAUTH_SECRET_KEY_FILE", keyFile), nil, id(key), "", keyFile, "", nil},
		{"the file by flag", with(pg), []string{"--secret-key-file", keyFile}, id(key), "", keyFile, "", nil},
		{"two keys in the environment, newest first", with(pg, "NSAUTH_SECRET_KEY", newer+","+key), nil, id(newer, key), "", "", "", nil},
		{"two keys with spaces after the comma", with(pg, "NSAUTH_SECRET_KEY", " "+newer+" , "+key+"\n"), nil, id(newer, key), "", "", "", nil},
		{"two keys in a file, one per line", with(pg, "NSAUTH_SECRET_KEY_FILE", ringFile), nil, id(newer, key), "", ringFile, "", nil},
		{"two keys in a file with CRLF lines", with(pg, "NSAUTH_SECRET_KEY_FILE", crlfFile), nil, id(newer, key), "", crlfFile, "", nil},
		{"rotating with the old settings", with(pg, "NSAUTH_SECRET_KEY", key, "NSAUTH_OLD_SECRET_KEY_FILE", oldFile), nil, id(key), id(old), "", "", nil},
		{"old key by flag", with(pg, "NSAUTH_SECRET_KEY", key), []string{"--old-secret-key-file", oldFile}, id(key), id(old), "", "", nil},
		{"PostgreSQL without a key", with(pg), nil, "", "", "", "NSAUTH_SECRET_KEY: is required with PostgreSQL", nil},
		{"PostgreSQL: how to make one", with(pg), nil, "", "", "", "openssl rand -base64 32", nil},
		{"a short key", with(pg, "NSAUTH_SECRET_KEY", short), nil, "", "", "", "NSAUTH_SECRET_KEY: decodes to 16 bytes, not 32", []string{short}},
		{"not base64", with(pg, "NSAUTH_SECRET_KEY", "hunter2 hunter2"), nil, "", "", "", "NSAUTH_SECRET_KEY: is not base64", []string{"hunter2"}},
		{"a bad second key", with(pg, "NSAUTH_SECRET_KEY", newer+","+short), nil, "", "", "", "NSAUTH_SECRET_KEY: key 2 of 2 decodes to 16 bytes, not 32", []string{short, newer}},
		{"a bad key among three", with(pg, "NSAUTH_SECRET_KEY", newer+",hunter2!,"+key), nil, "", "", "", "NSAUTH_SECRET_KEY: key 2 of 3 is not base64", []string{"hunter2", newer, key}},
		{"an empty place in the list", with(pg, "NSAUTH_SECRET_KEY", newer+",,"+key), nil, "", "", "", "NSAUTH_SECRET_KEY: key 2 of 3 is empty", []string{newer, key}},
		{"a trailing comma", with(pg, "NSAUTH_SECRET_KEY", newer+","), nil, "", "", "", "NSAUTH_SECRET_KEY: key 2 of 2 is empty", []string{newer}},
		{"a key listed twice", with(pg, "NSAUTH_SECRET_KEY", newer+","+key+","+newer), nil, "", "", "", "NSAUTH_SECRET_KEY: key 3 of 3 is key 1 again", []string{newer, key}},
		{"keys separated by a semicolon", with(pg, "NSAUTH_SECRET_KEY", newer+";"+key), nil, "", "", "", "NSAUTH_SECRET_KEY: is not base64", []string{newer, key}},
		{"a short key in a file", with(pg, "NSAUTH_SECRET_KEY_FILE", shortFile), nil, "", "", "", "NSAUTH_SECRET_KEY_FILE (--secret-key-file): the key file " + shortFile + ": decodes to 16 bytes", []string{short}},
		{"a bad second line in a file", with(pg, "NSAUTH_SECRET_KEY_FILE", badRingFile), nil, "", "", "", "NSAUTH_SECRET_KEY_FILE (--secret-key-file): the key file " + badRingFile + ": key 2 of 2 decodes to 16 bytes", []string{short, newer}},
		{"a missing file", with(pg, "NSAUTH_SECRET_KEY_FILE", filepath.Join(dir, "nope")), nil, "", "", "", "NSAUTH_SECRET_KEY_FILE (--secret-key-file): reading the key file", nil},
		{"both ways", with(pg, "NSAUTH_SECRET_KEY", key, "NSAUTH_SECRET_KEY_FILE", keyFile), nil, "", "", "", "cannot be combined with NSAUTH_SECRET_KEY", []string{key}},
		{"an old key alone", with(nil, "NSAUTH_OLD_SECRET_KEY", old), nil, "", "", "", "NSAUTH_OLD_SECRET_KEY: is the key being replaced", []string{old}},
		{"a bad old key", with(pg, "NSAUTH_SECRET_KEY", key, "NSAUTH_OLD_SECRET_KEY", short), nil, "", "", "", "NSAUTH_OLD_SECRET_KEY: decodes to 16 bytes", []string{short, key}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := loadWith(t, tc.env, tc.args...)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Load error = %v, want one containing %q", err, tc.wantErr)
				}
				for _, s := range tc.secrets {
					if strings.Contains(err.Error(), s) {
						t.Fatalf("the error shows a key: %v", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			keys := cfg.Auth.Builtin.SecretKeys
			if got := idsOf(keys.Listed); got != tc.wantCur {
				t.Errorf("Listed = %s, want %s", got, tc.wantCur)
			}
			if got := idsOf(keys.Old); got != tc.wantOld {
				t.Errorf("Old = %s, want %s", got, tc.wantOld)
			}
			if keys.File != tc.wantFile {
				t.Errorf("File = %q, want %q", keys.File, tc.wantFile)
			}
		})
	}
}

// idsOf are the keys' ids, comma-separated.
func idsOf(keys []*seal.Key) string {
	ids := make([]string, len(keys))
	for i, k := range keys {
		ids[i] = k.ID()
	}
	return strings.Join(ids, ",")
}

func TestLoadSecretKeys(t *testing.T) {
	t.Parallel()
	key := seal.GenerateKey()
	fs := pflag.NewFlagSet("keys", pflag.ContinueOnError)
	config.RegisterSecretKeyFlags(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	keys, err := config.LoadSecretKeys(fs, func(k string) (string, bool) {
		return map[string]string{"NSAUTH_SECRET_KEY": key}[k], k == "NSAUTH_SECRET_KEY"
	})
	if err != nil || keys.Current() == nil || keys.Old != nil {
		t.Fatalf("LoadSecretKeys = %+v, %v", keys, err)
	}
	if _, err := config.LoadSecretKeys(fs, func(k string) (string, bool) { return "short", k == "NSAUTH_SECRET_KEY" }); err == nil ||
		!strings.Contains(err.Error(), "NSAUTH_SECRET_KEY") {
		t.Fatalf("LoadSecretKeys with a bad key: %v", err)
	}
}
