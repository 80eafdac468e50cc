package issuer

import "strings"

// clientSecretPrefix starts the name of the instance value holding a
// client's secret: the broker must send it, so it is kept, sealed, besides
// its hash in the client's row.
const clientSecretPrefix = "client_secret:"

// SecretValue reports whether the provider keeps a secret in the store's
// instance value called name: the broker's client secret, the key that
// seals pending auth requests and the key that signs device cookies. They
// are written and read with store.EnsureSecret, sealed at rest; an nsauth
// from before sealing stored them in clear, and store.SealSecrets seals
// those it names.
func SecretValue(name string) bool {
	return name == authRequestKeyName || name == deviceKeyName || strings.HasPrefix(name, clientSecretPrefix)
}
