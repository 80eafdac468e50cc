package connector

import "errors"

// TEMPORARY stub of the ldap helper's newLDAP (issue 28), so that Build
// compiles until ldap.go lands; delete this file when merging ldap.go.
func newLDAP(s *LDAPSettings, secret string, env Env) (PasswordChecker, error) {
	return nil, errors.New("connector: LDAP is not implemented yet")
}
