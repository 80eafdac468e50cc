// Package connectorscmd is nsauth-server's `connectors` command: the login
// methods that sign people in to the built-in provider with an identity
// they already have (an OpenID Connect provider, GitHub, an LDAP
// directory): their settings, sealed secrets, state and the callback URL
// to register upstream ([NewConnectorsCommand]). Binding users to upstream
// identities is `nsauth users link` (package servercmd).
package connectorscmd
