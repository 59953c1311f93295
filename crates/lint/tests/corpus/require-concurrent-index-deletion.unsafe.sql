-- expect: require-concurrent-index-deletion
SET lock_timeout = '5s';
DROP INDEX IF EXISTS orders_user_id_idx;
