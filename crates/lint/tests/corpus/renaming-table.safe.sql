-- expect: nothing
SET lock_timeout = '5s';
CREATE TABLE accounts (id bigint PRIMARY KEY, name text);
