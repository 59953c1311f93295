-- expect: renaming-column
SET lock_timeout = '5s';
ALTER TABLE users RENAME COLUMN name TO full_name;
