-- Schema 17: a revocation of a token whose record is gone (its user was deleted).
INSERT INTO nsauth_revocations (token_id, expires_at, revoked_at) VALUES ('at-0017-gone', 4102444800000, 1764000300000);
