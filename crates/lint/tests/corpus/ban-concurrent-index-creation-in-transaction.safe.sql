-- kubemigrate:no-transaction
-- expect: nothing
SET lock_timeout = '5s';
CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_total_idx ON orders (total);
