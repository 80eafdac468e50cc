-- Schema 10: alice's passkey.
INSERT INTO nsauth_passkeys (id, user_id, name, credential_id, public_key, sign_count, flags, transports, aaguid, attestation_type, created_at, last_used_at) VALUES ('pk-0010', 'u-alice', 'yubikey', '\xc0ffee0010', '\xa5010203262001215820', 7, 3, 'usb nfc', '\x000102030405060708090a0b0c0d0e0f', 'none', 1764000000000, 1764000500000);
