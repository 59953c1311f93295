-- expect: nothing
SET lock_timeout = '5s';
-- orders_user_id_not_null was added NOT VALID by an earlier migration:
-- validating scans the table under a lock that lets reads and writes go on.
ALTER TABLE orders VALIDATE CONSTRAINT orders_user_id_not_null;
ALTER TABLE orders ALTER COLUMN user_id SET NOT NULL;
