-- Row-level security: a signed-in user sees and changes the rows of the
-- organizations they belong to, and only owners and admins manage members.
-- anon (no JWT) sees nothing: it has no grants and no policy.

-- SECURITY DEFINER, so the policies can read organization_members without
-- going through its own policy (which would recurse).
CREATE FUNCTION public.is_org_member(org uuid, roles public.member_role[] DEFAULT NULL)
RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = public, pg_temp
AS $fn$
    SELECT EXISTS (
        SELECT 1
          FROM public.organization_members m
         WHERE m.organization_id = org
           AND m.profile_id = auth.uid()
           AND (roles IS NULL OR m.role = ANY (roles))
    );
$fn$;

REVOKE EXECUTE ON FUNCTION public.is_org_member(uuid, public.member_role[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.is_org_member(uuid, public.member_role[]) TO authenticated, service_role;

ALTER TABLE public.organizations        ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.profiles             ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.organization_members ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.boms                 ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.bom_line_items       ENABLE ROW LEVEL SECURITY;

CREATE POLICY "members read their organizations" ON public.organizations
    FOR SELECT TO authenticated
    USING (public.is_org_member(id));

CREATE POLICY "users read and edit their own profile" ON public.profiles
    FOR ALL TO authenticated
    USING (id = auth.uid())
    WITH CHECK (id = auth.uid());

CREATE POLICY "members see who is in their organizations" ON public.organization_members
    FOR SELECT TO authenticated
    USING (public.is_org_member(organization_id));

CREATE POLICY "owners and admins manage members" ON public.organization_members
    FOR ALL TO authenticated
    USING (public.is_org_member(organization_id, '{owner,admin}'))
    WITH CHECK (public.is_org_member(organization_id, '{owner,admin}'));

CREATE POLICY "members read BOMs" ON public.boms
    FOR SELECT TO authenticated
    USING (public.is_org_member(organization_id));

CREATE POLICY "engineers write BOMs" ON public.boms
    FOR ALL TO authenticated
    USING (public.is_org_member(organization_id, '{owner,admin,engineer}'))
    WITH CHECK (public.is_org_member(organization_id, '{owner,admin,engineer}'));

CREATE POLICY "line items follow their BOM" ON public.bom_line_items
    FOR ALL TO authenticated
    USING (EXISTS (SELECT 1 FROM public.boms b WHERE b.id = bom_id))
    WITH CHECK (EXISTS (
        SELECT 1 FROM public.boms b
         WHERE b.id = bom_id
           AND public.is_org_member(b.organization_id, '{owner,admin,engineer}')
    ));
