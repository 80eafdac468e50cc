-- Schema 16: a group with alice in it, and an invite link for bob.
INSERT INTO nsauth_groups (name, description, created_at) VALUES ('ops', 'Operations', 1764000000000);
INSERT INTO nsauth_group_members (group_name, user_id, created_at) VALUES ('ops', 'u-alice', 1764000000000);
INSERT INTO nsauth_account_links (id, link_hash, user_id, purpose, created_at, expires_at) VALUES ('al-0016', x'613d98d9d3455b106b1d6386888c61286dd1dda3fbe9da681f9e231141c6e139', 'u-bob', 'invite', 1764000000000, 4102444800000);
