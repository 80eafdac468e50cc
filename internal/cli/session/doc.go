// Package session is how the terminal client's commands reach an API
// server and use the login stored for it: the flags that select both
// ([Options]), the injected dependencies that reach them ([Deps]: HTTP
// client, token store, clock), a usable access token or the reason there is
// none (refreshing, and recording the server's refusal so a refused session
// is never handed out again), the accounts a login adds, and how failures
// and untrusted claims are put before people.
//
// It imports neither package cli nor the packages of its commands, which
// all import it.
package session
