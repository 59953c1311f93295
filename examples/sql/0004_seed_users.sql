-- Seed data in pg_dump's format: streamed through the COPY protocol.
COPY users (email) FROM stdin;
ada@example.com
grace@example.com
\.
INSERT INTO orders (user_id, total_cents)
SELECT id, 1250 FROM users WHERE email = 'ada@example.com';
