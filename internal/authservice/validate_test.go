package authservice

import "testing"

// TestNormalizeScope covers both paths: scopes already normal (returned
// as they are, without allocating) and those that need normalizing.
func TestNormalizeScope(t *testing.T) {
	t.Parallel()
	allowed := map[string]bool{"openid": true, "profile": true, "offline_access": true}
	tests := []struct {
		scope   string
		allowed map[string]bool
		want    string
		wantErr bool
	}{
		{"openid profile offline_access", nil, "openid profile offline_access", false},
		{"openid", allowed, "openid", false},
		{"  openid   profile ", allowed, "openid profile", false},
		{"openid  profile", nil, "openid profile", false},
		{"openid admin", allowed, "", true},
		{"admin  openid", allowed, "", true},
		{"openid pro\"file", nil, "", true},
		{"openid\\ profile", nil, "", true},
		{"openid  pro\x7ffile", nil, "", true},
		{"   ", nil, "", true},
		{"", nil, "", true},
		{"openid\tprofile", nil, "", true},
	}
	for _, tt := range tests {
		got, err := normalizeScope(tt.scope, tt.allowed)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("normalizeScope(%q) = %q, %v; want %q, error %v", tt.scope, got, err, tt.want, tt.wantErr)
		}
	}
}

// TestNormalScopeDoesNotAllocate is not parallel: AllocsPerRun counts the
// whole process's allocations.
func TestNormalScopeDoesNotAllocate(t *testing.T) {
	allowed := map[string]bool{"openid": true, "profile": true, "offline_access": true}
	if n := testing.AllocsPerRun(100, func() { _, _ = normalizeScope("openid profile offline_access", allowed) }); n != 0 {
		t.Errorf("a normal scope costs %.0f allocations, want 0", n)
	}
}
