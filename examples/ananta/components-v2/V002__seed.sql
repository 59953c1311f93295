-- Seed data, loaded with COPY as pg_dump writes it.
COPY component (mpn, manufacturer, description) FROM stdin;
LM358	Texas Instruments	Dual op-amp
NE555	STMicroelectronics	Timer
\.
