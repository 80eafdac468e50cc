-- Reserved: this number belongs to another change being made at the same
-- time, on another branch. Migrations are numbered without gaps, so this
-- placeholder (which changes nothing) stands in for it until the branches
-- are merged; remove it then if that change brings its own file.
SELECT 1;
