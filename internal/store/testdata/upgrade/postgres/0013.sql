-- Schema 13: an aggregated refusal (five refusals in one row).
INSERT INTO nsauth_audit_events (at, type, outcome, client_addr, reason, agg_key, agg_count) VALUES (1764000600000, 'login.failed', 'failure', '198.51.100.7', 'bad_credentials', 'agg-0013', 5);
