//! Every way a plan can be wrong that a user is likely to hit, and the exact
//! message each gets: file:line:column, the field path, what is wrong, and a
//! suggestion where one helps. One snapshot holds them all, so a change in any
//! message shows up in review.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is the failure the test reports"
)]

use std::fmt::Write;

use kubemigrate_plan::{PlanError, parse};

/// A valid plan with one target; each case edits it.
const GOOD: &str = "apiVersion: kubemigrate.io/v1alpha1
kind: MigrationPlan
metadata:
  name: shop
spec:
  targets:
    - name: orders
      database:
        host: db
        name: orders
        user: app
        password: {fromEnv: ORDERS_PASSWORD}
      sql:
        image: shop/orders-migrations:1.0
";

fn edit(from: &str, to: &str) -> String {
    assert!(GOOD.contains(from), "{from}");
    GOOD.replacen(from, to, 1)
}

fn cases() -> Vec<(&'static str, String)> {
    vec![
        ("empty file", String::new()),
        ("databases: an empty list", edit("      sql:", "      databases: []\n      sql:")),
        ("databases: a name listed twice", edit("      sql:", "      databases: [tenant_1, tenant_2, tenant_1]\n      sql:")),
        ("databases: two sources", edit("      sql:", "      databases:\n        list: [tenant_1]\n        query: SELECT datname FROM pg_database\n      sql:")),
        ("databases: no source", edit("      sql:", "      databases:\n        concurrency: 8\n      sql:")),
        ("databases: concurrency 0", edit("      sql:", "      databases:\n        list: [tenant_1]\n        concurrency: 0\n      sql:")),
        ("databases: more shards than databases", edit("      sql:", "      databases:\n        list: [tenant_1, tenant_2]\n        shards: 3\n      sql:")),
        ("databases: an empty name in the mapping form", edit("      sql:", "      databases:\n        list: [tenant_1, '']\n      sql:")),
        ("databases: a misspelt field", edit("      sql:", "      databases:\n        query: SELECT 1\n        onFailur: stop\n      sql:")),
        ("databases: a bad onFailure", edit("      sql:", "      databases:\n        query: SELECT 1\n        onFailure: abort\n      sql:")),
        ("databases: a bad Secret key", edit("      sql:", "      databases:\n        fromSecret: {name: tenants, key: 'a b'}\n      sql:")),
        ("databases: a bad name for the Secret of URLs", edit("      sql:", "      databases:\n        urlsFromSecret: {name: Tenant_URLs, key: urls}\n      sql:")),
        ("databases with engine psql", edit("        image: shop/orders-migrations:1.0", "        image: shop/orders-migrations:1.0\n        engine: psql\n      databases: [tenant_1]")),
        ("not YAML", "apiVersion: [kubemigrate\n".into()),
        ("tab indentation", GOOD.replace("    - name", "\t- name")),
        ("an unknown layout", edit("        image: shop/orders-migrations:1.0", "        image: shop/orders-migrations:1.0\n        layout: liquibase")),
        ("a layout with engine psql", edit("        image: shop/orders-migrations:1.0", "        image: shop/orders-migrations:1.0\n        engine: psql\n        layout: flyway")),
        ("lockRetries without lockTimeout", edit("        image: shop/orders-migrations:1.0", "        image: shop/orders-migrations:1.0\n        lockRetries: 3")),
        ("lockRetries with engine psql", edit("        image: shop/orders-migrations:1.0", "        image: shop/orders-migrations:1.0\n        engine: psql\n        lockTimeout: 5s\n        lockRetries: 3")),
        ("a lockTimeout that is not a duration", edit("        image: shop/orders-migrations:1.0", "        image: shop/orders-migrations:1.0\n        lockTimeout: soon")),
        ("tab indentation after a plain value", edit("        name: orders", "\t\tname: orders")),
        ("two documents", format!("{GOOD}---\n{GOOD}")),
        ("a Deployment, not a plan", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n".into()),
        ("wrong apiVersion", edit("kubemigrate.io/v1alpha1", "kubemigrate.io/v1")),
        ("misspelt top-level field", edit("spec:", "spce:")),
        ("snake_case field", edit("  targets:", "  backoff_limit: 3\n  targets:")),
        ("unknown field far from any", edit("  targets:", "  replicas: 3\n  targets:")),
        ("missing metadata.name", edit("  name: shop\n", "  namespace: shop\n")),
        ("uppercase plan name", edit("name: shop", "name: Shop")),
        ("underscore in target name", edit("- name: orders", "- name: orders_v2")),
        ("target name too long for a Job name", edit("- name: orders", "- name: orders-and-invoices-and-payments-and-refunds")),
        ("quoted port", edit("host: db", "host: db\n        port: \"5432\"")),
        ("port out of range", edit("host: db", "host: db\n        port: 70000")),
        ("port 0", edit("host: db", "host: db\n        port: 0")),
        ("host name longer than DNS allows", edit("host: db", &format!("host: {}", "h".repeat(300)))),
        ("bad sslMode", edit("host: db", "host: db\n        sslMode: verify_full")),
        ("bad quantity", edit("  targets:", "  resources:\n    limits: {memory: 512MB}\n  targets:")),
        ("request above limit", edit("  targets:", "  resources:\n    requests: {memory: 1Gi}\n  targets:")),
        ("bad duration", edit("  targets:", "  timeout: 10 minutes\n  targets:")),
        ("backoffLimit negative", edit("  targets:", "  backoffLimit: -1\n  targets:")),
        ("root user", edit("  targets:", "  securityContext: {runAsUser: 0}\n  targets:")),
        ("two password sources", edit("{fromEnv: ORDERS_PASSWORD}", "{fromEnv: A, fromFile: b}")),
        ("unknown password source", edit("{fromEnv: ORDERS_PASSWORD}", "{fromVault: secret/orders}")),
        ("existingSecret without key", edit("{fromEnv: ORDERS_PASSWORD}", "{existingSecret: {name: orders-db}}")),
        ("neither sql nor command", edit("      sql:\n        image: shop/orders-migrations:1.0\n", "")),
        ("both sql and command", edit("      sql:", "      command: {image: shop/app:1, command: [npm, run, migrate]}\n      sql:")),
        ("sql with image and localDir", edit("image: shop/orders-migrations:1.0", "image: shop/orders-migrations:1.0\n        localDir: ./sql")),
        ("localDir that does not exist", edit("image: shop/orders-migrations:1.0", "localDir: ./no-such-dir")),
        ("relative dir in the image", edit("image: shop/orders-migrations:1.0", "image: shop/orders-migrations:1.0\n        dir: migrations")),
        ("engine typo", edit("image: shop/orders-migrations:1.0", "image: shop/orders-migrations:1.0\n        engine: natve")),
        ("empty command", edit("      sql:\n        image: shop/orders-migrations:1.0\n", "      command: {image: shop/app:1, command: []}\n")),
        ("command env sets DB_PASSWORD", edit("      sql:\n        image: shop/orders-migrations:1.0\n", "      command:\n        image: shop/app:1\n        command: [npm, run, migrate]\n        env: [{name: DB_PASSWORD, value: x}]\n")),
        ("duplicate target", format!("{GOOD}    - name: orders\n      database: {{host: db, name: o, user: u, password: {{fromEnv: P}}}}\n      sql: {{image: x}}\n")),
        ("dependsOn unknown target, close to one", edit("      database:", "      dependsOn: [order]\n      database:")),
        ("dependsOn cycle", format!(
            "{}    - name: invoices\n      dependsOn: [orders]\n      database: {{host: db, name: i, user: u, password: {{fromEnv: P}}}}\n      sql: {{image: x}}\n",
            edit("      database:", "      dependsOn: [invoices]\n      database:")
        )),
        ("reserved label", edit("  targets:", "  labels: {app.kubernetes.io/name: shop}\n  targets:")),
        ("bad label value", edit("  targets:", "  labels: {team: platform team}\n  targets:")),
        ("duplicate key", edit("        host: db\n", "        host: db\n        host: db2\n")),
        ("a list where a mapping belongs", edit("      database:\n        host: db\n        name: orders\n        user: app\n        password: {fromEnv: ORDERS_PASSWORD}\n", "      database: [db, orders]\n")),
        ("no targets", "apiVersion: kubemigrate.io/v1alpha1\nkind: MigrationPlan\nmetadata: {name: shop}\nspec:\n  targets: []\n".into()),
        ("unquoted numeric password", edit("{fromEnv: ORDERS_PASSWORD}", "007123")),
        ("controller label", edit("  targets:", "  labels: {job-name: x}\n  targets:")),
        ("toleration Exists with a value", edit("  targets:", "  tolerations: [{key: k, operator: Exists, value: v}]\n  targets:")),
    ]
}

#[test]
fn bad_plans_get_located_messages() {
    let dir = tempfile_dir();
    let mut out = String::new();
    for (name, text) in cases() {
        let file = dir.join("plan.yaml");
        let result = parse(&text, &file);
        let msg = match result {
            Ok(_) => panic!("case {name:?} was accepted:\n{text}"),
            Err(PlanError::Invalid(d)) => d
                .iter()
                .map(|d| d.to_string().replace(&dir.display().to_string(), "<dir>"))
                .collect::<Vec<_>>()
                .join("\n"),
            Err(e) => panic!("{e}"),
        };
        for line in msg.lines() {
            assert!(
                line.starts_with("<dir>/plan.yaml:"),
                "case {name:?}: not located: {line}"
            );
        }
        writeln!(out, "## {name}\n{msg}\n").unwrap();
    }
    assert!(cases().len() >= 20);
    insta::assert_snapshot!(out);
}

#[test]
fn the_base_plan_is_valid_and_warnings_are_located() {
    let loaded = parse(GOOD, "plan.yaml".as_ref()).unwrap();
    assert!(loaded.warnings.is_empty());
    let literal = edit("{fromEnv: ORDERS_PASSWORD}", "hunter2");
    let loaded = parse(&literal, "plan.yaml".as_ref()).unwrap();
    let w: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        w,
        [
            "plan.yaml:12:19: warning: spec.targets[0].database.password: the password is written in the plan; prefer fromEnv, fromFile or existingSecret"
        ]
    );
    // The warning names the field, never the value.
    assert!(!w[0].contains("hunter2"));
    // An unquoted number is refused without being repeated.
    let Err(PlanError::Invalid(d)) = parse(
        &edit("{fromEnv: ORDERS_PASSWORD}", "-4711"),
        "p.yaml".as_ref(),
    ) else {
        panic!("accepted");
    };
    assert!(!d[0].to_string().contains("4711"), "{}", d[0]);
}

fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("kubemigrate-plan-tests-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}
