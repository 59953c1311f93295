//! Rendered objects for several plans: snapshots of the YAML, the fields the Pod
//! Security Standard "restricted" asks for, where secrets may appear, and
//! validation of every object against the official Kubernetes JSON schemas for the
//! oldest and newest supported versions (1.29 and 1.37, by `kubernetes-validate
//! --strict`, installed by scripts/install-kubernetes-validate).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure the test reports"
)]

use std::path::{Path, PathBuf};
use std::process::Command;

use kubemigrate_plan::{LoadedPlan, parse};
use kubemigrate_render::{Hooks, Options, Rendered, build, gather};
use serde_json::Value;

/// The oldest and newest Kubernetes versions rendered objects must be valid for.
const VERSIONS: &[&str] = &["1.29.0", "1.37.0"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn env(name: &str) -> Option<String> {
    Some(format!("secret-value-of-{name}"))
}

fn render_plan(loaded: &LoadedPlan, hooks: Option<Hooks>, redact: bool) -> Rendered {
    let gathered = gather(loaded, &env, redact).unwrap();
    build(
        loaded,
        &gathered,
        &Options {
            run_id: "r1".into(),
            hooks,
            default_runner_image: "kubemigrate/kubemigrate:test".into(),
        },
    )
    .unwrap()
}

fn ananta() -> LoadedPlan {
    kubemigrate_plan::load(&repo().join("examples/ananta/plan.yaml")).unwrap()
}

/// A plan using the rest of the format: psql engine, existing Secrets, scheduling
/// constraints, pull secrets, annotations, TLS, per-target overrides.
const EVERYTHING: &str = include_str!("fixtures/everything.yaml");

fn everything() -> LoadedPlan {
    parse(EVERYTHING, "shop.yaml".as_ref()).unwrap()
}

/// Fan-out targets: a list, a query, a Secret's key.
const TENANTS: &str = include_str!("fixtures/tenants.yaml");

fn tenants() -> LoadedPlan {
    parse(TENANTS, "saas.yaml".as_ref()).unwrap()
}

fn snapshot_name(name: &str) -> String {
    name.replace(' ', "_")
}

#[test]
fn snapshots_of_rendered_plans() {
    let cases: Vec<(&str, LoadedPlan, Option<Hooks>, bool)> = vec![
        ("ananta", ananta(), None, false),
        ("ananta redacted", ananta(), None, true),
        ("everything", everything(), None, false),
        ("tenants", tenants(), None, false),
        ("ananta helm hooks", ananta(), Some(Hooks::Helm), true),
        ("ananta argocd hooks", ananta(), Some(Hooks::ArgoCd), true),
    ];
    for (name, loaded, hooks, redact) in cases {
        let yaml = render_plan(&loaded, hooks, redact).to_yaml();
        insta::assert_snapshot!(snapshot_name(name), yaml);
    }
}

fn jobs(r: &Rendered) -> Vec<Value> {
    r.jobs
        .iter()
        .map(|j| serde_json::to_value(&j.job).unwrap())
        .collect()
}

#[test]
fn every_pod_passes_the_restricted_profile() {
    for loaded in [ananta(), everything(), tenants()] {
        let rendered = render_plan(&loaded, None, false);
        for job in jobs(&rendered) {
            let name = job["metadata"]["name"].as_str().unwrap().to_string();
            let pod = &job["spec"]["template"]["spec"];
            assert_eq!(pod["automountServiceAccountToken"], false, "{name}");
            assert_eq!(pod["restartPolicy"], "Never", "{name}");
            let psc = &pod["securityContext"];
            assert_eq!(psc["runAsNonRoot"], true, "{name}");
            assert!(psc["runAsUser"].as_i64().unwrap() > 0, "{name}");
            assert_eq!(psc["seccompProfile"]["type"], "RuntimeDefault", "{name}");
            for key in ["hostNetwork", "hostPID", "hostIPC"] {
                assert!(pod.get(key).is_none(), "{name}: {key}");
            }
            let volumes = pod["volumes"].as_array().unwrap();
            assert!(
                volumes.iter().all(|v| v.get("hostPath").is_none()),
                "{name}"
            );
            let containers = pod["initContainers"]
                .as_array()
                .unwrap()
                .iter()
                .chain(pod["containers"].as_array().unwrap());
            for c in containers {
                let cname = c["name"].as_str().unwrap();
                let sc = &c["securityContext"];
                assert_eq!(sc["allowPrivilegeEscalation"], false, "{name}/{cname}");
                assert_eq!(
                    sc["capabilities"]["drop"],
                    serde_json::json!(["ALL"]),
                    "{name}/{cname}"
                );
                assert!(sc["capabilities"].get("add").is_none(), "{name}/{cname}");
                assert_eq!(sc["runAsNonRoot"], true, "{name}/{cname}");
                assert_eq!(
                    sc["seccompProfile"]["type"], "RuntimeDefault",
                    "{name}/{cname}"
                );
                assert!(sc.get("privileged").is_none(), "{name}/{cname}");
                let mounts = c["volumeMounts"].as_array().unwrap();
                assert!(
                    mounts.iter().any(|m| m["mountPath"] == "/tmp"),
                    "{name}/{cname} has no writable /tmp"
                );
                // Only a target's own container may opt out of a read-only root.
                let read_only = sc["readOnlyRootFilesystem"].as_bool().unwrap();
                if cname != "run-migrations" || !name.starts_with("control-plane") {
                    assert!(read_only, "{name}/{cname}");
                } else {
                    assert!(!read_only, "the control plane's override was lost");
                }
                assert!(
                    c["resources"]["limits"]["memory"].is_string(),
                    "{name}/{cname}"
                );
            }
        }
    }
}

#[test]
fn jobs_carry_the_module_contract() {
    let rendered = render_plan(&everything(), None, false);
    let jobs = jobs(&rendered);
    assert_eq!(jobs.len(), 2, "the disabled target has no Job");
    let orders = &jobs[1];
    assert_eq!(orders["metadata"]["name"], "orders-migrations-r1");
    let spec = &orders["spec"];
    assert_eq!(spec["activeDeadlineSeconds"], 5400);
    assert_eq!(spec["backoffLimit"], 1);
    assert_eq!(spec["ttlSecondsAfterFinished"], 3600);
    assert_eq!(spec["podReplacementPolicy"], "Failed");
    let template = &spec["template"];
    assert_eq!(
        template["metadata"]["annotations"]["sidecar.istio.io/inject"], "false",
        "Istio reads the opt-out on the pod template"
    );
    assert!(
        orders["metadata"]
            .get("annotations")
            .and_then(|a| a.get("sidecar.istio.io/inject"))
            .is_none()
    );
    let main = &template["spec"]["containers"][0];
    assert_eq!(
        main["command"],
        serde_json::json!([
            "/kubemigrate/kubemigrate",
            "exec",
            "--lock",
            "--",
            "node",
            "dist/migrate.js",
            "--verbose"
        ])
    );
    let env: Vec<(String, Value)> = main["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap().to_string(), e.clone()))
        .collect();
    let names: Vec<&str> = env.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "DB_HOST",
            "DB_PORT",
            "DB_DATABASE",
            "DB_SCHEMA",
            "DB_USER",
            "DB_PASSWORD",
            "NODE_ENV",
            "LOG_LEVEL"
        ]
    );
    assert_eq!(env[6].1["value"], "staging", "the plan's NODE_ENV wins");
    assert_eq!(
        env[0].1["valueFrom"]["configMapKeyRef"],
        serde_json::json!({"name": "shop-migration-config", "key": "ORDERS_DB_HOST"})
    );
    assert_eq!(
        env[5].1["valueFrom"]["secretKeyRef"],
        serde_json::json!({"name": "shop-migration-db-credentials", "key": "ORDERS_DB_PASSWORD"})
    );
    // Existing Secrets are referenced, not copied.
    let legacy_env = &jobs[0]["spec"]["template"]["spec"]["containers"][0]["env"];
    let user = legacy_env
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "DB_USER")
        .unwrap();
    assert_eq!(
        user["valueFrom"]["secretKeyRef"],
        serde_json::json!({"name": "legacy-db", "key": "username"})
    );
    // The command target's failure policy does not read the application's exit
    // codes as kubemigrate's.
    let rules = spec["podFailurePolicy"]["rules"].as_array().unwrap();
    assert!(
        !rules
            .iter()
            .any(|r| r["onExitCodes"]["containerName"] == "run-migrations")
    );
    let legacy_rules = jobs[0]["spec"]["podFailurePolicy"]["rules"]
        .as_array()
        .unwrap();
    assert!(
        legacy_rules
            .iter()
            .any(|r| r["action"] == "Ignore"
                && r["onPodConditions"][0]["type"] == "DisruptionTarget")
    );
}

#[test]
fn native_sql_jobs_fail_at_once_on_needs_a_person_codes() {
    let rendered = render_plan(&ananta(), None, false);
    let jobs = jobs(&rendered);
    let supabase = jobs
        .iter()
        .find(|j| j["metadata"]["name"] == "supabase-migrations-r1")
        .unwrap();
    let rules = supabase["spec"]["podFailurePolicy"]["rules"]
        .as_array()
        .unwrap();
    let fail = rules
        .iter()
        .find(|r| r["onExitCodes"]["containerName"] == "run-migrations")
        .unwrap();
    assert_eq!(fail["action"], "FailJob");
    assert_eq!(fail["onExitCodes"]["values"], serde_json::json!([2, 4]));
    let pod = &supabase["spec"]["template"]["spec"];
    let init: Vec<&str> = pod["initContainers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(init, ["wait-for-postgres", "install-runner"]);
    assert_eq!(
        pod["initContainers"][0]["command"],
        serde_json::json!(["/kubemigrate", "wait-for-db", "--timeout", "300s"])
    );
}

#[test]
fn timeouts_and_retries_reach_the_runner_and_psql() {
    let text = std::fs::read_to_string(repo().join("examples/ananta/plan.yaml"))
        .unwrap()
        .replace(
            "        image: ananta/supabase-migrations:1.0.0\n",
            "        image: ananta/supabase-migrations:1.0.0\n        lockTimeout: 5s\n        statementTimeout: 90s\n        lockRetries: 3\n",
        );
    let loaded = parse(&text, &repo().join("examples/ananta/plan.yaml")).unwrap();
    let rendered = render_plan(&loaded, None, false);
    let all = jobs(&rendered);
    let supabase = all
        .iter()
        .find(|j| j["metadata"]["name"] == "supabase-migrations-r1")
        .unwrap();
    assert_eq!(
        supabase["spec"]["template"]["spec"]["containers"][0]["command"],
        serde_json::json!([
            "/kubemigrate/kubemigrate",
            "sql",
            "migrate",
            "--dir",
            "/migrations",
            "--statement-lock-timeout",
            "5000ms",
            "--statement-timeout",
            "90000ms",
            "--lock-retries",
            "3"
        ])
    );
    // psql gets the timeouts as server options.
    let rendered = render_plan(&everything(), None, false);
    let legacy = jobs(&rendered)
        .into_iter()
        .find(|j| j["metadata"]["name"] == "legacy-migrations-r1")
        .unwrap();
    let env = legacy["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .clone();
    let options = env.iter().find(|e| e["name"] == "PGOPTIONS").unwrap();
    assert_eq!(
        options["value"],
        "-c lock_timeout=5000 -c statement_timeout=600000"
    );
}

#[test]
fn the_layout_reaches_the_runner() {
    let text = std::fs::read_to_string(repo().join("examples/ananta/plan.yaml"))
        .unwrap()
        .replace(
            "        image: ananta/supabase-migrations:1.0.0\n",
            "        image: ananta/supabase-migrations:1.0.0\n        layout: supabase\n",
        );
    let loaded = parse(&text, &repo().join("examples/ananta/plan.yaml")).unwrap();
    let rendered = render_plan(&loaded, None, false);
    let all = jobs(&rendered);
    let supabase = all
        .iter()
        .find(|j| j["metadata"]["name"] == "supabase-migrations-r1")
        .unwrap();
    assert_eq!(
        supabase["spec"]["template"]["spec"]["containers"][0]["command"],
        serde_json::json!([
            "/kubemigrate/kubemigrate",
            "sql",
            "migrate",
            "--dir",
            "/migrations",
            "--layout",
            "supabase"
        ])
    );
}

#[test]
fn secrets_appear_only_in_the_secret() {
    for loaded in [ananta(), everything(), tenants()] {
        let rendered = render_plan(&loaded, None, false);
        let secret = serde_json::to_string(&rendered.secret).unwrap();
        assert!(secret.contains("secret-value-of-"), "{secret}");
        let mut others = serde_json::to_string(&rendered.config_map).unwrap();
        for o in rendered.sql_config_maps.iter() {
            others.push_str(&serde_json::to_string(o).unwrap());
        }
        for j in &rendered.jobs {
            others.push_str(&serde_json::to_string(&j.job).unwrap());
        }
        assert!(!others.contains("secret-value-of-"));
        let redacted = render_plan(&loaded, None, true).to_yaml();
        assert!(!redacted.contains("secret-value-of-"));
    }
    // The disabled target's credential is never read.
    let rendered = render_plan(&everything(), None, false);
    assert!(
        !serde_json::to_string(&rendered.secret)
            .unwrap()
            .contains("NEVER_READ")
    );
}

#[test]
fn unset_variables_and_oversized_dirs_are_located_errors() {
    let loaded = ananta();
    let errors = gather(&loaded, &|_| None, false).unwrap_err();
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(text.len(), 3, "{text:?}");
    assert!(
        text[0].ends_with(
            "plan.yaml:34:29: spec.targets[0].database.password.fromEnv: the environment variable CONTROL_PLANE_DB_PASSWORD is not set"
        ),
        "{}",
        text[0]
    );

    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sql")).unwrap();
    let big = "-- filler\n".repeat(60_000);
    std::fs::write(dir.path().join("sql/V1__a.sql"), &big).unwrap();
    std::fs::write(dir.path().join("sql/V2__b.sql"), &big).unwrap();
    let plan = "apiVersion: kubemigrate.io/v1alpha1\nkind: MigrationPlan\nmetadata: {name: x}\nspec:\n  targets:\n    - name: a\n      database: {host: db, name: a, user: u, password: {fromEnv: P}}\n      sql: {localDir: sql}\n";
    let file = dir.path().join("plan.yaml");
    std::fs::write(&file, plan).unwrap();
    let loaded = kubemigrate_plan::load(&file).unwrap();
    let errors = gather(&loaded, &env, false).unwrap_err();
    assert_eq!(errors.len(), 1);
    let msg = errors[0].to_string();
    assert!(
        msg.contains("plan.yaml:8:23: spec.targets[0].sql.localDir:"),
        "{msg}"
    );
    assert!(msg.contains("holds 1200018 bytes in 2 files"), "{msg}");
}

#[test]
fn local_dirs_keep_subdirectories_and_binary_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("sql/lib")).unwrap();
    std::fs::write(
        dir.path().join("sql/V1__init.sql"),
        "\\ir lib/functions.sql\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("sql/lib/functions.sql"), "SELECT 1;\n").unwrap();
    std::fs::write(dir.path().join("sql/data.bin"), [0xff, 0x00, 0xfe]).unwrap();
    std::fs::write(dir.path().join("sql/.hidden.sql"), "nope").unwrap();
    let plan = "apiVersion: kubemigrate.io/v1alpha1\nkind: MigrationPlan\nmetadata: {name: x}\nspec:\n  targets:\n    - name: a\n      database: {host: db, name: a, user: u, password: {fromEnv: P}}\n      sql: {localDir: sql}\n";
    let file = dir.path().join("plan.yaml");
    std::fs::write(&file, plan).unwrap();
    let loaded = kubemigrate_plan::load(&file).unwrap();
    let rendered = render_plan(&loaded, None, false);
    let cm = serde_json::to_value(&rendered.sql_config_maps[0]).unwrap();
    assert_eq!(cm["metadata"]["name"], "x-a-sql");
    assert_eq!(cm["data"]["lib_functions.sql"], "SELECT 1;\n");
    assert_eq!(cm["binaryData"]["data.bin"], "/wD+");
    assert!(cm["data"].get(".hidden.sql").is_none());
    let job = serde_json::to_value(&rendered.jobs[0].job).unwrap();
    let volume = job["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "migrations")
        .unwrap()
        .clone();
    assert!(
        volume["configMap"]["items"].as_array().unwrap().contains(
            &serde_json::json!({"key": "lib_functions.sql", "path": "lib/functions.sql"})
        )
    );
}

fn kubernetes_validate() -> PathBuf {
    if let Some(p) = std::env::var_os("KUBERNETES_VALIDATE") {
        return p.into();
    }
    let p = repo().join("target/tools/venv/bin/kubernetes-validate");
    assert!(
        p.exists(),
        "kubernetes-validate is not installed: run `bash scripts/install-kubernetes-validate` \
         (scripts/test does) or set KUBERNETES_VALIDATE"
    );
    p
}

#[test]
fn every_rendered_object_is_valid_for_the_oldest_and_newest_kubernetes() {
    let tool = kubernetes_validate();
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (name, loaded, hooks) in [
        ("ananta", ananta(), None),
        ("everything", everything(), None),
        ("tenants", tenants(), None),
        ("helm", ananta(), Some(Hooks::Helm)),
        ("argocd", everything(), Some(Hooks::ArgoCd)),
    ] {
        let path = dir.path().join(format!("{name}.yaml"));
        std::fs::write(&path, render_plan(&loaded, hooks, false).to_yaml()).unwrap();
        files.push(path);
    }
    // The Role and RoleBinding of `render --rbac`.
    let (role, binding) = kubemigrate_render::rbac(&ananta().plan, "ci-deployer");
    let rbac = kubemigrate_render::yaml::to_yaml_stream(&[
        serde_json::to_value(role).unwrap(),
        serde_json::to_value(binding).unwrap(),
    ]);
    let path = dir.path().join("rbac.yaml");
    std::fs::write(&path, rbac).unwrap();
    files.push(path);
    for version in VERSIONS {
        let out = Command::new(&tool)
            .args(["--strict", "-k", version])
            .args(&files)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "Kubernetes {version}:\n{text}");
        // 6 objects for ananta twice, 4 for the other plan twice (no Secret? it has one).
        let passed = text.matches(" passed for resource ").count();
        assert!(
            passed >= 18,
            "only {passed} objects checked for {version}:\n{text}"
        );
    }
}

#[test]
fn a_fan_out_target_is_an_indexed_job_whose_pods_run_their_shard() {
    let rendered = render_plan(&tenants(), None, false);
    let jobs = jobs(&rendered);
    let spec = |i: usize| &jobs[i]["spec"];
    // A list: one index per database, the plan's concurrency as parallelism (at
    // most the indexes), retries per index, and no Job-wide backoffLimit.
    assert_eq!(spec(0)["completionMode"], "Indexed");
    assert_eq!(spec(0)["completions"], 3);
    assert_eq!(spec(0)["parallelism"], 3);
    assert_eq!(spec(0)["backoffLimitPerIndex"], 2);
    assert!(spec(0).get("backoffLimit").is_none());
    assert!(spec(0).get("maxFailedIndexes").is_none());
    // A final runner code fails its index only.
    let rules = spec(0)["podFailurePolicy"]["rules"].as_array().unwrap();
    let runner = rules
        .iter()
        .find(|r| r["onExitCodes"]["containerName"] == "run-migrations")
        .unwrap();
    assert_eq!(runner["action"], "FailIndex");
    let main = &spec(0)["template"]["spec"]["containers"][0];
    let command: Vec<&str> = main["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(
        command[command.len() - 6..],
        [
            "--shards",
            "3",
            "--concurrency",
            "4",
            "--on-failure",
            "continue"
        ]
    );
    let env = main["env"].as_array().unwrap();
    let databases = env
        .iter()
        .find(|e| e["name"] == "KUBEMIGRATE_DATABASES")
        .unwrap();
    let key = databases["valueFrom"]["configMapKeyRef"]["key"]
        .as_str()
        .unwrap();
    assert_eq!(
        rendered.config_map.data.as_ref().unwrap()[key],
        "tenant_1\ntenant_2\ntenant_3"
    );
    // Only the runner reads the names; the init containers do not get them.
    let init = &spec(0)["template"]["spec"]["initContainers"][0];
    assert!(
        init["env"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["name"] != "KUBEMIGRATE_DATABASES"),
        "{init}"
    );
    // A query: `shards` indexes, re-running the query in each pod; stop fails
    // the Job at the first failed index.
    assert_eq!(spec(1)["completions"], 16);
    assert_eq!(spec(1)["parallelism"], 8);
    assert_eq!(spec(1)["maxFailedIndexes"], 0);
    let env = spec(1)["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap();
    assert!(env.iter().any(|e| {
        e["name"] == "KUBEMIGRATE_DATABASE_QUERY"
            && e["value"]
                .as_str()
                .unwrap()
                .starts_with("SELECT datname FROM pg_database")
    }));
    // A Secret's key: read by the pods, never copied into the plan's objects.
    assert_eq!(spec(2)["completions"], 2);
    let env = spec(2)["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap();
    let from = env
        .iter()
        .find(|e| e["name"] == "KUBEMIGRATE_DATABASES")
        .unwrap();
    assert_eq!(
        from["valueFrom"]["secretKeyRef"],
        serde_json::json!({"name": "tenant-list", "key": "names"})
    );
    // A command target: exec's flags before the `--` that starts the command.
    assert_eq!(spec(3)["completionMode"], "Indexed");
    assert_eq!(spec(3)["completions"], 2);
    let command: Vec<&str> = spec(3)["template"]["spec"]["containers"][0]["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(
        command[1..],
        [
            "exec",
            "--lock",
            "--shards",
            "2",
            "--concurrency",
            "4",
            "--on-failure",
            "continue",
            "--",
            "npm",
            "run",
            "migrate"
        ]
    );
    // URLs with their own credentials: read by the runner from the user's Secret.
    let env = spec(4)["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap();
    let urls = env
        .iter()
        .find(|e| e["name"] == "KUBEMIGRATE_DATABASE_URLS")
        .unwrap();
    assert_eq!(
        urls["valueFrom"]["secretKeyRef"],
        serde_json::json!({"name": "tenant-urls", "key": "urls"})
    );
    assert_eq!(spec(4)["completions"], 4);
}

#[test]
fn a_local_dir_of_diesel_folders_ships_with_its_layout() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("sql/2024-01-01-000000_users")).unwrap();
    std::fs::write(
        dir.path().join("sql/2024-01-01-000000_users/up.sql"),
        "CREATE TABLE users (id int);\n",
    )
    .unwrap();
    let plan = |layout: &str| {
        format!(
            "apiVersion: kubemigrate.io/v1alpha1\nkind: MigrationPlan\nmetadata: {{name: x}}\nspec:\n  targets:\n    - name: a\n      database: {{host: db, name: a, user: u, password: {{fromEnv: P}}}}\n      sql: {{localDir: sql{layout}}}\n"
        )
    };
    let file = dir.path().join("plan.yaml");
    // Native files are the *.sql directly in the directory: there are none.
    std::fs::write(&file, plan("")).unwrap();
    let loaded = kubemigrate_plan::load(&file).unwrap();
    let errors = gather(&loaded, &env, false).unwrap_err();
    assert!(
        errors[0].to_string().contains("holds no *.sql file"),
        "{}",
        errors[0]
    );
    std::fs::write(&file, plan(", layout: diesel")).unwrap();
    let loaded = kubemigrate_plan::load(&file).unwrap();
    let rendered = render_plan(&loaded, None, false);
    let job = serde_json::to_value(&rendered.jobs[0].job).unwrap();
    let spec = &job["spec"]["template"]["spec"];
    let command = spec["containers"][0]["command"].as_array().unwrap();
    assert_eq!(
        command[command.len() - 2..],
        [serde_json::json!("--layout"), serde_json::json!("diesel")]
    );
    let volume = spec["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "migrations")
        .unwrap();
    assert!(
        volume["configMap"]["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["path"] == "2024-01-01-000000_users/up.sql"),
        "{volume}"
    );
}
