-- expect: no-transaction-required
SET lock_timeout = '5s';
REINDEX INDEX CONCURRENTLY orders_total_idx;
