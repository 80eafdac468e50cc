package issuer

import (
	"strings"

	"github.com/nsauth/nsauth/internal/audit"
)

// clientSecretPrefix starts the name of the instance value holding a
// client's secret: the broker must send it, so it is kept, sealed, besides
// its hash in the client's row.
const clientSecretPrefix = "client_secret:"

// SecretValue reports whether the provider keeps a secret in the store's
// instance value called name: the broker's client secret, the key that
// seals pending auth requests, the key that signs device cookies and the
// audit trail's HMAC key (audit.KeyName). They
// are written and read with store.EnsureSecret, sealed at rest; an nsauth
// from before sealing stored them in clear, and store.SealSecrets seals
// those it names.
func SecretValue(name string) bool {
	return name == authRequestKeyName || name == deviceKeyName || name == audit.KeyName || strings.HasPrefix(name, clientSecretPrefix)
}

// BrokerSecretName is the name of the instance value holding the secret of
// the broker's client clientID. Only the broker's client has one: the
// server generated its secret and checks it at every start.
func BrokerSecretName(clientID string) string { return clientSecretPrefix + clientID }
