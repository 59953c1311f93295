-- The app plane's data: organizations, their members, and the bills of
-- materials (BOMs) they upload, line by line. Components are resolved against
-- the Components-V2 catalogue by manufacturer part number (mpn).

CREATE TYPE public.member_role AS ENUM ('owner', 'admin', 'engineer', 'viewer');
CREATE TYPE public.bom_status AS ENUM ('draft', 'processing', 'ready', 'failed');

CREATE TABLE public.organizations (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_key  text        NOT NULL UNIQUE,  -- tenants.key in the control plane
    name        text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE public.profiles (
    id          uuid        PRIMARY KEY,      -- auth.users.id in Supabase
    email       text        NOT NULL UNIQUE,
    full_name   text,
    avatar_url  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE public.organization_members (
    organization_id uuid    NOT NULL REFERENCES public.organizations (id) ON DELETE CASCADE,
    profile_id  uuid        NOT NULL REFERENCES public.profiles (id) ON DELETE CASCADE,
    role        public.member_role NOT NULL DEFAULT 'viewer',
    joined_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, profile_id)
);

CREATE TABLE public.boms (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid    NOT NULL REFERENCES public.organizations (id) ON DELETE CASCADE,
    name        text        NOT NULL,
    revision    text        NOT NULL DEFAULT 'A',
    status      public.bom_status NOT NULL DEFAULT 'draft',
    line_count  integer     NOT NULL DEFAULT 0,
    created_by  uuid        REFERENCES public.profiles (id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organization_id, name, revision)
);

CREATE TABLE public.bom_line_items (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    bom_id      uuid        NOT NULL REFERENCES public.boms (id) ON DELETE CASCADE,
    line_no     integer     NOT NULL,
    designators text[]      NOT NULL DEFAULT '{}',
    mpn         text        NOT NULL,
    manufacturer text,
    quantity    integer     NOT NULL CHECK (quantity > 0),
    component_id bigint,                      -- component.id in components_v2, once matched
    UNIQUE (bom_id, line_no)
);

-- updated_at, as Supabase's moddatetime extension keeps it.
CREATE FUNCTION public.handle_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

CREATE TRIGGER organizations_updated_at BEFORE UPDATE ON public.organizations
    FOR EACH ROW EXECUTE FUNCTION public.handle_updated_at();
CREATE TRIGGER profiles_updated_at BEFORE UPDATE ON public.profiles
    FOR EACH ROW EXECUTE FUNCTION public.handle_updated_at();
CREATE TRIGGER boms_updated_at BEFORE UPDATE ON public.boms
    FOR EACH ROW EXECUTE FUNCTION public.handle_updated_at();

-- boms.line_count follows its line items. A statement-level trigger with
-- transition tables, so a COPY of thousands of lines updates each BOM once.
CREATE FUNCTION public.refresh_bom_line_count() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    UPDATE public.boms b
       SET line_count = (SELECT count(*) FROM public.bom_line_items li WHERE li.bom_id = b.id)
     WHERE b.id IN (SELECT bom_id FROM changed);
    RETURN NULL;
END;
$fn$;

CREATE TRIGGER bom_line_items_count_ins AFTER INSERT ON public.bom_line_items
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION public.refresh_bom_line_count();
CREATE TRIGGER bom_line_items_count_del AFTER DELETE ON public.bom_line_items
    REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION public.refresh_bom_line_count();

CREATE INDEX organization_members_profile_idx ON public.organization_members (profile_id);
CREATE INDEX boms_organization_idx ON public.boms (organization_id, created_at DESC);

GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO authenticated, service_role;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO authenticated, service_role;
