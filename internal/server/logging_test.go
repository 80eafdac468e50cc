package server

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	mgmtv1alpha1 "github.com/nsauth/nsauth/gen/mgmt/v1alpha1"
)

// TestLogLevels: failures are logged at info (error for server faults),
// but a device login's pending poll, heard every few seconds, only at
// debug level, like a success.
func TestLogLevels(t *testing.T) {
	t.Parallel()
	pending := connect.NewError(connect.CodeUnavailable, errors.New("pending"))
	detail, err := connect.NewErrorDetail(&mgmtv1alpha1.DeviceLoginError{Error: "authorization_pending", Interval: 5})
	if err != nil {
		t.Fatal(err)
	}
	pending.AddDetail(detail)
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"success", nil, ""},
		{"device login pending", pending, ""},
		{"provider unavailable", connect.NewError(connect.CodeUnavailable, errors.New("down")), "level=INFO"},
		{"refused", connect.NewError(connect.CodeUnauthenticated, errors.New("no")), "level=INFO"},
		{"server fault", connect.NewError(connect.CodeInternal, errors.New("bug")), "level=ERROR"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			i := loggingInterceptor{slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))}
			i.log(context.Background(), "/p/M", "connect", time.Now(), tt.err)
			if got := buf.String(); (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
				t.Errorf("logged %q, want a line with %q (or none)", got, tt.want)
			}
		})
	}
}
