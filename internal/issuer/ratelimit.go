package issuer

import (
	"context"

	"github.com/nsauth/nsauth/internal/store"
)

// loginLimiter limits failed logins per account and per client address, in
// the store so that replicas count together.
type loginLimiter struct {
	st  *store.Store
	max int
}

// limitKeys are the counters one login attempt touches.
type limitKeys struct {
	account string // empty when the username is not even well-formed
	address string
}

func (l *loginLimiter) keys(username, address string) limitKeys {
	k := limitKeys{address: address}
	if name, err := store.NormalizeUsername(username); err == nil {
		k.account = name
	}
	return k
}

func (k limitKeys) all() []string {
	out := []string{"addr:" + k.address}
	if k.account != "" {
		out = append(out, "user:"+k.account)
	}
	return out
}

// blocked reports whether either counter is at the limit.
func (l *loginLimiter) blocked(ctx context.Context, k limitKeys) (bool, error) {
	for _, key := range k.all() {
		n, err := l.st.LoginFailures(ctx, key, LoginWindow)
		if err != nil {
			return false, err
		}
		if n >= l.max {
			return true, nil
		}
	}
	return false, nil
}

// fail counts a failure on both counters and reports whether one of them
// is now at the limit.
func (l *loginLimiter) fail(ctx context.Context, k limitKeys) (bool, error) {
	over := false
	for _, key := range k.all() {
		n, err := l.st.AddLoginFailure(ctx, key, LoginWindow)
		if err != nil {
			return false, err
		}
		if n >= l.max {
			over = true
		}
	}
	return over, nil
}

// succeed forgets the account's failures. The address counter stays: a
// client guessing many accounts' passwords must not reset its own count by
// logging in to one of them.
func (l *loginLimiter) succeed(ctx context.Context, k limitKeys) {
	if k.account != "" {
		_ = l.st.ClearLoginFailures(ctx, "user:"+k.account)
	}
}
