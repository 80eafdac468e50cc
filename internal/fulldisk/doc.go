// Package fulldisk holds the full-disk test of the built-in provider
// (issue 26): a server whose SQLite data directory is on a small tmpfs the
// test mounts and then fills. It has no code of its own, only the test,
// so it can be run alone (as root, which mounting needs):
//
//	go test -run TestFullDisk -v ./internal/fulldisk/
package fulldisk
