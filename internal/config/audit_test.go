package config_test

import (
	"strings"
	"testing"
	"time"
)

func TestAuditSettings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		env       map[string]string
		args      []string
		retention time.Duration
		log       string
		required  bool
		refusals  int
		err       string
	}{
		{name: "defaults", retention: 2160 * time.Hour, refusals: 1000},
		{name: "from the environment", env: map[string]string{"NSAUTH_AUDIT_RETENTION": "720h", "NSAUTH_AUDIT_LOG": "stdout", "NSAUTH_AUDIT_REQUIRED": "true",
			"NSAUTH_AUDIT_REFUSAL_ROWS_PER_MINUTE": "200"},
			retention: 720 * time.Hour, log: "stdout", required: true, refusals: 200},
		{name: "flags win", env: map[string]string{"NSAUTH_AUDIT_LOG": "stdout", "NSAUTH_AUDIT_REFUSAL_ROWS_PER_MINUTE": "200"},
			args:      []string{"--audit-log", "/var/log/nsauth/audit.jsonl", "--audit-required", "--audit-refusal-rows", "50"},
			retention: 2160 * time.Hour, log: "/var/log/nsauth/audit.jsonl", required: true, refusals: 50},
		{name: "refusal rows zero", env: map[string]string{"NSAUTH_AUDIT_REFUSAL_ROWS_PER_MINUTE": "0"}, err: "NSAUTH_AUDIT_REFUSAL_ROWS_PER_MINUTE"},
		{name: "refusal rows not a number", env: map[string]string{"NSAUTH_AUDIT_REFUSAL_ROWS_PER_MINUTE": "lots"}, err: "NSAUTH_AUDIT_REFUSAL_ROWS_PER_MINUTE"},
		{name: "retention too short", env: map[string]string{"NSAUTH_AUDIT_RETENTION": "10m"}, err: "NSAUTH_AUDIT_RETENTION"},
		{name: "retention not a duration", env: map[string]string{"NSAUTH_AUDIT_RETENTION": "90d"}, err: "NSAUTH_AUDIT_RETENTION"},
		{name: "required not a boolean", env: map[string]string{"NSAUTH_AUDIT_REQUIRED": "yes please"}, err: "NSAUTH_AUDIT_REQUIRED"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{"HOME": "/home/u"}
			for k, v := range tc.env {
				env[k] = v
			}
			cfg, err := loadWith(t, env, tc.args...)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Load = %v, want an error naming %s", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			b := cfg.Auth.Builtin
			if b.AuditRetention != tc.retention || b.AuditLog != tc.log || b.AuditRequired != tc.required || b.AuditRefusalRowsPerMinute != tc.refusals {
				t.Errorf("retention %v, log %q, required %v, refusal rows %d; want %v, %q, %v, %d", b.AuditRetention, b.AuditLog, b.AuditRequired,
					b.AuditRefusalRowsPerMinute, tc.retention, tc.log, tc.required, tc.refusals)
			}
		})
	}
}
