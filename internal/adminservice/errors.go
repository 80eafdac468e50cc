package adminservice

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"connectrpc.com/connect"

	"github.com/nsauth/nsauth/internal/store"
)

// toConnect maps err, from acting on what (`user "bob"`, `group "ops"`),
// to the *connect.Error the service returns:
//
//   - store.ErrNotFound: NotFound, "no user \"bob\"";
//   - store.ErrConflict: AlreadyExists, "user \"bob\" already exists";
//   - a full disk (store.IsDiskFull): Unavailable, [msgDiskFull] (the
//     same call succeeds once space is freed; the store logs the disk);
//   - a *connect.Error: itself;
//   - context cancellation and deadlines: Canceled, DeadlineExceeded;
//   - a database that cannot be reached now (store.IsUnavailable:
//     connections refused, cut, a restarting PostgreSQL): Unavailable,
//     [msgUnavailable] (the same call succeeds once it is back);
//   - anything else: Internal, whose message on the wire is "internal
//     error" (the cause stays in the error chain for the server's log and
//     for in-process callers: see [Detail]).
//
// what must not carry a secret; it is quoted by the caller.
func toConnect(err error, what string) error {
	if err == nil {
		return nil
	}
	var ce *connect.Error
	switch {
	case errors.As(err, &ce):
		return ce
	case errors.Is(err, store.ErrNotFound):
		return connect.NewError(connect.CodeNotFound, fmt.Errorf("no %s", what))
	case errors.Is(err, store.ErrConflict):
		return connect.NewError(connect.CodeAlreadyExists, fmt.Errorf("%s already exists", what))
	case store.IsDiskFull(err):
		return connect.NewError(connect.CodeUnavailable, errors.New(msgDiskFull))
	case errors.Is(err, context.Canceled):
		return connect.NewError(connect.CodeCanceled, errors.New("the call was canceled"))
	case errors.Is(err, context.DeadlineExceeded):
		return connect.NewError(connect.CodeDeadlineExceeded, errors.New("the call took too long"))
	case store.IsUnavailable(err):
		// The cause stays in the chain, for the server's log ([Detail]).
		return connect.NewError(connect.CodeUnavailable, internalError{msg: msgUnavailable, cause: err})
	}
	return internal(err)
}

// msgDiskFull is what a caller reads when a change failed for a full disk:
// nothing was changed, and retrying later is right.
const msgDiskFull = "the server cannot save changes: the disk holding its data is full; nothing was changed, try again once space is freed"

// msgUnavailable is what a caller reads when the database could not be
// reached: the cause (an address, a driver's words) stays in the server's
// log.
const msgUnavailable = "the server cannot reach its database right now; nothing was changed, try again in a few seconds"

// internal is an Internal error whose message is "internal error" and
// whose cause stays in the chain (never on the wire).
func internal(err error) error {
	return connect.NewError(connect.CodeInternal, internalError{cause: err})
}

// internalError hides its cause from Error (which Connect sends as the
// message) but keeps it for errors.Unwrap and [Detail]. msg, when set, is
// what the wire says instead of "internal error": it must hold no detail
// of the cause.
type internalError struct {
	msg   string
	cause error
}

func (e internalError) Error() string {
	if e.msg != "" {
		return e.msg
	}
	return "internal error"
}
func (e internalError) Unwrap() error { return e.cause }

// Detail returns what an in-process caller (an offline command) shows of
// err: for an Internal (or a database's Unavailable) error the service
// made, its message with the cause (which remote callers never see); err
// itself otherwise.
func Detail(err error) error {
	var ie internalError
	if !errors.As(err, &ie) || ie.cause == nil {
		return err
	}
	if ie.msg == "" {
		return ie.cause
	}
	return fmt.Errorf("%s: %w", ie.msg, ie.cause)
}

// invalid is an InvalidArgument error; its message names the field and
// the fix.
func invalid(format string, args ...any) error {
	return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf(format, args...))
}

// precondition is a FailedPrecondition error: the request is well formed
// but the state does not allow it (say why and what to do).
func precondition(format string, args ...any) error {
	return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf(format, args...))
}

// quoted is what toConnect names: kind "user", name "bob" →
// `user "bob"`.
func quoted(kind, name string) string {
	return fmt.Sprintf("%s %q", kind, name)
}

// unix is t in seconds since the Unix epoch, zero for the zero time (the
// protos' convention for "not set").
func unix(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

// fromUnix is the time s seconds after the epoch, the zero time for 0.
func fromUnix(s int64) time.Time {
	if s == 0 {
		return time.Time{}
	}
	return time.Unix(s, 0).UTC()
}

// seconds is d in whole seconds (the protos' durations).
func seconds(d time.Duration) int64 {
	return int64(d / time.Second)
}

// duration is s seconds; negative values are zero, values too large for a
// time.Duration the largest one.
func duration(s int64) time.Duration {
	switch {
	case s <= 0:
		return 0
	case s > int64(math.MaxInt64/time.Second):
		return math.MaxInt64
	}
	return time.Duration(s) * time.Second
}
