-- The refs of the audit events, one row per ref and event, so that
-- nsauth audit --ref finds its events by index: refs LIKE '%"…"%' reads
-- every event (seconds at ten million). A trigger fills it from the refs
-- column, whichever statement inserts the event (an aggregated row's
-- ON CONFLICT update adds no ref); an event's refs go with it.
CREATE TABLE nsauth_audit_refs (
    ref      TEXT NOT NULL,
    event_id INTEGER NOT NULL REFERENCES nsauth_audit_events (id) ON DELETE CASCADE,
    PRIMARY KEY (ref, event_id)
) WITHOUT ROWID;
CREATE INDEX nsauth_audit_refs_event_id ON nsauth_audit_refs (event_id);
INSERT OR IGNORE INTO nsauth_audit_refs (ref, event_id)
    SELECT j.value, e.id FROM nsauth_audit_events e, json_each(e.refs) j
    WHERE e.refs <> '' AND json_valid(e.refs) AND j.type = 'text';
CREATE TRIGGER nsauth_audit_events_refs AFTER INSERT ON nsauth_audit_events
WHEN NEW.refs <> '' AND json_valid(NEW.refs)
BEGIN
    INSERT OR IGNORE INTO nsauth_audit_refs (ref, event_id)
        SELECT value, NEW.id FROM json_each(NEW.refs) WHERE type = 'text';
END;
