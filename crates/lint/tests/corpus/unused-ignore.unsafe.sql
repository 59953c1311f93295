-- expect: unused-ignore
SET lock_timeout = '5s';
-- kubemigrate:lint-ignore ban-drop-table there is no DROP here
ALTER TABLE orders ADD COLUMN paid_at timestamptz;
