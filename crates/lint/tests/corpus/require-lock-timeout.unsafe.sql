-- expect: require-lock-timeout
ALTER TABLE orders ADD COLUMN note text;
