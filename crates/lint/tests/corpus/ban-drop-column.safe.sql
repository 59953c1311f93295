-- expect: nothing
SET lock_timeout = '5s';
-- kubemigrate:lint-ignore ban-drop-column release 4.2 stopped reading it; 4.1 is gone everywhere
ALTER TABLE users DROP COLUMN legacy_flag;
