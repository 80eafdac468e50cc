//go:build unix

package app

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// sameOwner gives f the owner and group of like, when they differ from
// f's: a key file rewritten by root for a server running as another user
// stays readable by that user. Changing them needs the right to; without
// it the rotation stops before the file is replaced.
func sameOwner(f *os.File, like fs.FileInfo) error {
	want, ok := like.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	info, err := f.Stat()
	if err != nil {
		return err
	}
	if have, ok := info.Sys().(*syscall.Stat_t); ok && have.Uid == want.Uid && have.Gid == want.Gid {
		return nil
	}
	if err := f.Chown(int(want.Uid), int(want.Gid)); err != nil {
		return fmt.Errorf("giving the new key file the owner of the old one (uid %d, gid %d), so that the server can read it: %w; run this as that user", want.Uid, want.Gid, err)
	}
	return nil
}
