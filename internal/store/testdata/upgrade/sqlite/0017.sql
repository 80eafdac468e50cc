-- Schema 17: an event about a revoked token, with its ref.
INSERT INTO nsauth_audit_events (at, type, outcome, subject, username, client_id, refs) VALUES (1764000700000, 'token.revoked', 'success', 'u-0017', 'revoker-0017', 'nsauth-cli', '{"token_hmac":"0017abcdef0123456789abcdef012345"}');
