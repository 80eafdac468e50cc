-- Schema 2: login-attempt counters naming their account.
INSERT INTO nsauth_login_attempts (key, account, window_start, attempts) VALUES ('account:alice', 'alice', 1764000000000, 3);
