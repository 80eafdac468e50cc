-- Bounds on passkey ceremonies per pool and per holder, and the binding of
-- a ceremony to the browser that began it. A passwordless ceremony is begun
-- by a browser nobody has authenticated, so it is counted in a pool (of
-- browsers the provider knows, or of the others) and against its holder
-- (the known browser's account, or the client address): one holder cannot
-- take a pool whole, and a flood of unknown browsers cannot take the known
-- browsers' pool. browser is a digest of the CSRF token of the browser that
-- began the ceremony ('' for none): only that browser may answer it.
-- Ceremonies already in progress count in pool '' and are bound to no
-- browser, as before.
ALTER TABLE nsauth_passkey_ceremonies ADD COLUMN pool TEXT NOT NULL DEFAULT '';
ALTER TABLE nsauth_passkey_ceremonies ADD COLUMN holder TEXT NOT NULL DEFAULT '';
ALTER TABLE nsauth_passkey_ceremonies ADD COLUMN browser TEXT NOT NULL DEFAULT '';
-- The counts read these indexes alone (auth_request_id included: the
-- ceremony a new one replaces is left out of them).
CREATE INDEX nsauth_passkey_ceremonies_pool ON nsauth_passkey_ceremonies (pool, expires_at, auth_request_id);
CREATE INDEX nsauth_passkey_ceremonies_holder ON nsauth_passkey_ceremonies (holder, expires_at, auth_request_id);

-- One row per pool, locked by every new ceremony of the pool while it
-- counts and inserts, so that simultaneous begins, on every replica, never
-- exceed a bound between them. ceiling is at least the number of the
-- pool's live ceremonies (every new one raises it; takes and expiries do
-- not lower it): the pool is counted only when it reaches the limit.
CREATE TABLE nsauth_passkey_ceremony_pools (
    pool    TEXT PRIMARY KEY,
    ceiling BIGINT NOT NULL DEFAULT 0
);
