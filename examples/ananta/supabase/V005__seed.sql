-- Demo data: two organizations, their people and one BOM each, loaded with
-- COPY as pg_dump writes it (tab-separated, \N for NULL, ended by a \. line).
-- boms.line_count is filled in by the bom_line_items trigger, and
-- component_id stays NULL until the matcher links each line to components_v2.

COPY public.organizations (id, tenant_key, name) FROM stdin;
0b7f6a52-3c1e-4d0a-9a55-1d2f3e4a5b01	acme	Acme Robotics
0b7f6a52-3c1e-4d0a-9a55-1d2f3e4a5b02	globex	Globex Instruments
\.

COPY public.profiles (id, email, full_name) FROM stdin;
5e0c7d9a-8b2f-4c61-a3e4-7f8091a2b301	ada@acme.example	Ada Lovelace
5e0c7d9a-8b2f-4c61-a3e4-7f8091a2b302	grace@acme.example	Grace Hopper
5e0c7d9a-8b2f-4c61-a3e4-7f8091a2b303	hedy@globex.example	\N
\.

COPY public.organization_members (organization_id, profile_id, role) FROM stdin;
0b7f6a52-3c1e-4d0a-9a55-1d2f3e4a5b01	5e0c7d9a-8b2f-4c61-a3e4-7f8091a2b301	owner
0b7f6a52-3c1e-4d0a-9a55-1d2f3e4a5b01	5e0c7d9a-8b2f-4c61-a3e4-7f8091a2b302	engineer
0b7f6a52-3c1e-4d0a-9a55-1d2f3e4a5b02	5e0c7d9a-8b2f-4c61-a3e4-7f8091a2b303	admin
\.

COPY public.boms (id, organization_id, name, revision, created_by) FROM stdin;
9d4e2f10-6a7b-4c8d-9e0f-a1b2c3d4e501	0b7f6a52-3c1e-4d0a-9a55-1d2f3e4a5b01	Motor controller	B	5e0c7d9a-8b2f-4c61-a3e4-7f8091a2b301
9d4e2f10-6a7b-4c8d-9e0f-a1b2c3d4e502	0b7f6a52-3c1e-4d0a-9a55-1d2f3e4a5b02	Bench PSU	A	5e0c7d9a-8b2f-4c61-a3e4-7f8091a2b303
\.

COPY public.bom_line_items (bom_id, line_no, designators, mpn, manufacturer, quantity) FROM stdin;
9d4e2f10-6a7b-4c8d-9e0f-a1b2c3d4e501	1	{U1,U2}	LM358	Texas Instruments	2
9d4e2f10-6a7b-4c8d-9e0f-a1b2c3d4e501	2	{U3}	NE555	STMicroelectronics	1
9d4e2f10-6a7b-4c8d-9e0f-a1b2c3d4e501	3	{R1,R2,R3,R4}	RC0603FR-0710KL	Yageo	4
9d4e2f10-6a7b-4c8d-9e0f-a1b2c3d4e502	1	{U1}	LM317T	\N	1
9d4e2f10-6a7b-4c8d-9e0f-a1b2c3d4e502	2	{C1,C2}	EEU-FR1V101	Panasonic	2
\.

UPDATE public.boms SET status = 'ready' WHERE line_count > 0;
