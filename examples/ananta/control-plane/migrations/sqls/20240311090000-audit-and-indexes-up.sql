-- An audit trail of the changes to tenants and subscriptions, and the indexes
-- the service's list and lookup queries need.
CREATE TABLE audit_logs (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    acted_at    timestamptz NOT NULL DEFAULT now(),
    action      varchar(10) NOT NULL,
    entity_name varchar(50) NOT NULL,
    entity_id   uuid        NOT NULL,
    tenant_id   uuid,
    actor       text        NOT NULL DEFAULT current_user,
    before      jsonb,
    after       jsonb
);

CREATE FUNCTION audit_row_change() RETURNS trigger
LANGUAGE plpgsql AS $body$
DECLARE
    old_row jsonb := CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) END;
    new_row jsonb := CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) END;
    rec     jsonb := coalesce(new_row, old_row);
BEGIN
    INSERT INTO audit_logs (action, entity_name, entity_id, tenant_id, before, after)
    VALUES (TG_OP, TG_TABLE_NAME, (rec ->> 'id')::uuid,
            coalesce(rec ->> 'tenant_id', CASE WHEN TG_TABLE_NAME = 'tenants' THEN rec ->> 'id' END)::uuid,
            old_row, new_row);
    RETURN NULL;
END;
$body$;

CREATE TRIGGER tenants_audit AFTER INSERT OR UPDATE OR DELETE ON tenants
    FOR EACH ROW EXECUTE FUNCTION audit_row_change();
CREATE TRIGGER subscriptions_audit AFTER INSERT OR UPDATE OR DELETE ON subscriptions
    FOR EACH ROW EXECUTE FUNCTION audit_row_change();

CREATE INDEX audit_logs_entity_idx ON audit_logs (entity_name, entity_id, acted_at DESC);
CREATE INDEX audit_logs_tenant_idx ON audit_logs (tenant_id, acted_at DESC) WHERE tenant_id IS NOT NULL;
CREATE INDEX tenants_status_idx ON tenants (status) WHERE NOT deleted;
CREATE INDEX contacts_tenant_idx ON contacts (tenant_id);
CREATE INDEX tenant_users_contact_idx ON tenant_users (contact_id);
CREATE INDEX subscriptions_tenant_idx ON subscriptions (tenant_id, start_date DESC);
CREATE INDEX subscriptions_plan_idx ON subscriptions (plan_id);
CREATE INDEX addresses_tenant_idx ON addresses (tenant_id);
