-- expect: adding-serial-primary-key-field constraint-missing-not-valid
SET lock_timeout = '5s';
ALTER TABLE events ADD CONSTRAINT events_pkey PRIMARY KEY (id);
