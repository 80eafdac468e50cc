-- Aggregated refusals (audit.Recorder.RecordRefusal): the refusals of one
-- minute that agree in every recorded field share one row. agg_key is the
-- digest of those fields, NULL on a row that is one event (NULLs never
-- collide in a unique index); agg_count is how many refusals the row stands
-- for, 0 on a row that is one event. Replicas add to a row with one
-- INSERT ... ON CONFLICT (agg_key) DO UPDATE, so no count is lost to a race.
ALTER TABLE nsauth_audit_events ADD COLUMN agg_key TEXT;
ALTER TABLE nsauth_audit_events ADD COLUMN agg_count BIGINT NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX nsauth_audit_events_agg_key ON nsauth_audit_events (agg_key);
