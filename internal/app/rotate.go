package app

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nsauth/nsauth/internal/config"
	"github.com/nsauth/nsauth/internal/issuer"
	"github.com/nsauth/nsauth/internal/seal"
	"github.com/nsauth/nsauth/internal/store"
)

// Rotation is what [RotateSecretKey] did.
type Rotation struct {
	// KeyID is the id of the key every secret is sealed under now, and
	// new ones are sealed with.
	KeyID string
	// Sealed counts the values sealed again.
	Sealed store.SecretCounts
	// Retired are the ids of the other keys given, which open nothing in
	// the database any more.
	Retired []string
	// KeyFile is the data directory's key file when the rotation made the
	// new key there; it holds the new key alone now. "" otherwise.
	KeyFile string
	// Resumed says the rotation finished one that an earlier run began:
	// the key file listed a newer key above the one in use.
	Resumed bool
}

// RotateSecretKey seals every secret in the store loc points at again
// under a new key, and makes it the key that seals, in one transaction,
// unless a running server lacks it (see store.KeyHolder): it then refuses
// with an error naming the servers and the fix, and changes nothing in the
// database.
//
// The new key is the first one keys lists (NSAUTH_SECRET_KEY and the
// others, newest first); the rest, and with SQLite the data directory's
// key file, open what is sealed now. With SQLite and no key given, the
// rotation is of the data directory's key file: a new key is made and
// written there above the old one (servers that read the file take it when
// they meet it), everything is sealed again, and the file is left with the
// new key alone. Interrupted, it leaves the file with both keys, which
// open everything; run again, it finishes.
func RotateSecretKey(ctx context.Context, loc config.Store, keys config.SecretKeys, now func() time.Time) (*Rotation, error) {
	dataDirFile := ""
	if loc.DatabaseURL == "" {
		dataDirFile = filepath.Join(loc.DataDir, config.DefaultSecretKeyFile)
	}
	if keys.Current() != nil {
		given := slices.Concat(keys.Listed[1:], keys.Old)
		if dataDirFile != "" {
			fileKeys, err := config.ReadSecretKeyFile(dataDirFile)
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, err
			}
			given = append(given, fileKeys...)
		}
		ring := seal.NewKeyring(keys.Current(), given...)
		return rotateTo(ctx, loc, ring, now, strandRule{file: keys.File, dataDirFile: dataDirFile, given: true})
	}
	if dataDirFile == "" {
		return nil, fmt.Errorf("no new secret key: set %s to the new key followed by the one in use, newest first (NSAUTH_SECRET_KEY=\"<new key>,<current key>\"; make one with `nsauth keys generate-secret-key`)", config.SecretKeySettings())
	}
	return rotateKeyFile(ctx, loc, dataDirFile, now)
}

// rotateKeyFile rotates the key of the data directory's key file.
func rotateKeyFile(ctx context.Context, loc config.Store, file string, now func() time.Time) (*Rotation, error) {
	keys, err := config.ReadSecretKeyFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no new secret key: set %s to it, or start nsauth serve once, which makes the key file %s that this command rotates", config.SecretKeySettings(), file)
	}
	if err != nil {
		return nil, err
	}
	text, err := os.ReadFile(file) // read whole by ReadSecretKeyFile just now, so small
	if err != nil {
		return nil, fmt.Errorf("reading the key file: %w", err)
	}
	texts := keyTexts(string(text))
	resumed := len(keys) > 1
	if !resumed {
		newText := seal.GenerateKey()
		k, err := seal.ParseKey(newText)
		if err != nil {
			return nil, err
		}
		texts, keys = append([]string{newText}, texts...), append([]*seal.Key{k}, keys...)
		// Servers reading the file take the new key when they meet it:
		// from here on, whatever happens, the file opens everything.
		if err := replaceKeyFile(file, strings.Join(texts, "\n")); err != nil {
			return nil, err
		}
	}
	rot, err := rotateTo(ctx, loc, seal.NewKeyring(keys[0], keys[1:]...), now, strandRule{file: file, dataDirFile: file})
	if err != nil {
		return nil, fmt.Errorf("%w\n%s lists the new key above the old one, and the servers that read it hold both: run this command again to finish", err, file)
	}
	if err := replaceKeyFile(file, texts[0]); err != nil {
		return nil, fmt.Errorf("everything is sealed under key id %s, but the old key could not be taken out of %s: %w", rot.KeyID, file, err)
	}
	rot.KeyFile, rot.Resumed = file, resumed
	return rot, nil
}

// keyTexts splits a key file's text into its keys' texts, as
// seal.ParseKeys does.
func keyTexts(text string) []string {
	var out []string
	for _, t := range strings.FieldsFunc(text, func(r rune) bool { return r == '\n' || r == ',' }) {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, t)
		}
	}
	return out
}

// rotateTo seals everything under ring's current key, when rule finds no
// running server it would strand.
func rotateTo(ctx context.Context, loc config.Store, ring *seal.Keyring, now func() time.Time, rule strandRule) (*Rotation, error) {
	if now == nil {
		now = time.Now
	}
	st, err := openStore(ctx, loc, store.Options{Now: now, Keyring: ring})
	if err != nil {
		return nil, err
	}
	defer st.Close()
	rule.target, rule.now = ring.CurrentID(), now
	rule.host, _ = os.Hostname()
	n, err := st.ResealSecrets(ctx, issuer.SecretValue, rule.check)
	var stranded *strandError
	if errors.As(err, &stranded) {
		return nil, err
	}
	if err != nil {
		return nil, secretKeyError(err, &keyring{ring: ring, setting: config.SecretKeySettings()})
	}
	return &Rotation{KeyID: ring.CurrentID(), Sealed: n, Retired: ring.IDs()[1:]}, nil
}

// strandRule says which running servers a rotation would strand: those
// that do not hold the new key and will not find it in their key file.
type strandRule struct {
	target string
	// file is the key file the new key was given in; dataDirFile is the
	// SQLite data directory's; given says the new key was given in the
	// environment or a file named there, rather than made in dataDirFile.
	file, dataDirFile string
	given             bool
	host              string
	now               func() time.Time
}

// check is the ready callback of store.ResealSecrets.
func (r strandRule) check(holders []store.KeyHolder) error {
	var stranded []store.KeyHolder
	for _, h := range holders {
		// A server on this machine that reads the file the new key is in
		// reads it again when it meets a key it lacks.
		sameFile := r.file != "" && h.KeyFile == absPath(r.file) && h.Host == r.host
		if !h.Holds(r.target) && !sameFile {
			stranded = append(stranded, h)
		}
	}
	if len(stranded) == 0 {
		return nil
	}
	return &strandError{rule: r, stranded: stranded}
}

// strandError is a rotation's refusal: it names the servers that lack the
// new key, and how to give it to them. Keys appear by id only.
type strandError struct {
	rule     strandRule
	stranded []store.KeyHolder
}

func (e *strandError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "refusing to rotate: %d running server(s) do not hold the new key (id %s), and could not open what would be sealed under it; nothing was sealed again:", len(e.stranded), e.rule.target)
	for _, h := range e.stranded {
		fmt.Fprintf(&b, "\n  - host %s, pid %d: keys from %s (key ids %s), started %s, last seen %s ago",
			h.Host, h.PID, h.Source, strings.Join(h.KeyIDs, ", "), h.Started.UTC().Format(time.RFC3339),
			max(0, e.rule.now().Sub(h.Seen)).Round(time.Second))
		fmt.Fprintf(&b, "\n    fix: %s", e.fix(h))
	}
	fmt.Fprintf(&b, "\nThen run this command again. Servers go on sealing with the key in use until the rotation, so giving them the new key first strands none. "+
		"A server that stopped without saying so counts for %s after it was last seen.", keyHolderTTL)
	return b.String()
}

// fix says how to give h the new key.
func (e *strandError) fix(h store.KeyHolder) string {
	switch {
	case h.KeyFile != "" && h.KeyFile == absPath(e.rule.dataDirFile) && e.rule.given:
		return fmt.Sprintf("it reads %s: to rotate the key in that file, run this command without %s (it then makes the new key and writes it there); "+
			"or restart the server with NSAUTH_SECRET_KEY=\"<new key>,<the key in that file>\"", h.KeyFile, config.SecretKeySettings())
	case h.KeyFile != "":
		return fmt.Sprintf("put the new key on the first line of %s, above the key in use, on that machine (the server reads the file again within %s)", h.KeyFile, keyHolderInterval)
	}
	return "restart it with NSAUTH_SECRET_KEY=\"<new key>,<current key>\" (newest first)"
}
