-- expect: ban-drop-table
SET lock_timeout = '5s';
DROP TABLE old_sessions;
