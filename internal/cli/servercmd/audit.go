package servercmd

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	adminv1 "github.com/nsauth/nsauth/gen/nsauth/admin/v1"
	"github.com/nsauth/nsauth/gen/nsauth/admin/v1/adminv1connect"
	"github.com/nsauth/nsauth/internal/adminservice"
	"github.com/nsauth/nsauth/internal/app"
	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/cli"
	"github.com/nsauth/nsauth/internal/cli/servercmd/storecmd"
	"github.com/nsauth/nsauth/internal/config"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/visible"
)

// auditPollInterval is how often --follow asks the store for new events;
// auditRemotePollInterval how often it asks the admin API (whose calls
// count against the server's per-address rate limit).
const (
	auditPollInterval       = time.Second
	auditRemotePollInterval = 2 * time.Second
)

// auditBatch bounds the rows one query reads.
const auditBatch = adminservice.MaxAuditEvents

// auditRowSettle is how long after its minute an aggregated row of
// refusals is taken as complete by --follow: the refusals of its last
// moments may still be being written (within the audit trail's write
// timeout), on replicas whose clocks differ a little.
const auditRowSettle = 10 * time.Second

// auditOptions are the flags of `nsauth audit`.
type auditOptions struct {
	storecmd.Command
	since, output     string
	types             []string
	user, client, ref string
	follow            bool
}

func newAuditCommand(a *cli.App) *cobra.Command {
	o := &auditOptions{Command: storecmd.Command{App: a}}
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Read the built-in provider's audit trail",
		Long: `Print the built-in provider's audit events, oldest first: logins (with a reason
when refused, never the password), lockouts, authorization codes, refresh
tokens, logouts and revocations, device approvals, machine grants, the
changes made with nsauth users, clients and federation (with the system user
who ran them, or the administrator who called the admin API), and
signing-key rotations. Use the same --data-dir or --database-url as nsauth
serve, or --api-url to read it through a running server's admin API as the
administrator nsauth login --api-url logged in.

Tokens, codes and secrets are never recorded. An event about one carries a
keyed HMAC of it instead: ` + "`nsauth audit hash`" + ` computes it for a value you hold,
and --ref finds its events.

--since takes a duration back from now (90m, 24h) or a time (RFC 3339, or a
date). --type takes event types, comma-separated, or their prefix
(login, code, refresh, admin, ...). --follow keeps printing new events until
interrupted; with PostgreSQL and several replicas, an event committed after a
later-numbered one may be missed by a follower (the listing without --follow
shows it).

Refusals of requests that proved no identity (wrong passwords, unknown
clients, bad secrets, codes or passkeys) are aggregated: one row per
address, reason and minute, timed at the minute's start, with its count
(DETAIL count=N; "count" in JSON, absent from a row that is one event).
--follow prints such a row once its minute is over, with its final count.`,
		Example: `  nsauth audit --since 1h
  nsauth audit --type login.failed,login.locked_out --user alice
  nsauth audit --follow -o json
  nsauth audit --follow --api-url https://auth.example.com
  printf '%s' "$REFRESH_TOKEN" | nsauth audit hash
  nsauth audit --since 720h --ref 5d41402abc4b2a76b9719d911017c592`,
		Args: cli.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			f, err := o.filter()
			if err != nil {
				return err
			}
			return o.Admin(c.Context(), func(ctx context.Context, admin adminv1connect.AdminServiceClient) error {
				return o.run(ctx, admin, f)
			})
		},
	}
	o.Parent = cmd
	config.RegisterStoreFlags(cmd.PersistentFlags())
	o.RegisterRemoteFlags(cmd.PersistentFlags())
	fl := cmd.Flags()
	fl.StringVar(&o.since, "since", "24h", "events from this long ago (a duration) or this time (RFC 3339 or a date); \"all\" for every event kept")
	fl.StringSliceVar(&o.types, "type", nil, "event types or type prefixes, comma-separated")
	fl.StringVar(&o.user, "user", "", "events of this username or subject")
	fl.StringVar(&o.client, "client", "", "events of this client id")
	fl.StringVar(&o.ref, "ref", "", "events about the token or code whose `nsauth audit hash` this is")
	fl.BoolVarP(&o.follow, "follow", "f", false, "keep printing new events until interrupted")
	fl.StringVarP(&o.output, "output", "o", "table", "output format: table or json (one object per line)")
	cmd.AddCommand(newAuditHashCommand(a, &o.Command))
	return cmd
}

// filter turns the flags into a store filter.
func (o *auditOptions) filter() (store.AuditFilter, error) {
	var f store.AuditFilter
	if o.output != "table" && o.output != "json" {
		return f, cli.UsageErrorf("--output %q: want table or json", o.output)
	}
	now := time.Now
	if o.App.Now != nil {
		now = o.App.Now
	}
	since, err := parseSince(o.since, now())
	if err != nil {
		return f, cli.UsageErrorf("--since %q: %v", o.since, err)
	}
	f.Since = since
	for _, t := range o.types {
		t = strings.TrimSpace(t)
		var matched []audit.Type
		for _, k := range audit.Types() {
			if string(k) == t || strings.HasPrefix(string(k), t+".") {
				matched = append(matched, k)
			}
		}
		if len(matched) == 0 {
			return f, cli.UsageErrorf("--type %q: not an event type (%s)", t, typeList())
		}
		for _, k := range matched {
			if !slices.Contains(f.Types, k) {
				f.Types = append(f.Types, k)
			}
		}
	}
	f.User, f.ClientID = o.user, o.client
	f.Ref = strings.ToLower(strings.TrimSpace(o.ref))
	if f.Ref != "" && strings.Trim(f.Ref, "0123456789abcdef") != "" {
		return f, cli.UsageErrorf("--ref %q: want the hexadecimal output of nsauth audit hash", o.ref)
	}
	return f, nil
}

func typeList() string {
	names := make([]string, 0, len(audit.Types()))
	for _, t := range audit.Types() {
		names = append(names, string(t))
	}
	return strings.Join(names, ", ")
}

// parseSince reads --since: "all", a duration back from now, an RFC 3339
// time or a date (UTC midnight).
func parseSince(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "all" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, errors.New("a duration back from now must not be negative")
		}
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, errors.New("want a duration (24h), an RFC 3339 time or a date (2006-01-02)")
}

// run prints the events f selects and, with --follow, those recorded
// afterwards, polling every auditPollInterval (app.After) until ctx ends.
func (o *auditOptions) run(ctx context.Context, admin adminv1connect.AdminServiceClient, f store.AuditFilter) error {
	p := &eventPrinter{w: o.App.Out, json: o.output == "json"}
	if !o.follow {
		for {
			events, err := auditEvents(ctx, admin, f)
			if err != nil {
				return err
			}
			if err := p.print(events); err != nil {
				return err
			}
			if len(events) < auditBatch {
				return nil
			}
			f.AfterID = events[len(events)-1].ID
		}
	}
	after := o.App.After
	if after == nil {
		after = time.After
	}
	now := time.Now
	if o.App.Now != nil {
		now = o.App.Now
	}
	interval := auditPollInterval
	if o.Remote() {
		interval = auditRemotePollInterval
	}
	for {
		events, err := auditEvents(ctx, admin, f)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		ready := settled(events, now())
		if err := p.print(ready); err != nil {
			return err
		}
		if len(ready) > 0 {
			f.AfterID = ready[len(ready)-1].ID
		}
		if len(ready) == auditBatch {
			continue
		}
		select {
		case <-ctx.Done():
			return nil // interrupted: the normal end of --follow
		case <-after(interval):
		}
	}
}

// auditEvents reads at most auditBatch events f selects through the admin
// service.
func auditEvents(ctx context.Context, admin adminv1connect.AdminServiceClient, f store.AuditFilter) ([]audit.Event, error) {
	req := &adminv1.ListAuditEventsRequest{
		Since:    unixSeconds(f.Since),
		Until:    unixSeconds(f.Until),
		User:     f.User,
		ClientId: f.ClientID,
		Ref:      f.Ref,
		AfterId:  f.AfterID,
		Limit:    auditBatch,
	}
	for _, t := range f.Types {
		req.Types = append(req.Types, string(t))
	}
	resp, err := admin.ListAuditEvents(ctx, connect.NewRequest(req))
	if err != nil {
		return nil, err
	}
	events := make([]audit.Event, 0, len(resp.Msg.GetEvents()))
	for _, e := range resp.Msg.GetEvents() {
		var ev audit.Event
		if err := json.Unmarshal([]byte(e.GetJson()), &ev); err != nil {
			return nil, fmt.Errorf("reading audit event %d: %w", e.GetId(), err)
		}
		ev.ID = e.GetId()
		events = append(events, ev)
	}
	return events, nil
}

// unixSeconds is t in seconds since the epoch (rounded down), 0 for the
// zero time.
func unixSeconds(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

// settled returns the events up to the first aggregated row whose count
// may still grow at now (its minute, and auditRowSettle, are not over):
// --follow prints it, and those after it, once it is complete.
func settled(events []audit.Event, now time.Time) []audit.Event {
	for i, e := range events {
		if e.Count > 0 && now.Before(e.Time.Add(time.Minute+auditRowSettle)) {
			return events[:i]
		}
	}
	return events
}

// eventPrinter prints events as a table (fixed columns, so that batches
// printed by --follow line up) or as JSON lines.
type eventPrinter struct {
	w      io.Writer
	json   bool
	header bool
}

const auditRow = "%-24s  %-24s  %-7s  %-16s  %-20s  %-15s  %s\n"

func (p *eventPrinter) print(events []audit.Event) error {
	if p.json {
		// Escaped further than encoding/json does: the fields hold what
		// anyone typed at a login page, and a terminal would obey a
		// bidirectional override in it.
		for _, e := range events {
			line, err := json.Marshal(e)
			if err != nil {
				return err
			}
			if _, err := p.w.Write(visible.EscapeJSON(append(line, '\n'))); err != nil {
				return err
			}
		}
		return nil
	}
	if !p.header {
		p.header = true
		if _, err := fmt.Fprintf(p.w, auditRow, "TIME", "TYPE", "OUTCOME", "USER", "CLIENT", "ADDRESS", "DETAIL"); err != nil {
			return err
		}
	}
	for _, e := range events {
		user := e.Username
		if user == "" {
			user = e.Subject
		}
		var detail []string
		if e.Reason != "" {
			detail = append(detail, e.Reason)
		}
		if e.Target != "" {
			detail = append(detail, e.Target)
		}
		if e.Actor != "" {
			detail = append(detail, "by "+e.Actor)
		}
		if e.Count > 0 {
			detail = append(detail, fmt.Sprintf("count=%d", e.Count))
		}
		if _, err := fmt.Fprintf(p.w, auditRow, e.Time.UTC().Format("2006-01-02T15:04:05.000Z"), visible.Escape(string(e.Type)), visible.Escape(string(e.Outcome)),
			storecmd.OrDash(visible.Escape(user)), storecmd.OrDash(visible.Escape(e.ClientID)), storecmd.OrDash(visible.Escape(e.ClientAddr)), storecmd.OrDash(visible.Escape(strings.Join(detail, " ")))); err != nil {
			return err
		}
	}
	return nil
}

func newAuditHashCommand(a *cli.App, sc *storecmd.Command) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "hash",
		Short: "Print the audit ref of a token or code read from standard input",
		Long: `Read a token, code or other secret value from standard input (its first line;
never from the command line, where other users can see it) and print the
keyed HMAC that stands for it in audit events, for --ref. The key is in the
provider's database, sealed: give the same secret key settings as nsauth
serve (NSAUTH_SECRET_KEY or NSAUTH_SECRET_KEY_FILE; with SQLite, the data
directory's secret.key serves).`,
		Example: `  printf '%s' "$ACCESS_TOKEN" | nsauth audit hash
  nsauth audit --since all --ref "$(printf '%s' "$ACCESS_TOKEN" | nsauth audit hash)"`,
		Args: cli.NoArgs,
	}
	config.RegisterSecretKeyFlags(cmd.Flags())
	cmd.RunE = func(c *cobra.Command, _ []string) error {
		if err := sc.OfflineOnly("nsauth audit hash"); err != nil {
			return err
		}
		value, err := readSecretLine(a.In)
		if err != nil {
			return err
		}
		loc, err := storecmd.LoadExistingStore(sc.Parent.PersistentFlags(), a.Getenv)
		if err != nil {
			return err
		}
		keys, err := config.LoadSecretKeys(c.Flags(), a.Getenv)
		if err != nil {
			return err
		}
		key, err := app.ReadAuditKey(c.Context(), *loc, *keys, a.Now)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(a.Out, audit.Hash(key, value))
		return err
	}
	return cmd
}

// readSecretLine reads the first line of r, without its line ending.
func readSecretLine(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, 64<<10)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading standard input: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", cli.UsageErrorf("nothing on standard input: pipe the token or code in")
	}
	return line, nil
}
