-- Schema 7: a federation policy for the machine client.
INSERT INTO nsauth_federation_policies (id, name, issuer, audience, subject, client_id, max_ttl_ms, created_at) VALUES ('fp-0007', 'gh-deploy', 'https://token.actions.githubusercontent.com', 'nsauth', 'repo:acme/app:ref:refs/heads/main', 'm-0006', 300000, 1764000000000);
