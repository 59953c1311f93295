-- kubemigrate:no-transaction
-- CREATE INDEX CONCURRENTLY cannot run inside a transaction block, so this file
-- runs without one: each statement commits on its own, and writes to
-- bom_line_items are not blocked while the index builds.
-- IF NOT EXISTS, so that after an interrupted run (an INVALID index left behind,
-- dropped by hand) the file can simply run again.
CREATE INDEX CONCURRENTLY IF NOT EXISTS bom_line_items_mpn_idx
    ON public.bom_line_items (lower(mpn));

CREATE INDEX CONCURRENTLY IF NOT EXISTS bom_line_items_unmatched_idx
    ON public.bom_line_items (bom_id)
    WHERE component_id IS NULL;
