-- Federation policies (issue 13): trust the ID tokens a foreign OpenID
-- provider (a CI platform) gives its jobs as the identity of a machine
-- client, for the token-exchange grant. A policy names the issuer exactly,
-- the audience the tokens must carry, a subject pattern and the machine
-- client; max_ttl_ms caps the lifetime of the tokens it yields (0: the
-- client's alone). The tokens issued under a policy carry its id as their
-- grant_id, so deleting the policy revokes them. Deleting the client
-- deletes its policies.
CREATE TABLE nsauth_federation_policies (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    issuer     TEXT NOT NULL,
    audience   TEXT NOT NULL,
    subject    TEXT NOT NULL,
    client_id  TEXT NOT NULL REFERENCES nsauth_clients (id) ON DELETE CASCADE,
    max_ttl_ms BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);
CREATE INDEX nsauth_federation_policies_issuer ON nsauth_federation_policies (issuer);
CREATE INDEX nsauth_federation_policies_client_id ON nsauth_federation_policies (client_id);
