-- Schema 6: a machine client and its access token, which has no user.
INSERT INTO nsauth_clients (id, secret_hash, redirect_uris, created_at, kind, name, scopes, token_ttl_ms, updated_at) VALUES ('m-0006', x'783cafa70fd3114c0602e213b01555c5b108a1472600e18140d3766e298219f2', '[]', 1764000000000, 'machine', 'ci-bot', 'deploy read', 600000, 1764000000000);
INSERT INTO nsauth_access_tokens (id, grant_id, client_id, scopes, created_at, expires_at) VALUES ('at-0006', 'm-0006', 'm-0006', 'deploy', 1764000000000, 4102444800000);
