-- expect: nothing
SET lock_timeout = '5s';
-- The application writes both columns, then a backfill copies the old ones.
ALTER TABLE orders ADD COLUMN total_cents bigint;
