package authn

// RefusedBy exposes to the external tests the name of the check that
// refused a token ("" when err is not a refusal), so that a battery case
// can say why its token must be refused, not only that it is.
func RefusedBy(err error) string { return string(refusedBy(err)) }

// Checks lists every name RefusedBy may return.
func Checks() []string {
	var names []string
	for _, c := range []check{
		checkSize, checkEncoding, checkHeader, checkAlgorithm, checkType, checkKey, checkSignature,
		checkClaims, checkIssuer, checkSubject, checkAudience, checkExpiry, checkNotYet, checkInactive, checkRevoked,
	} {
		names = append(names, string(c))
	}
	return names
}
