-- Login attempts are counted before the password is checked (a place is
-- reserved, then given back when the attempt was not a failure), so the
-- counters hold attempts, not failures. Each counter names the account it
-- protects, so `nsauth users unlock` can clear an account's counters.
-- The old counters are short-lived and are dropped.
DROP TABLE nsauth_login_failures;

CREATE TABLE nsauth_login_attempts (
    key          TEXT PRIMARY KEY,
    account      TEXT NOT NULL DEFAULT '',
    window_start BIGINT NOT NULL,
    attempts     INTEGER NOT NULL
);
CREATE INDEX nsauth_login_attempts_account ON nsauth_login_attempts (account);
CREATE INDEX nsauth_login_attempts_window_start ON nsauth_login_attempts (window_start);
