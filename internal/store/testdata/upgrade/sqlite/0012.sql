-- Schema 12: a passwordless ceremony counted in a pool and bound to a
-- browser.
INSERT INTO nsauth_passkey_ceremonies (auth_request_id, kind, user_id, session, expires_at, pool, holder, browser) VALUES ('ar-0012', 'passwordless', '', '{"challenge":"Y2hhbGxlbmdlLTAwMTI"}', 4102444800000, 'known', 'alice', 'browser-0012');
INSERT INTO nsauth_passkey_ceremony_pools (pool, ceiling) VALUES ('known', 1);
