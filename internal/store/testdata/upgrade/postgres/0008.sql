-- Schema 8: audit rows.
INSERT INTO nsauth_audit_events (at, type, outcome, subject, username, client_id, client_addr, user_agent, replica, reason) VALUES (1764000400000, 'login.succeeded', 'success', 'u-alice', 'alice', 'nsauth-cli', '192.0.2.1', 'Mozilla/5.0', 'r1', '');
INSERT INTO nsauth_audit_events (at, type, outcome, subject, username, client_id, client_addr, reason) VALUES (1764000400001, 'login.failed', 'failure', '', 'carol', 'nsauth-cli', '192.0.2.2', 'bad_credentials');
INSERT INTO nsauth_audit_events (at, type, outcome, subject, username, client_id, refs) VALUES (1764000400002, 'code.issued', 'success', 'u-alice', 'alice', 'nsauth-cli', '{"code_hmac":"aGVsbG8"}');
