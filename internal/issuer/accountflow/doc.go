// Package accountflow serves the account page, /account: where a signed-in
// user changes their password, sees and ends their browser sessions and
// the apps signed in within them, reads the recent sign-ins of their own
// account, and manages their second factors (the factors*.go files).
//
// The page is behind the browser session (package browsersession): the
// session cookie, presented with the device cookie it is bound to. A
// browser without one is sent through the provider's own login, as any
// app's user is: GET /account redirects to the authorize endpoint for the
// account page's app (AppID, a confidential app whose secret nobody knows,
// registered on first use), so the login page, its second factor, its
// limits and single sign-on are the ones every app gets. The login ends at
// /account/callback, which checks the state it sent (a cookie of this
// browser) and goes back to /account; the code it carries is never
// redeemed, nobody can (the app's secret is not kept), and it expires.
//
// Sensitive acts (a new password, ending sessions, adding or removing a
// factor) need a recent proof: the session's auth_time within ReauthAfter.
// Otherwise the page asks "confirm it's you" (POST /account/reauth): the
// password, and a second factor when the user has one; a user without a
// password (a connector's) proves a factor alone. A right answer moves the
// session's auth_time to now (store ReauthenticateSession); a wrong one
// counts against the login limits as a wrong password at the login page
// does (package attempts).
//
// A password alone never adds a factor (SECURITY.md): adding a passkey, a
// first authenticator app or new recovery codes needs a recent proof that
// included a second factor the user already has (Flow.mayAddFactor, the
// one place the rule is written). A user with a password only is told to
// ask an administrator for an enrolment link.
//
// Every form is a post behind the provider's one form guard (package web:
// origin, CSRF cookie, size), every page is rendered no-store under the
// pages' strict CSP, and every change is recorded in the audit trail.
//
// Each section is a type of its own over deps, the dependencies and
// helpers they all share (the package types stay small: the factors'
// sections are methods of Flow, which embeds deps). An act's handler
// starts with account(w, r) (the session and its user, or the answer
// already written), then requireRecent(w, r, a) for a sensitive act
// (mayAddFactor for adding a factor), does its one thing, records it with
// record, and answers with show (the whole page with a notice, or with
// one section's shown-once data in view.Factors).
package accountflow
