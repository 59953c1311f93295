-- expect: nothing
SET lock_timeout = '5s';
-- events_id_idx was built CONCURRENTLY by the migration before.
ALTER TABLE events ADD CONSTRAINT events_pkey PRIMARY KEY USING INDEX events_id_idx;
