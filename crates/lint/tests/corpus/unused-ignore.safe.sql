-- expect: nothing
SET lock_timeout = '5s';
-- kubemigrate:lint-ignore ban-drop-table archived in 2025
DROP TABLE IF EXISTS order_archive_2019;
