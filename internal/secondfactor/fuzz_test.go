package secondfactor_test

import (
	"regexp"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/secondfactor"
)

// FuzzTypedCodes: whatever a browser sends as a TOTP or recovery code,
// checking it neither panics nor accepts something that is not a code;
// a normalised recovery code is canonical.
func FuzzTypedCodes(f *testing.F) {
	for _, s := range []string{"123456", "123 456", "abcd-efgh-ijkl-mnop", "", "----", "ÄÖÜ", "\x00\xff", "AAAA-BBBB-CCCC-DDDD-"} {
		f.Add(s)
	}
	recovery := regexp.MustCompile(`^[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}$`)
	at := time.Unix(1_800_000_000, 0)
	f.Fuzz(func(t *testing.T, typed string) {
		if n, ok := secondfactor.NormalizeRecoveryCode(typed); ok {
			if !recovery.MatchString(n) {
				t.Fatalf("NormalizeRecoveryCode(%q) = %q", typed, n)
			}
			if again, ok := secondfactor.NormalizeRecoveryCode(n); !ok || again != n {
				t.Fatalf("not canonical: %q then %q", n, again)
			}
		}
		if step, err := secondfactor.CheckTOTP(rfcSecret, typed, at); err == nil {
			c, ok := secondfactor.NormalizeCode(typed)
			if !ok || len(c) != secondfactor.CodeDigits || step < at.Unix()/30-1 || step > at.Unix()/30+1 {
				t.Fatalf("CheckTOTP accepted %q (step %d)", typed, step)
			}
		}
	})
}
