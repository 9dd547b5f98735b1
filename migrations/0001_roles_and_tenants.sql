-- Roles, tenants, and the row-level security pattern every tenant table
-- follows. This migration runs as the owner role (DATABASE_ADMIN_URL), which
-- owns every table. The roles created here own nothing, are not superuser,
-- have no BYPASSRLS, and are not members of the owner, so they can neither
-- disable RLS, alter policies, nor SET ROLE to the owner.
--
--   chartstream_app        API and workers; sees one tenant per transaction
--   chartstream_analytics  read-only analytics; also tenant-scoped by RLS
DO $$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'chartstream_app') THEN
		CREATE ROLE chartstream_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS NOREPLICATION;
	END IF;
	IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'chartstream_analytics') THEN
		CREATE ROLE chartstream_analytics LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS NOREPLICATION;
	END IF;
END
$$;

DO $$
BEGIN
	EXECUTE format('GRANT CONNECT ON DATABASE %I TO chartstream_app, chartstream_analytics', current_database());
END
$$;
GRANT USAGE ON SCHEMA public TO chartstream_app, chartstream_analytics;

-- chartstream_enable_tenant_rls applies the tenant isolation pattern to a
-- table with a tenant_id column: RLS enabled and FORCED (so even the owner is
-- subject to it), and one policy for USING and WITH CHECK on the
-- transaction-local setting app.tenant_id. With no tenant set the setting is
-- empty, nullif turns it into NULL, and the comparison is never true: reads
-- see zero rows and writes fail.
CREATE FUNCTION chartstream_enable_tenant_rls(tbl regclass) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tbl);
	EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', tbl);
	EXECUTE format($p$CREATE POLICY tenant_isolation ON %s
		USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
		WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)$p$, tbl);
END
$$;
REVOKE ALL ON FUNCTION chartstream_enable_tenant_rls(regclass) FROM PUBLIC;

CREATE TABLE tenants (
	id         uuid PRIMARY KEY,
	slug       text NOT NULL UNIQUE CONSTRAINT tenants_slug_format CHECK (slug ~ '^[a-z0-9][a-z0-9-]{1,62}$'),
	name       text NOT NULL CONSTRAINT tenants_name_length CHECK (length(name) BETWEEN 1 AND 200),
	tier       text NOT NULL CONSTRAINT tenants_tier CHECK (tier IN ('standard', 'premium', 'enterprise')),
	status     text NOT NULL DEFAULT 'active' CONSTRAINT tenants_status CHECK (status IN ('active', 'suspended')),
	created_at timestamptz NOT NULL DEFAULT now()
);

-- A tenant sees only its own row (the API checks that its tenant is
-- active). Only the owner administers tenants, through its own policy.
ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_self ON tenants
	USING (id = nullif(current_setting('app.tenant_id', true), '')::uuid);
DO $$
BEGIN
	EXECUTE format('CREATE POLICY tenants_admin ON tenants TO %I USING (true) WITH CHECK (true)', current_user);
END
$$;
GRANT SELECT ON tenants TO chartstream_app, chartstream_analytics;

-- Per-tenant settings (for example rate-limit overrides), the first table to
-- follow the tenant pattern.
CREATE TABLE tenant_settings (
	tenant_id  uuid NOT NULL REFERENCES tenants (id),
	name       text NOT NULL CONSTRAINT tenant_settings_name_format CHECK (name ~ '^[a-z][a-z0-9_.]{0,62}$'),
	value      jsonb NOT NULL,
	updated_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (tenant_id, name)
);
SELECT chartstream_enable_tenant_rls('tenant_settings');
GRANT SELECT, INSERT, UPDATE, DELETE ON tenant_settings TO chartstream_app;

---- create above / drop below ----

DROP TABLE tenant_settings;
DROP TABLE tenants;
DROP FUNCTION chartstream_enable_tenant_rls(regclass);
