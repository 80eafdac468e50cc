package authservice_test

import (
	"context"
	"testing"
	"time"

	"connectrpc.com/connect"

	mgmtv1alpha1 "github.com/nsauth/nsauth/gen/mgmt/v1alpha1"
	"github.com/nsauth/nsauth/internal/authservice"
	"github.com/nsauth/nsauth/pkg/authn"
)

// TestCheckTokenKnowsAMachine: CheckToken reports the token's client and
// whether its subject is a machine client (pkg/authn's Claims.Machine).
func TestCheckTokenKnowsAMachine(t *testing.T) {
	t.Parallel()
	svc, err := authservice.New(authservice.Config{Enabled: true, Broker: checkingBroker{t}})
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Unix(2_000_000_000, 0)
	tests := []struct {
		name         string
		claims       authn.Claims
		wantClientID *string
		wantMachine  bool
	}{
		{"a person", authn.Claims{Subject: "u-1", ClientID: "nsauth-cli"}, ptr("nsauth-cli"), false},
		{"a machine client", authn.Claims{Subject: "m-abc", ClientID: "m-abc", Scopes: []string{"read"}}, ptr("m-abc"), true},
		{"no client named", authn.Claims{Subject: "u-1"}, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := tt.claims
			c.ExpiresAt = exp
			resp, err := svc.CheckToken(authn.ContextWithClaims(context.Background(), &c), connect.NewRequest(&mgmtv1alpha1.CheckTokenRequest{}))
			if err != nil {
				t.Fatal(err)
			}
			m := resp.Msg
			if (m.ClientId == nil) != (tt.wantClientID == nil) || (tt.wantClientID != nil && m.GetClientId() != *tt.wantClientID) {
				t.Errorf("client_id = %v, want %v", m.ClientId, tt.wantClientID)
			}
			if m.Machine == nil || m.GetMachine() != tt.wantMachine || m.GetSubject() != c.Subject {
				t.Errorf("CheckToken = %v", m)
			}
		})
	}

	disabled, err := authservice.New(authservice.Config{})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := disabled.CheckToken(context.Background(), connect.NewRequest(&mgmtv1alpha1.CheckTokenRequest{}))
	if err != nil || resp.Msg.Machine != nil || resp.Msg.ClientId != nil {
		t.Errorf("with authentication disabled: %v, %v", resp, err)
	}
}
