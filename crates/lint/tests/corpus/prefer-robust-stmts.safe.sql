-- kubemigrate:no-transaction
-- expect: nothing
SET lock_timeout = '5s';
CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_note_idx ON orders (note);
