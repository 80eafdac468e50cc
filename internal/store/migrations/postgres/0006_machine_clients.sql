-- Machine clients (issue 13): confidential clients that obtain tokens for
-- themselves with the client-credentials grant. They live in nsauth_clients
-- beside the native clients (kind 'native'), so that their tokens are
-- recorded in nsauth_access_tokens and revoked by the same one function.
-- A machine client has a unique human name, the scopes it may be granted,
-- the lifetime of its tokens (0: the server's cap) and, while disabled,
-- disabled_at. Its secret is stored only as a SHA-256 digest, like every
-- client secret.
ALTER TABLE nsauth_clients ADD COLUMN kind TEXT NOT NULL DEFAULT 'native';
ALTER TABLE nsauth_clients ADD COLUMN name TEXT;
ALTER TABLE nsauth_clients ADD COLUMN scopes TEXT NOT NULL DEFAULT '';
ALTER TABLE nsauth_clients ADD COLUMN token_ttl_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE nsauth_clients ADD COLUMN updated_at BIGINT;
ALTER TABLE nsauth_clients ADD COLUMN disabled_at BIGINT;
CREATE UNIQUE INDEX nsauth_clients_name ON nsauth_clients (name) WHERE name IS NOT NULL;

-- A machine client's access token has no user.
ALTER TABLE nsauth_access_tokens ALTER COLUMN user_id DROP NOT NULL;
CREATE INDEX nsauth_access_tokens_client_id ON nsauth_access_tokens (client_id);
