-- Schema 18: an event about a revoked token, with its ref.
INSERT INTO nsauth_audit_events (at, type, outcome, subject, username, client_id, refs) VALUES (1764000700000, 'token.revoked', 'success', 'u-0018', 'revoker-0018', 'nsauth-cli', '{"token_hmac":"0018abcdef0123456789abcdef012345"}');
