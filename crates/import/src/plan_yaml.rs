//! The plan's YAML text, written line by line so that it keeps its comments: which
//! values are the module's defaults, and what to do about the passwords.

use crate::Diagnostic;
use crate::convert::Setting;
use crate::module::{DEFAULT_RESOURCES, RESOURCE_GROUPS, RESOURCE_NAMES, TARGETS};
use kubemigrate_render::yaml::scalar;

/// YAML text, line by line.
struct Yaml(String);

impl Yaml {
    fn line(&mut self, indent: usize, text: &str) {
        self.0.push_str(&" ".repeat(indent));
        self.0.push_str(text);
        self.0.push('\n');
    }

    /// `key: value`, with `# note` when there is one.
    fn field(&mut self, indent: usize, key: &str, value: &str, note: Option<&str>) {
        match note {
            Some(n) => self.line(indent, &format!("{key}: {value}  # {n}")),
            None => self.line(indent, &format!("{key}: {value}")),
        }
    }
}

/// The plan's YAML text; what is not carried over is added to `warnings`.
pub(crate) fn render(
    settings: &[(&'static str, Setting)],
    plan_name: &str,
    file: &str,
    warnings: &mut Vec<Diagnostic>,
) -> String {
    let get = |name: &str| settings.iter().find(|(n, _)| *n == name).map(|(_, s)| s);
    // The text of a string variable, and a note when it is the module's default.
    let text_or = |name: &str, default: &str| -> (String, Option<String>) {
        match get(name) {
            Some(Setting::Text(t)) => (scalar(t), None),
            _ => (scalar(default), Some(format!("{name}: module default"))),
        }
    };
    let flag_or = |name: &str, default: bool| -> (String, Option<String>) {
        match get(name) {
            Some(Setting::Flag(b)) => (b.to_string(), None),
            _ => (default.to_string(), Some(format!("{name}: module default"))),
        }
    };
    let mut y = Yaml(String::new());
    for line in [
        "# A kubemigrate plan made by `kubemigrate import terraform-vars` from the",
        "# variables of the Terraform migrations module. Each variable the file did not",
        "# set has the module's default, marked \"module default\". Check the plan with",
        "# `kubemigrate validate -f plan.yaml`; see its Kubernetes objects with",
        "# `kubemigrate render -f plan.yaml`.",
        "apiVersion: kubemigrate.io/v1alpha1",
        "kind: MigrationPlan",
        "metadata:",
    ] {
        y.line(0, line);
    }
    y.field(2, "name", &scalar(plan_name), None);
    let (v, n) = text_or("namespace", "default");
    y.field(2, "namespace", &v, n.as_deref());
    y.line(0, "spec:");
    let (v, n) = text_or("service_account_name", "default");
    y.field(2, "serviceAccountName", &v, n.as_deref());
    y.line(
        2,
        "# kubemigrate labels every object app.kubernetes.io/component: migrations (so",
    );
    y.line(
        2,
        "# `kubectl get jobs -l app.kubernetes.io/component=migrations` still finds the Jobs)",
    );
    y.line(
        2,
        "# and sets sidecar.istio.io/inject: \"false\" on the pods, as the module did.",
    );
    let user_labels = match get("labels") {
        Some(Setting::Labels(l)) => l.as_slice(),
        _ => &[],
    };
    let mut kept = Vec::new();
    for (k, v) in user_labels {
        if let Some(prefix) = kubemigrate_plan::validate::RESERVED_LABEL_PREFIXES
            .iter()
            .find(|p| k.name.starts_with(*p))
        {
            warnings.push(Diagnostic::at(
                file,
                k.pos,
                format!(
                    "labels: {} is not copied: kubemigrate sets the {prefix} labels itself",
                    k.name
                ),
            ));
        } else {
            kept.push((&k.name, v));
        }
    }
    if !kept.is_empty() {
        y.line(2, "labels:");
        for (k, v) in kept {
            y.field(4, &scalar(k), &scalar(v), None);
        }
    }
    y.line(
        2,
        "# runnerImage is left to its default, kubemigrate/kubemigrate:<this version>. It waits",
    );
    y.line(
        2,
        "# for each database, as the module's init container with postgres_wait_image did.",
    );
    let given = match get("migration_resources") {
        Some(Setting::Resources(r)) => r.clone(),
        _ => Default::default(),
    };
    y.line(2, "resources:");
    for (g, group) in RESOURCE_GROUPS.iter().enumerate() {
        y.line(4, &format!("{group}:"));
        for (r, resource) in RESOURCE_NAMES.iter().enumerate() {
            match &given[g][r] {
                Some(v) => y.field(6, resource, &scalar(v), None),
                None => y.field(
                    6,
                    resource,
                    DEFAULT_RESOURCES[g][r],
                    Some("migration_resources: module default"),
                ),
            }
        }
    }
    y.field(
        2,
        "backoffLimit",
        "3",
        Some("the module's Jobs: 3 attempts"),
    );
    y.field(
        2,
        "ttlSecondsAfterFinished",
        "300",
        Some("the module's Jobs are deleted 5 minutes after they finish"),
    );
    let (v, n) = text_or("migration_timeout", "10m");
    y.field(2, "timeout", &v, n.as_deref());
    let (v, n) = flag_or("wait_for_completion", true);
    y.field(2, "wait", &v, n.as_deref());
    y.line(2, "targets:");
    for target in &TARGETS {
        y.field(2, "  - name", target.name, None);
        let (v, n) = flag_or(&target.var("run"), true);
        y.field(6, "enabled", &v, n.as_deref());
        y.line(6, "database:");
        // Hosts and users are required: convert reports a missing one, so they are set.
        let required = |field: &str| match get(&target.var(field)) {
            Some(Setting::Text(t)) => scalar(t),
            _ => String::new(),
        };
        y.field(8, "host", &required("host"), None);
        let port_var = target.var("port");
        match get(&port_var) {
            Some(Setting::Port(p)) => y.field(8, "port", &p.to_string(), None),
            _ => y.field(
                8,
                "port",
                &target.port.to_string(),
                Some(&format!("{port_var}: module default")),
            ),
        }
        let (v, n) = text_or(&target.var("name"), target.database);
        y.field(8, "name", &v, n.as_deref());
        if target.prefix == "control_plane" {
            let (v, n) = text_or("control_plane_db_schema", "tenant_management");
            y.field(8, "schema", &v, n.as_deref());
        }
        y.field(8, "user", &required("user"), None);
        y.line(
            8,
            &format!(
                "# Never copied from the .tfvars: export {} (the value of",
                target.password_env
            ),
        );
        y.line(
            8,
            &format!(
                "# {}) before `kubemigrate render`, or use existingSecret.",
                target.var("password")
            ),
        );
        y.line(
            8,
            &format!("password: {{fromEnv: {}}}", target.password_env),
        );
        let (image, note) = text_or(&target.var("image"), target.image);
        if target.prefix == "control_plane" {
            y.line(6, "command:");
            y.field(8, "image", &image, note.as_deref());
            y.line(8, "command: [npm, run, migrate]");
            y.line(
                6,
                "# npm writes to its cache; the module did not make the root filesystem read-only.",
            );
            y.line(6, "securityContext:");
            y.line(8, "readOnlyRootFilesystem: false");
        } else {
            y.line(6, "sql:");
            y.field(8, "image", &image, note.as_deref());
            y.line(8, "dir: /migrations");
            y.line(
                8,
                "# psql runs every /migrations/*.sql file in name order on every run, as the",
            );
            y.line(
                8,
                "# module's Job did. engine: native gives a history table (each file runs",
            );
            y.line(8, "# once), checksums and a migration lock instead.");
            y.line(8, "engine: psql");
        }
    }
    y.0
}
