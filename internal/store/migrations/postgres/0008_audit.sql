-- The audit trail (issue 14): one row per event, kept for the retention
-- (NSAUTH_AUDIT_RETENTION) and deleted with the expired rows. No column
-- holds a secret: refs holds keyed HMACs of the tokens and codes an event
-- concerns, as JSON ({"token_hmac": "…"}), '' when none. id orders the
-- rows for nsauth audit --follow; at is the time in Unix milliseconds.
CREATE TABLE nsauth_audit_events (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          BIGINT NOT NULL,
    type        TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    subject     TEXT NOT NULL DEFAULT '',
    username    TEXT NOT NULL DEFAULT '',
    client_id   TEXT NOT NULL DEFAULT '',
    client_addr TEXT NOT NULL DEFAULT '',
    user_agent  TEXT NOT NULL DEFAULT '',
    trace_id    TEXT NOT NULL DEFAULT '',
    replica     TEXT NOT NULL DEFAULT '',
    reason      TEXT NOT NULL DEFAULT '',
    actor       TEXT NOT NULL DEFAULT '',
    target      TEXT NOT NULL DEFAULT '',
    refs        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX nsauth_audit_events_at ON nsauth_audit_events (at);
CREATE INDEX nsauth_audit_events_type ON nsauth_audit_events (type, at);
CREATE INDEX nsauth_audit_events_username ON nsauth_audit_events (username, at);
CREATE INDEX nsauth_audit_events_subject ON nsauth_audit_events (subject, at);
CREATE INDEX nsauth_audit_events_client_id ON nsauth_audit_events (client_id, at);
