-- Tenants: one row per customer organisation of the platform.
-- db-migrate-pg puts DB_SCHEMA first on the search_path, so these unqualified
-- names are created in that schema (tenant_management).
CREATE TABLE tenants (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    name        varchar(100) NOT NULL,
    key         varchar(20)  NOT NULL,
    status      smallint    NOT NULL DEFAULT 0,  -- 0 pending, 1 active, 2 suspended, 3 deprovisioned
    domains     text[]      NOT NULL DEFAULT '{}',
    created_on  timestamptz NOT NULL DEFAULT now(),
    modified_on timestamptz NOT NULL DEFAULT now(),
    created_by  uuid,
    modified_by uuid,
    deleted     boolean     NOT NULL DEFAULT false,
    deleted_on  timestamptz,
    deleted_by  uuid,
    CONSTRAINT tenants_key_format CHECK (key ~ '^[a-z][a-z0-9]{1,19}$'),
    CONSTRAINT tenants_status_valid CHECK (status BETWEEN 0 AND 3)
);

CREATE UNIQUE INDEX tenants_key_uq ON tenants (key) WHERE NOT deleted;

CREATE TABLE addresses (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    address     varchar(500),
    city        varchar(100),
    state       varchar(100),
    zip         varchar(25),
    country     varchar(25) NOT NULL,
    created_on  timestamptz NOT NULL DEFAULT now(),
    modified_on timestamptz NOT NULL DEFAULT now()
);

-- Keeps modified_on current on every update; used by every table of the service.
CREATE FUNCTION set_modified_on() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.modified_on := now();
    RETURN NEW;
END;
$$;

CREATE TRIGGER tenants_modified_on BEFORE UPDATE ON tenants
    FOR EACH ROW EXECUTE FUNCTION set_modified_on();
CREATE TRIGGER addresses_modified_on BEFORE UPDATE ON addresses
    FOR EACH ROW EXECUTE FUNCTION set_modified_on();
