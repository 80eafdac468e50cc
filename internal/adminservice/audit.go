package adminservice

import (
	"context"
	"encoding/json"
	"strings"

	"connectrpc.com/connect"

	adminv1 "github.com/nsauth/nsauth/gen/nsauth/admin/v1"
	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/store"
)

// MaxAuditEvents caps the events one ListAuditEvents call returns.
const MaxAuditEvents = 1000

// ListAuditEvents reads the audit trail, oldest first: at most limit
// events (MaxAuditEvents when zero or more) of those the filter selects.
// Reading on from last_id as after_id pages through them and follows new
// ones.
func (s *auditRPC) ListAuditEvents(ctx context.Context, req *connect.Request[adminv1.ListAuditEventsRequest]) (*connect.Response[adminv1.ListAuditEventsResponse], error) {
	m := req.Msg
	f := store.AuditFilter{
		Since:    fromUnix(m.GetSince()),
		Until:    fromUnix(m.GetUntil()),
		User:     m.GetUser(),
		ClientID: m.GetClientId(),
		Ref:      strings.ToLower(m.GetRef()),
		AfterID:  m.GetAfterId(),
		Limit:    MaxAuditEvents,
	}
	if l := m.GetLimit(); l > 0 && l < MaxAuditEvents {
		f.Limit = int(l)
	}
	if f.AfterID < 0 {
		return nil, invalid("after_id must not be negative")
	}
	if f.Ref != "" && strings.Trim(f.Ref, "0123456789abcdef") != "" {
		return nil, invalid("ref: want the hexadecimal output of nsauth audit hash")
	}
	known := audit.Types()
	for _, t := range m.GetTypes() {
		found := false
		for _, k := range known {
			if string(k) == t {
				found = true
				break
			}
		}
		if !found {
			return nil, invalid("types: %q is not an event type", t)
		}
		f.Types = append(f.Types, audit.Type(t))
	}
	events, err := s.cfg.Store.AuditEvents(ctx, f)
	if err != nil {
		return nil, toConnect(err, "audit events")
	}
	resp := &adminv1.ListAuditEventsResponse{Events: make([]*adminv1.AuditEvent, 0, len(events)), LastId: f.AfterID}
	for _, e := range events {
		b, err := json.Marshal(e)
		if err != nil {
			return nil, internal(err)
		}
		resp.Events = append(resp.Events, &adminv1.AuditEvent{Id: e.ID, Json: string(b)})
		resp.LastId = e.ID
	}
	return connect.NewResponse(resp), nil
}
