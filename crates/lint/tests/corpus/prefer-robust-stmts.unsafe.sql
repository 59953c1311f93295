-- kubemigrate:no-transaction
-- expect: prefer-robust-stmts
SET lock_timeout = '5s';
CREATE INDEX CONCURRENTLY orders_note_idx ON orders (note);
