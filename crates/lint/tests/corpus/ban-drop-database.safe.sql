-- expect: nothing
SET lock_timeout = '5s';
-- Databases are dropped by hand, outside migrations; this one only stops new sessions.
ALTER DATABASE scratch ALLOW_CONNECTIONS false;
