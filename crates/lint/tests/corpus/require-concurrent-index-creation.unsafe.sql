-- expect: require-concurrent-index-creation
SET lock_timeout = '5s';
CREATE INDEX orders_user_id_idx ON orders (user_id);
