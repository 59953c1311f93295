# The module README's basic example, as a .tfvars file: the arguments of the
# `module "migrations"` block, with literal values where it had var.* references.
# kubemigrate import terraform-vars examples/terraform/basic.tfvars > plan.yaml

namespace = "ananta-platform"

# Control Plane database
control_plane_db_host     = "postgres-service"
control_plane_db_port     = 5432
control_plane_db_name     = "arc_saas"
control_plane_db_user     = "postgres"
control_plane_db_password = "example-control-plane-password"

# Supabase database
supabase_db_host     = "app-plane-supabase-db"
supabase_db_port     = 27432
supabase_db_name     = "postgres"
supabase_db_user     = "postgres"
supabase_db_password = "example-supabase-password"

# Components-V2 database
components_v2_db_host     = "app-plane-components-v2-postgres"
components_v2_db_port     = 27010
components_v2_db_name     = "components_v2"
components_v2_db_user     = "postgres"
components_v2_db_password = "example-components-v2-password"

# Migration images
control_plane_migration_image = "ananta/tenant-management-service:1.0.0"
supabase_migration_image      = "ananta/supabase-migrations:1.0.0"
components_v2_migration_image = "ananta/components-v2-migrations:1.0.0"
