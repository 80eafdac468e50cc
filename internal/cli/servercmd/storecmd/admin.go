package storecmd

import (
	"context"

	"github.com/nsauth/nsauth/gen/nsauth/admin/v1/adminv1connect"
	"github.com/nsauth/nsauth/internal/adminservice"
	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/store"
)

// Admin runs fn with an AdminService client: the remote service when the
// command was given --api-url (and no store flags), else the service in
// process over the store the flags point at, with the operating-system
// user as the actor (the break-glass path). Commands that administer
// through the AdminService call this instead of WithStore, so that each
// administrative act has one implementation.
func (o *Command) Admin(ctx context.Context, fn func(context.Context, adminv1connect.AdminServiceClient) error) error {
	// TODO(i25 admin-core): the remote path (--api-url).
	return o.WithStore(ctx, func(ctx context.Context, st *store.Store) error {
		svc, err := adminservice.New(adminservice.Config{Store: st, Audit: o.audit, Now: o.App.Now})
		if err != nil {
			return err
		}
		who := o.OSUser
		if who == nil {
			who = audit.OSUser
		}
		return fn(adminservice.WithCaller(ctx, adminservice.Caller{Actor: who(), Offline: true}), svc)
	})
}
