-- Plans the platform sells, and each tenant's subscription to one of them.
CREATE TABLE plans (
    id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    name          varchar(100) NOT NULL UNIQUE,
    description   text,
    tier          varchar(20)  NOT NULL,
    billing_cycle varchar(10)  NOT NULL DEFAULT 'monthly',
    price         numeric(10, 2) NOT NULL,
    currency      char(3)     NOT NULL DEFAULT 'USD',
    size          varchar(10),
    meta_data     jsonb       NOT NULL DEFAULT '{}',
    created_on    timestamptz NOT NULL DEFAULT now(),
    modified_on   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT plans_tier_valid CHECK (tier IN ('BASIC', 'STANDARD', 'PREMIUM')),
    CONSTRAINT plans_cycle_valid CHECK (billing_cycle IN ('monthly', 'yearly')),
    CONSTRAINT plans_price_nonneg CHECK (price >= 0)
);

CREATE TABLE subscriptions (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    plan_id     uuid        NOT NULL REFERENCES plans (id),
    status      varchar(20) NOT NULL DEFAULT 'pending',
    start_date  date        NOT NULL DEFAULT current_date,
    end_date    date,
    created_on  timestamptz NOT NULL DEFAULT now(),
    modified_on timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT subscriptions_status_valid
        CHECK (status IN ('pending', 'active', 'inactive', 'cancelled', 'expired')),
    CONSTRAINT subscriptions_dates CHECK (end_date IS NULL OR end_date >= start_date)
);

-- A tenant has at most one active subscription.
CREATE UNIQUE INDEX subscriptions_one_active_uq ON subscriptions (tenant_id) WHERE status = 'active';

CREATE TRIGGER plans_modified_on BEFORE UPDATE ON plans
    FOR EACH ROW EXECUTE FUNCTION set_modified_on();
CREATE TRIGGER subscriptions_modified_on BEFORE UPDATE ON subscriptions
    FOR EACH ROW EXECUTE FUNCTION set_modified_on();

INSERT INTO plans (name, description, tier, billing_cycle, price, size) VALUES
    ('Basic',    'Pooled infrastructure, community support', 'BASIC',    'monthly',   49.00, 'SMALL'),
    ('Standard', 'Pooled infrastructure, business support',  'STANDARD', 'monthly',  199.00, 'MEDIUM'),
    ('Premium',  'Silo infrastructure, dedicated support',   'PREMIUM',  'yearly',  9990.00, 'LARGE');
