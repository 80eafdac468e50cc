// Package unavailable holds the test of a server whose PostgreSQL cannot
// be reached (issue 26): its connections cut by a proxy between them, the
// admin API answers Unavailable saying so, the token endpoint HTTP 503
// with an OAuth error and Retry-After, the login pages HTTP 503 with a
// page saying to try again shortly; once the database is back, all of it
// works again without a restart. It has no code of its own, only the
// test:
//
//	go test -run TestDatabaseUnreachable -v ./internal/unavailable/
package unavailable
