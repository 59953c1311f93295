//! The Terraform migrations module: its variables, their types and defaults, and
//! the three Jobs it runs.

/// The type of a module variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ty {
    /// `string`; numbers and bools convert, as in Terraform.
    Text,
    /// `number`, a TCP port; a string holding a number converts.
    Port,
    /// `bool`; "true" and "false" convert.
    Flag,
    /// `map(string)`.
    Labels,
    /// `migration_resources`: `{requests = {cpu, memory}, limits = {cpu, memory}}`.
    Resources,
    /// A password: a string, never copied and never shown.
    Secret,
}

/// The module's variables (its README's Inputs table, and `migration_resources`).
pub(crate) const VARIABLES: &[(&str, Ty)] = &[
    ("namespace", Ty::Text),
    ("service_account_name", Ty::Text),
    ("run_control_plane_migrations", Ty::Flag),
    ("run_supabase_migrations", Ty::Flag),
    ("run_components_v2_migrations", Ty::Flag),
    ("control_plane_db_host", Ty::Text),
    ("control_plane_db_port", Ty::Port),
    ("control_plane_db_name", Ty::Text),
    ("control_plane_db_schema", Ty::Text),
    ("control_plane_db_user", Ty::Text),
    ("control_plane_db_password", Ty::Secret),
    ("supabase_db_host", Ty::Text),
    ("supabase_db_port", Ty::Port),
    ("supabase_db_name", Ty::Text),
    ("supabase_db_user", Ty::Text),
    ("supabase_db_password", Ty::Secret),
    ("components_v2_db_host", Ty::Text),
    ("components_v2_db_port", Ty::Port),
    ("components_v2_db_name", Ty::Text),
    ("components_v2_db_user", Ty::Text),
    ("components_v2_db_password", Ty::Secret),
    ("control_plane_migration_image", Ty::Text),
    ("supabase_migration_image", Ty::Text),
    ("components_v2_migration_image", Ty::Text),
    ("postgres_wait_image", Ty::Text),
    ("migration_timeout", Ty::Text),
    ("wait_for_completion", Ty::Flag),
    ("labels", Ty::Labels),
    ("migration_resources", Ty::Resources),
];

/// One of the module's three Jobs, and the plan target it becomes.
pub(crate) struct Target {
    /// The target's name; the Job is `<name>-migrations-<suffix>`, as the module's.
    pub(crate) name: &'static str,
    /// The prefix of its variables: `control_plane` in `control_plane_db_host`.
    pub(crate) prefix: &'static str,
    /// The environment variable the plan reads its password from.
    pub(crate) password_env: &'static str,
    /// The module's default port.
    pub(crate) port: u16,
    /// The module's default database name.
    pub(crate) database: &'static str,
    /// The module's default image.
    pub(crate) image: &'static str,
}

impl Target {
    /// The module variable for one of the target's fields: `host` → `control_plane_db_host`;
    /// `run` and `image` name the run flag and the image.
    pub(crate) fn var(&self, field: &str) -> String {
        match field {
            "run" => format!("run_{}_migrations", self.prefix),
            "image" => format!("{}_migration_image", self.prefix),
            other => format!("{}_db_{other}", self.prefix),
        }
    }
}

pub(crate) const TARGETS: [Target; 3] = [
    Target {
        name: "control-plane",
        prefix: "control_plane",
        password_env: "CONTROL_PLANE_DB_PASSWORD",
        port: 5432,
        database: "arc_saas",
        image: "ananta/tenant-management-service:latest",
    },
    Target {
        name: "supabase",
        prefix: "supabase",
        password_env: "SUPABASE_DB_PASSWORD",
        port: 27432,
        database: "postgres",
        image: "postgres:15-alpine",
    },
    Target {
        name: "components-v2",
        prefix: "components_v2",
        password_env: "COMPONENTS_V2_DB_PASSWORD",
        port: 27010,
        database: "components_v2",
        image: "postgres:15-alpine",
    },
];

/// The module's default resources: `[requests, limits]` × `[cpu, memory]`.
pub(crate) const DEFAULT_RESOURCES: [[&str; 2]; 2] = [["100m", "128Mi"], ["500m", "512Mi"]];
pub(crate) const RESOURCE_GROUPS: [&str; 2] = ["requests", "limits"];
pub(crate) const RESOURCE_NAMES: [&str; 2] = ["cpu", "memory"];
