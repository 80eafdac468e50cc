-- Schema 15: a connector (its secret sealed under the test keyring) and
-- carol bound to an identity of it, with its groups.
INSERT INTO nsauth_connectors (name, type, display_name, settings, secret, create_users, trust_upstream_mfa, created_at, updated_at) VALUES ('corp', 'oidc', 'Corp SSO', '{"issuer":"https://sso.corp.example","client_id":"nsauth"}', '\x6e73617574682d7365616c65643a76313a373936626435663364323139663866663a36766a3962686a62333051506d4167524c4737397758397236327a44424d4f6e67566d7974534b765643774f7646354d4e4e6c446d686336716370597a41', 0, 1, 1764000000000, 1764000000000);
INSERT INTO nsauth_identities (connector, subject, user_id, group_names, created_at, last_login_at) VALUES ('corp', 'sub-carol', 'u-carol', '["corp:eng"]', 1764000000000, 1764000000000);
