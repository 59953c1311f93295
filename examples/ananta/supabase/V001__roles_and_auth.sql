-- The roles and auth helpers the policies of the later files use.
--
-- A Supabase database has them already: the roles anon, authenticated and
-- service_role, and auth.uid(), which reads the user id from the request's JWT
-- claims (PostgREST sets request.jwt.claims for each request). A plain
-- PostgreSQL, such as `kubemigrate demo`'s throwaway one, has none of them, so
-- this file creates each one only when it is missing and never replaces
-- Supabase's own.

DO $do$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['anon', 'authenticated', 'service_role'] LOOP
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN NOINHERIT', r);
        END IF;
    END LOOP;
END
$do$;

-- service_role bypasses row-level security, as in Supabase. Only a superuser
-- may grant BYPASSRLS, so this is skipped where the migration user is not one.
DO $do$
BEGIN
    IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user)
       AND NOT (SELECT rolbypassrls FROM pg_catalog.pg_roles WHERE rolname = 'service_role') THEN
        ALTER ROLE service_role BYPASSRLS;
    END IF;
END
$do$;

CREATE SCHEMA IF NOT EXISTS auth;

DO $do$
BEGIN
    IF to_regprocedure('auth.uid()') IS NULL THEN
        EXECUTE $fn$
            CREATE FUNCTION auth.uid() RETURNS uuid
            LANGUAGE sql STABLE AS $body$
                SELECT nullif(
                    coalesce(
                        current_setting('request.jwt.claim.sub', true),
                        current_setting('request.jwt.claims', true)::jsonb ->> 'sub'
                    ), ''
                )::uuid
            $body$
        $fn$;
    END IF;
    IF to_regprocedure('auth.role()') IS NULL THEN
        EXECUTE $fn$
            CREATE FUNCTION auth.role() RETURNS text
            LANGUAGE sql STABLE AS $body$
                SELECT nullif(
                    coalesce(
                        current_setting('request.jwt.claim.role', true),
                        current_setting('request.jwt.claims', true)::jsonb ->> 'role'
                    ), ''
                )::text
            $body$
        $fn$;
    END IF;
END
$do$;

GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role;
GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;
