// Package connectorflow signs people in to the built-in provider through
// its connectors (package connector): OpenID Connect and GitHub, which
// send the browser to the upstream and back, and LDAP, whose username and
// password the login page's password form takes.
//
// A redirecting sign-in is bound to the browser that began it. POST
// /login/connector (behind the form guard) makes a random state, and
// derives the nonce and the PKCE verifier from the state and the
// browser's CSRF token, which only that browser's cookie holds; the
// pending sign-in is stored under the state joined to that token (the
// store keeps only its digest) and names its connector. The callback,
// GET /login/connector/NAME/callback, takes it once with the cookie's
// token: another browser (one an attacker handed the callback URL) finds
// nothing, and a response meant for another connector (mix-up) is
// refused. Nothing secret is stored, and no upstream token is kept.
//
// The upstream's identity finds the nsauth user by (connector, subject)
// only: never by email or name, which would hand an existing account to
// whoever the upstream says has that address. A connector that creates
// users (--create-users) creates one without a password on the first
// sign-in; otherwise an administrator links the account first. The login
// then goes on in package authflow (SignedIn) as after a password: second
// factor, NSAUTH_MFA=required, the passkey offer, the session, the code.
//
// For refreshes, Flow.MayRefresh asks the directory (LDAP), at most once
// per connector's check interval, whether the user may still sign in.
package connectorflow
