DROP INDEX addresses_tenant_idx, subscriptions_plan_idx, subscriptions_tenant_idx,
    tenant_users_contact_idx, contacts_tenant_idx, tenants_status_idx;
DROP TRIGGER subscriptions_audit ON subscriptions;
DROP TRIGGER tenants_audit ON tenants;
DROP FUNCTION audit_row_change();
DROP TABLE audit_logs;
