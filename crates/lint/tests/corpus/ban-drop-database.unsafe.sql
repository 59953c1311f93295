-- expect: ban-drop-database no-transaction-required
SET lock_timeout = '5s';
DROP DATABASE IF EXISTS scratch;
