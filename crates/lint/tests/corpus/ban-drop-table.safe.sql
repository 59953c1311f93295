-- expect: nothing
SET lock_timeout = '5s';
DROP TABLE old_sessions; -- kubemigrate:lint-ignore ban-drop-table unused since 3.0, backed up in s3://archive
