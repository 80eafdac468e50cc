-- Schema 9: alice's TOTP (sealed under the test keyring), two recovery
-- codes, and an access token that records its amr.
INSERT INTO nsauth_totp (user_id, secret, last_step, created_at) VALUES ('u-alice', x'6e73617574682d7365616c65643a76313a373936626435663364323139663866663a6a6670695474584141796678334936524d6a4c376b5a6f47754b54583272526f35734f6b4b4a6e71306975566865394a69546d786c4b332d7666477843516f52377a4b6d55754533467242505658544a', 58800000, 1764000000000);
INSERT INTO nsauth_recovery_codes (user_id, code_hash, created_at) VALUES ('u-alice', x'5a8681e91ddbe681dfbfa864718c67e59a4570368e4683784e832fb5810d1da1', 1764000000000);
INSERT INTO nsauth_recovery_codes (user_id, code_hash, created_at) VALUES ('u-alice', x'f3dd17b9fa957900b7bd92cf62f9c973fa4510d78225815e65a9664efea0ae36', 1764000000000);
INSERT INTO nsauth_access_tokens (id, grant_id, user_id, client_id, scopes, created_at, expires_at, amr) VALUES ('at-0009', 'fam-0001', 'u-alice', 'nsauth-cli', 'openid', 1764000000000, 4102444800000, 'pwd otp');
