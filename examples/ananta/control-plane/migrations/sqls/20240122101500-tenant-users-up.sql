-- The people of a tenant: its contacts and the users provisioned for it.
CREATE TABLE contacts (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    first_name  varchar(100) NOT NULL,
    last_name   varchar(100) NOT NULL,
    email       varchar(254) NOT NULL,
    is_primary  boolean     NOT NULL DEFAULT false,
    type        varchar(50),
    created_on  timestamptz NOT NULL DEFAULT now(),
    modified_on timestamptz NOT NULL DEFAULT now(),
    deleted     boolean     NOT NULL DEFAULT false
);

-- At most one primary contact per tenant.
CREATE UNIQUE INDEX contacts_primary_uq ON contacts (tenant_id) WHERE is_primary AND NOT deleted;
CREATE UNIQUE INDEX contacts_tenant_email_uq ON contacts (tenant_id, lower(email)) WHERE NOT deleted;

CREATE TABLE tenant_users (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    contact_id  uuid        REFERENCES contacts (id) ON DELETE SET NULL,
    auth_id     varchar(255) NOT NULL,   -- subject of the identity provider
    role        varchar(50) NOT NULL DEFAULT 'member',
    status      smallint    NOT NULL DEFAULT 0,
    last_login  timestamptz,
    created_on  timestamptz NOT NULL DEFAULT now(),
    modified_on timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT tenant_users_role_valid CHECK (role IN ('owner', 'admin', 'member')),
    UNIQUE (tenant_id, auth_id)
);

CREATE TRIGGER contacts_modified_on BEFORE UPDATE ON contacts
    FOR EACH ROW EXECUTE FUNCTION set_modified_on();
CREATE TRIGGER tenant_users_modified_on BEFORE UPDATE ON tenant_users
    FOR EACH ROW EXECUTE FUNCTION set_modified_on();
