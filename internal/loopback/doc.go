// Package loopback receives the OAuth authorization response of a terminal
// login: a one-shot HTTP listener on a loopback address (RFC 8252 §7.3), and
// the same checks for a redirect URL pasted by hand.
//
// The listener answers only GET requests on its path whose Host header is
// the redirect URI's host and port (a web page that rebinds its own DNS
// name to 127.0.0.1 sends its own name, and is refused). Requests elsewhere
// get an error and leave the login waiting: browsers fetch /favicon.ico,
// and a stray request must not be able to end someone's login. The same
// goes for a request on the path without the login's state (compared in
// constant time): any web page can make the browser fetch
// http://127.0.0.1:4242/api/auth/callback?state=x, so such a request gets
// an error page and nothing else; it is not stored and does not spend the
// one-shot. The first request with the right state decides the outcome
// (a code, or the provider's error), and the page shown to the browser is
// rendered with html/template so a provider's error_description cannot
// inject markup. Later requests are told the login is over.
package loopback
