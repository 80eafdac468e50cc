-- Placeholder for migration 0005, which a change of issue 11 adds. The
-- loader wants numbers without gaps, so this branch (issue 12, device
-- flow) holds the number with a no-op; drop this file when that migration
-- is merged. Never deploy a database migrated by this placeholder.
SELECT 1;
