-- Schema 3: an access token revoked before its expiry, and its revocation.
INSERT INTO nsauth_access_tokens (id, grant_id, user_id, client_id, scopes, created_at, expires_at, revoked_at) VALUES ('at-0003', 'fam-0001', 'u-alice', 'nsauth-cli', 'openid', 1764000000000, 4102444800000, 1764000200000);
INSERT INTO nsauth_revocations (token_id, expires_at, revoked_at) VALUES ('at-0003', 4102444800000, 1764000200000);
