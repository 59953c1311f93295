-- kubemigrate:no-transaction
-- The catalogue search matches part numbers by prefix, case-insensitively
-- (lower(mpn) LIKE 'lm35%'). CONCURRENTLY keeps the catalogue writable while
-- the index builds, which needs this file to run outside a transaction.
CREATE INDEX CONCURRENTLY IF NOT EXISTS component_mpn_prefix_idx
    ON component (lower(mpn) text_pattern_ops);

CREATE INDEX CONCURRENTLY IF NOT EXISTS component_alternate_alternate_idx
    ON component_alternate (alternate_id);
