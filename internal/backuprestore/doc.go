// Package backuprestore holds tests only: `nsauth-server backup` taken
// from a running SQLite server under load and `nsauth-server restore` into
// a new data directory, which then serves the same people (passwords,
// refresh tokens, revocations, one-time codes, passkeys); the refusals of
// restore (a data directory in use, a missing or wrong secret key); and,
// for PostgreSQL, a pg_dump of a live schema restored into a new database
// with the commands `nsauth-server backup` and `restore` name.
package backuprestore
