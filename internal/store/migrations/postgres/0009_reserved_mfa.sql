-- Reserved for the second-factor migration of branch mfa; replaced by it
-- when that branch is merged.
SELECT 1;
