DROP TABLE addresses;
DROP TABLE tenants;
DROP FUNCTION set_modified_on();
