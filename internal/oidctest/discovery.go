package oidctest

import "net/http"

// discoveryEndpoint serves the discovery document, which tests can make
// name another issuer or list the client authentication methods.
type discoveryEndpoint struct {
	p *Provider
	// issuer, when set, is named instead of the provider's (guarded by p.mu).
	issuer      string
	authMethods []string // token_endpoint_auth_methods_supported; nil omits it
}

func (d *discoveryEndpoint) serve(w http.ResponseWriter, _ *http.Request) {
	p := d.p
	p.mu.Lock()
	iss := p.Issuer
	if d.issuer != "" {
		iss = d.issuer
	}
	methods := d.authMethods
	p.mu.Unlock()
	base := p.Server.URL
	doc := map[string]any{
		"issuer":                                iss,
		"authorization_endpoint":                base + PathAuthorize,
		"token_endpoint":                        base + PathToken,
		"jwks_uri":                              base + PathJWKS,
		"revocation_endpoint":                   base + PathRevoke,
		"introspection_endpoint":                base + PathIntrospect,
		"userinfo_endpoint":                     base + PathUserinfo,
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256", "ES256"},
		"code_challenge_methods_supported":      []string{"S256"},
	}
	if methods != nil {
		doc["token_endpoint_auth_methods_supported"] = methods
	}
	if !p.device.off {
		doc["device_authorization_endpoint"] = base + PathDevice
	}
	writeJSON(w, http.StatusOK, doc)
}
