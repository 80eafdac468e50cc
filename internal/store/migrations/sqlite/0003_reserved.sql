-- Placeholder for migration 0003, which another change of issue 11
-- (i11-sealed) adds. The loader wants numbers without gaps, so this branch
-- holds the number with a no-op; drop this file when that migration is
-- merged. Never deploy a database migrated by this placeholder.
SELECT 1;
