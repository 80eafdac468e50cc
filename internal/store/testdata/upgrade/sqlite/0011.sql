-- Schema 11: a user with an enrolment link.
INSERT INTO nsauth_users (id, username, name, email, password_hash, created_at, updated_at) VALUES ('u-dave', 'dave', 'Dave', '', '$argon2id$v=19$m=19456,t=2,p=1$7S4l1Rx8XmuGQ9sNCJ7KFQ$7Ms9psqP8YQYP7BjgYaP5GYprqb4A1GAg4LZxIFgqNs', 1764000000000, 1764000000000);
INSERT INTO nsauth_enrol_links (user_id, link_hash, created_at, expires_at) VALUES ('u-dave', x'73af0927450bd939bc6d69d2af30b5a39ab2061d98c07db30b4d3e559c8d689a', 1764000000000, 4102444800000);
