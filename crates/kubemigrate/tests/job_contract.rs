//! The rendered Jobs do what they claim when their containers run.
//!
//! No cluster can run here, so this test plays the kubelet's part for the parts
//! that matter to us: it takes each rendered Job's containers in order (init
//! containers first), builds their environment exactly from the rendered
//! ConfigMap and Secret (`configMapKeyRef`, `secretKeyRef`, `$(VAR)` expansion),
//! maps the image paths (`/kubemigrate`, `/kubemigrate/kubemigrate`, `/runner`,
//! `/migrations`, the image's `dir`) to this machine, and runs the commands against
//! the real PostgreSQL. If a variable name, a key, a flag or a path in the rendered
//! objects were wrong, the migrations would not run.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure the test reports"
)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Db, pg};
use k8s_openapi::api::core::v1::{Container, EnvVar};
use kubemigrate_render::{Options, Rendered, build, gather};

struct Kubelet {
    config: BTreeMap<String, String>,
    secret: BTreeMap<String, String>,
    /// Image paths and the local paths they stand for.
    paths: Vec<(String, PathBuf)>,
}

impl Kubelet {
    fn new(rendered: &Rendered, paths: Vec<(String, PathBuf)>) -> Kubelet {
        Kubelet {
            config: rendered.config_map.data.clone().unwrap_or_default(),
            secret: rendered
                .secret
                .as_ref()
                .and_then(|s| s.string_data.clone())
                .unwrap_or_default(),
            paths,
        }
    }

    fn env(&self, vars: &[EnvVar]) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for v in vars {
            let value = if let Some(from) = &v.value_from {
                if let Some(r) = &from.config_map_key_ref {
                    self.config
                        .get(&r.key)
                        .unwrap_or_else(|| panic!("ConfigMap has no key {}", r.key))
                        .clone()
                } else if let Some(r) = &from.secret_key_ref {
                    self.secret
                        .get(&r.key)
                        .unwrap_or_else(|| panic!("Secret has no key {}", r.key))
                        .clone()
                } else {
                    panic!("unsupported valueFrom in {}", v.name)
                }
            } else {
                // $(VAR) refers to a variable defined earlier in the list.
                let mut value = v.value.clone().unwrap_or_default();
                for (name, val) in &out {
                    value = value.replace(&format!("$({name})"), val);
                }
                value
            };
            out.push((v.name.clone(), value));
        }
        out
    }

    fn map_path(&self, arg: &str) -> String {
        for (image_path, local) in &self.paths {
            if arg == image_path {
                return local.display().to_string();
            }
            if let Some(rest) = arg.strip_prefix(&format!("{image_path}/")) {
                return local.join(rest).display().to_string();
            }
        }
        arg.to_string()
    }

    /// Runs one container to completion; returns its exit code and output.
    fn run(&self, c: &Container) -> (i32, String) {
        let command: Vec<String> = c
            .command
            .clone()
            .unwrap_or_default()
            .iter()
            .map(|a| self.map_path(a))
            .collect();
        let mut cmd = Command::new(&command[0]);
        cmd.args(&command[1..])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap());
        for (k, v) in self.env(c.env.as_deref().unwrap_or_default()) {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code().unwrap_or(-1), text)
    }
}

#[test]
fn rendered_jobs_migrate_when_their_containers_run() {
    let orders = Db::new();
    let invoices = Db::new();
    let audit = Db::new();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("orders-sql")).unwrap();
    std::fs::write(
        d.join("orders-sql/V1__orders.sql"),
        "CREATE TABLE orders (id int PRIMARY KEY);\n",
    )
    .unwrap();
    // The files "in the image" of the invoices target.
    std::fs::create_dir_all(d.join("image/sql")).unwrap();
    std::fs::write(
        d.join("image/sql/V1__invoices.sql"),
        "CREATE TABLE invoices (id int PRIMARY KEY);\n",
    )
    .unwrap();
    std::fs::write(d.join("pw"), format!("{}\n", pg().password())).unwrap();
    let port = pg().port();
    let plan = format!(
        "apiVersion: kubemigrate.io/v1alpha1
kind: MigrationPlan
metadata: {{name: shop}}
spec:
  targets:
    - name: orders
      database: {{host: 127.0.0.1, port: {port}, name: {orders}, user: postgres, password: {{fromEnv: TEST_PW}}}}
      sql: {{localDir: orders-sql}}
    - name: invoices
      dependsOn: [orders]
      database: {{host: localhost, port: {port}, name: {invoices}, schema: billing, sslMode: disable,
                 user: postgres, password: {{fromFile: pw}}}}
      sql: {{image: shop/invoices:1, dir: /sql}}
    - name: audit
      database: {{host: 127.0.0.1, port: {port}, name: {audit}, schema: audit_schema, user: {{fromEnv: TEST_USER}}, password: {{fromEnv: TEST_PW}}}}
      command:
        image: shop/app:1
        command: [sh, -c]
        args: ['test \"$NODE_ENV\" = production && test \"$DB_SCHEMA\" = audit_schema && psql -X -v ON_ERROR_STOP=1 -h \"$DB_HOST\" -p \"$DB_PORT\" -U \"$DB_USER\" -d \"$DB_DATABASE\" -c \"CREATE TABLE audit (id int)\"']
",
        orders = orders.name,
        invoices = invoices.name,
        audit = audit.name,
    );
    let file = d.join("plan.yaml");
    std::fs::write(&file, plan).unwrap();
    let loaded = kubemigrate_plan::load(&file).unwrap();
    let password = pg().password().to_string();
    let env = move |name: &str| match name {
        "TEST_PW" => Some(password.clone()),
        "TEST_USER" => Some("postgres".to_string()),
        _ => None,
    };
    let gathered = gather(&loaded, &env, false).unwrap();
    let rendered = build(
        &loaded,
        &gathered,
        &Options {
            run_id: "t1".into(),
            hooks: None,
            default_runner_image: "runner:test".into(),
        },
    )
    .unwrap();

    let binary = PathBuf::from(env!("CARGO_BIN_EXE_kubemigrate"));
    let copied = d.join("emptydir");
    std::fs::create_dir_all(&copied).unwrap();
    // Once install-runner exists, the target's container runs the copy it made.
    let installed = has_install_runner(&binary);
    let in_target_image = if installed {
        copied.join("kubemigrate")
    } else {
        binary.clone()
    };
    let kubelet = Kubelet::new(
        &rendered,
        vec![
            // The runner image's binary, and the emptyDir it is copied into.
            ("/kubemigrate/kubemigrate".into(), in_target_image),
            ("/kubemigrate".into(), binary.clone()),
            ("/runner".into(), copied.clone()),
            // The localDir ConfigMap mounted at /migrations, and the image's /sql.
            ("/migrations".into(), d.join("orders-sql")),
            ("/sql".into(), d.join("image/sql")),
        ],
    );
    for job in &rendered.jobs {
        let pod = job
            .job
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap();
        let containers = pod
            .init_containers
            .iter()
            .flatten()
            .chain(pod.containers.iter());
        for c in containers {
            if c.name == "install-runner" && !installed {
                continue;
            }
            let (code, out) = kubelet.run(c);
            assert_eq!(code, 0, "{}/{} failed:\n{out}", job.target, c.name);
        }
    }
    assert_eq!(orders.history(), ["V1__orders.sql|sql|true|"], "orders");
    assert_eq!(
        invoices.history(),
        ["V1__invoices.sql|sql|true|"],
        "invoices"
    );
    assert_eq!(audit.sql("SELECT count(*) FROM audit"), "0");
    assert_eq!(audit.history().len(), 1, "the command run is recorded");
    // The password went through the Secret, never the ConfigMap.
    let config = serde_json::to_string(&rendered.config_map).unwrap();
    assert!(!config.contains(pg().password()));
}

/// `install-runner` arrives with the static-runner work; until then its container
/// is skipped (the copy is what the image path mapping stands in for anyway).
fn has_install_runner(binary: &Path) -> bool {
    Command::new(binary)
        .args(["install-runner", "--help"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}
