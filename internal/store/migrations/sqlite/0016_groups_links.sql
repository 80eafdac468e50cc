-- Groups and one-time account links (issue 25). Times are Unix
-- milliseconds.
--
-- nsauth_groups: the groups nsauth itself keeps (connector groups, named
-- CONNECTOR:name, live in nsauth_identities). A name is lower-case
-- [a-z0-9][a-z0-9._-]{0,63}, without ':', so the two never collide.
CREATE TABLE nsauth_groups (
    name        TEXT PRIMARY KEY,
    description TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL
);

-- nsauth_group_members: who is in which group. Deleting the group or the
-- user removes the membership.
CREATE TABLE nsauth_group_members (
    group_name TEXT NOT NULL REFERENCES nsauth_groups (name) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES nsauth_users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (group_name, user_id)
);
CREATE INDEX nsauth_group_members_user_id ON nsauth_group_members (user_id);

-- nsauth_account_links: one-time links (invite, reset) that let their
-- holder set the user's password. At most one per user; the secret is
-- stored only as its digest; id is the reference the audit trail names.
-- Using a link deletes its row; an expired one is kept a while so that
-- opening it is told (and audited) as expired, then deleted with the
-- other expired records.
CREATE TABLE nsauth_account_links (
    id         TEXT PRIMARY KEY,
    link_hash  BLOB NOT NULL UNIQUE,
    user_id    TEXT NOT NULL UNIQUE REFERENCES nsauth_users (id) ON DELETE CASCADE,
    purpose    TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX nsauth_account_links_expires_at ON nsauth_account_links (expires_at);
