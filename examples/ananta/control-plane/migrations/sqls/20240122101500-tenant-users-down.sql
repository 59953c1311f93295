DROP TABLE tenant_users;
DROP TABLE contacts;
