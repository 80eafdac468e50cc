package config_test

import (
	"strings"
	"testing"
)

func TestSecondFactorPolicy(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		env      map[string]string
		args     []string
		want     bool
		wantErrs []string
	}{
		{"default optional", map[string]string{"HOME": "/h"}, nil, false, nil},
		{"optional", map[string]string{"HOME": "/h", "NSAUTH_MFA": "optional"}, nil, false, nil},
		{"required", map[string]string{"HOME": "/h", "NSAUTH_MFA": "required"}, nil, true, nil},
		{"the flag wins", map[string]string{"HOME": "/h", "NSAUTH_MFA": "required"}, []string{"--mfa", "optional"}, false, nil},
		{"anything else", map[string]string{"HOME": "/h", "NSAUTH_MFA": "yes"}, nil, false, []string{"NSAUTH_MFA (--mfa)", `"yes" is not optional or required`}},
		{"case matters", map[string]string{"HOME": "/h", "NSAUTH_MFA": "Required"}, nil, false, []string{"NSAUTH_MFA"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := loadWith(t, tc.env, tc.args...)
			if tc.wantErrs != nil {
				if err == nil {
					t.Fatal("Load accepted the value")
				}
				for _, w := range tc.wantErrs {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Auth.Builtin.RequireSecondFactor; got != tc.want {
				t.Fatalf("RequireSecondFactor = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestPasswordLogin: NSAUTH_PASSWORD_LOGIN is on unless set false.
func TestPasswordLogin(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		env     map[string]string
		wantOff bool
		wantErr bool
	}{
		{"default on", map[string]string{"HOME": "/h"}, false, false},
		{"false", map[string]string{"HOME": "/h", "NSAUTH_PASSWORD_LOGIN": "false"}, true, false},
		{"true", map[string]string{"HOME": "/h", "NSAUTH_PASSWORD_LOGIN": "true"}, false, false},
		{"anything else", map[string]string{"HOME": "/h", "NSAUTH_PASSWORD_LOGIN": "maybe"}, false, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := loadWith(t, tc.env)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want an error: %v", err, tc.wantErr)
			}
			if err == nil && cfg.Auth.Builtin.NoPasswordLogin != tc.wantOff {
				t.Fatalf("NoPasswordLogin = %v, want %v", cfg.Auth.Builtin.NoPasswordLogin, tc.wantOff)
			}
		})
	}
}
