package issuer_test

import (
	"testing"

	"github.com/nsauth/nsauth/internal/issuer"
)

func TestSecretValue(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]bool{
		"client_secret:" + issuer.DefaultClientID: true,
		"client_secret:other":                     true,
		issuer.AuthRequestKeyName:                 true,
		"device_cookie_key":                       true,
		"issuer_url":                              false,
		"admin_bootstrapped":                      false,
		"client_secret":                           false,
	} {
		if got := issuer.SecretValue(name); got != want {
			t.Errorf("SecretValue(%q) = %v, want %v", name, got, want)
		}
	}
}
