-- kubemigrate:no-transaction
-- expect: nothing
SET lock_timeout = '5s';
DROP INDEX CONCURRENTLY IF EXISTS orders_user_id_idx;
