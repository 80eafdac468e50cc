-- Refresh rotation grace (NSAUTH_REFRESH_TOKEN_REUSE_GRACE): a rotated
-- token's row keeps the id of its successor and, sealed under a key only the
-- rotated token's value yields, the successor's value, so that a client
-- retrying a refresh whose answer it lost gets that successor again. The
-- sealed value is cleared once the grace window passed or the successor was
-- used; the partial index finds the rows still holding one.
ALTER TABLE nsauth_refresh_tokens ADD COLUMN successor_id TEXT;
ALTER TABLE nsauth_refresh_tokens ADD COLUMN successor_sealed BLOB;
CREATE INDEX nsauth_refresh_tokens_grace ON nsauth_refresh_tokens (used_at) WHERE successor_sealed IS NOT NULL;
