-- expect: adding-not-nullable-field
SET lock_timeout = '5s';
ALTER TABLE orders ALTER COLUMN user_id SET NOT NULL;
