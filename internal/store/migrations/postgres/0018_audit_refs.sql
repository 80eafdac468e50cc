-- The refs of the audit events, one row per ref and event, so that
-- nsauth audit --ref finds its events by index: refs LIKE '%"…"%' reads
-- every event (seconds at ten million). A trigger fills it from the refs
-- column, whichever statement inserts the event (an aggregated row's
-- ON CONFLICT update adds no ref); an event's refs go with it.
CREATE TABLE nsauth_audit_refs (
    ref      TEXT NOT NULL,
    event_id BIGINT NOT NULL REFERENCES nsauth_audit_events (id) ON DELETE CASCADE,
    PRIMARY KEY (ref, event_id)
);
CREATE INDEX nsauth_audit_refs_event_id ON nsauth_audit_refs (event_id);
INSERT INTO nsauth_audit_refs (ref, event_id)
    SELECT j.value, e.id FROM nsauth_audit_events e, jsonb_each_text(NULLIF(e.refs, '')::jsonb) j
    WHERE j.value IS NOT NULL
    ON CONFLICT DO NOTHING;
-- Statistics now, not at autovacuum's next turn: without them the planner
-- takes one ref for 0.5 % of the rows and scans in parallel for --ref.
ANALYZE nsauth_audit_refs;
CREATE FUNCTION nsauth_audit_events_refs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.refs <> '' THEN
        INSERT INTO nsauth_audit_refs (ref, event_id)
            SELECT value, NEW.id FROM jsonb_each_text(NEW.refs::jsonb) WHERE value IS NOT NULL
            ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER nsauth_audit_events_refs AFTER INSERT ON nsauth_audit_events
    FOR EACH ROW EXECUTE FUNCTION nsauth_audit_events_refs();
