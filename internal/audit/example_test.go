package audit_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/nsauth/nsauth/internal/audit"
)

// A handler records what happened, with a ref in place of the token it
// concerns; the stream shows the line a log shipper receives.
func ExampleAuditor_Record() {
	a, err := audit.New(audit.Config{
		Key:     []byte("an audit key of at least 16 bytes"),
		Stream:  audit.NewStream(os.Stdout),
		Replica: "nsauth-0",
		Now:     func() time.Time { return time.Date(2026, 11, 30, 18, 34, 52, 240e6, time.UTC) },
	})
	if err != nil {
		panic(err)
	}
	refreshToken := "the refresh token the client presented"
	if err := a.Record(context.Background(), audit.Event{
		Type:     audit.RefreshRotated,
		Username: "alice",
		ClientID: "neosync-cli",
		Refs:     map[string]string{audit.RefRefresh: a.Ref(refreshToken)},
	}); err != nil {
		// Only with Config.Required: fail the request.
		fmt.Println("request fails:", err)
	}
	// Output:
	// {"time":"2026-11-30T18:34:52.24Z","type":"refresh.rotated","outcome":"success","username":"alice","client_id":"neosync-cli","replica":"nsauth-0","refs":{"refresh_hmac":"939380e64716b0a66fd141ce786dedf9"}}
}
