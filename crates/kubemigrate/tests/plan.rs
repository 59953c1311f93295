//! `kubemigrate validate`, `render` and `schema`, driven through the real binary.

mod common;

use std::path::{Path, PathBuf};

use common::{Run, km};

fn example() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/ananta/plan.yaml")
        .display()
        .to_string()
}

const PASSWORDS: &[(&str, &str)] = &[
    ("CONTROL_PLANE_DB_PASSWORD", "cp-pw-Zq81"),
    ("SUPABASE_DB_PASSWORD", "sb-pw-Xk22"),
    ("COMPONENTS_V2_DB_PASSWORD", "c2-pw-Wm93"),
];

fn render(args: &[&str]) -> Run {
    let plan = example();
    let mut all = vec!["render", "-f", plan.as_str()];
    all.extend_from_slice(args);
    km(&all, PASSWORDS)
}

/// The Job name suffixes of a rendered stream.
fn suffixes(yaml: &str) -> Vec<String> {
    yaml.lines()
        .filter_map(|l| l.strip_prefix("  name: "))
        .filter(|n| n.contains("-migrations-"))
        .map(|n| n.rsplit('-').next().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn validate_accepts_the_example_and_says_what_it_holds() {
    let run = km(&["validate", "-f", &example()], &[]).expect(0);
    assert!(
        run.stdout.contains(
            "is a valid plan: ananta in namespace ananta-platform, 3 targets (3 enabled), 6 objects to render"
        ),
        "{}",
        run.stdout
    );
    let json = km(&["validate", "-f", &example(), "-o", "json"], &[])
        .expect(0)
        .json();
    assert_eq!(json["ok"], true);
    assert_eq!(json["targets"][2]["depends_on"][0], "control-plane");
}

#[test]
fn validate_prints_every_error_located_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plan.yaml");
    std::fs::write(
        &file,
        "apiVersion: kubemigrate.io/v1alpha1\nkind: MigrationPlan\nmetadata: {name: shop}\nspec:\n  targets:\n    - name: a\n      dependsOn: [b, c]\n      database: {host: db, name: a, user: u, password: {fromEnv: P}}\n      sql: {image: x}\n    - name: b\n      dependsOn: [a]\n      database: {host: db, name: b, user: u, password: {fromEnv: P}}\n      sql: {image: x, dir: rel}\n",
    )
    .unwrap();
    let f = file.display().to_string();
    let run = km(&["validate", "-f", &f], &[]).expect(2);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(
        lines,
        [
            format!("error: {f}:7:19: spec.targets[0].dependsOn[0]: dependsOn makes a cycle: a → b → a").as_str(),
            format!("error: {f}:7:22: spec.targets[0].dependsOn[1]: no target is named \"c\"; the targets are: a, b").as_str(),
            format!("error: {f}:13:28: spec.targets[1].sql.dir: \"rel\" must be an absolute path in the image").as_str(),
            format!("error: {f} is not a valid plan (3 errors)").as_str(),
        ],
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty());

    let run = km(&["validate", "-f", "/no/such/plan.yaml"], &[]).expect(2);
    assert!(
        run.stderr
            .starts_with("error: cannot read the plan /no/such/plan.yaml: No such file"),
        "{}",
        run.stderr
    );
}

#[test]
fn render_uses_a_fresh_random_suffix_unless_given_one() {
    let a = render(&[]).expect(0).stdout;
    let b = render(&[]).expect(0).stdout;
    let (sa, sb) = (suffixes(&a), suffixes(&b));
    assert_eq!(sa.len(), 3, "{a}");
    assert!(sa.iter().all(|s| s == &sa[0]), "one suffix per run");
    assert!(
        sa[0].len() == 8 && sa[0].chars().all(|c| c.is_ascii_hexdigit()),
        "{}",
        sa[0]
    );
    assert_ne!(sa[0], sb[0], "two renders made the same Job names");
    // Apart from the suffix the output is the same, and it is what the snapshot
    // holds (the suffix redacted).
    // An all-digit suffix is quoted in YAML; redact both spellings.
    let redact = |text: &str, s: &str| {
        text.replace(&format!("\"{s}\""), "[suffix]")
            .replace(s, "[suffix]")
    };
    let redacted = redact(&a, &sa[0]);
    assert!(
        redacted == redact(&b, &sb[0]),
        "two renders differ beyond the suffix"
    );
    insta::assert_snapshot!(redacted);

    let fixed = render(&["--run-id", "v42"]).expect(0).stdout;
    assert_eq!(suffixes(&fixed), ["v42", "v42", "v42"]);
    assert_eq!(fixed, render(&["--run-id", "v42"]).stdout, "reproducible");
}

#[test]
fn render_keeps_secrets_in_the_secret_only() {
    let out = render(&["--run-id", "x"]).expect(0).stdout;
    for (_, pw) in PASSWORDS {
        assert_eq!(out.matches(pw).count(), 1, "{pw} should appear once");
    }
    let docs: Vec<&str> = out.split("---\n").collect();
    for doc in docs {
        let is_secret = doc.contains("kind: Secret\n");
        for (_, pw) in PASSWORDS {
            assert!(
                is_secret || !doc.contains(pw),
                "a password outside the Secret"
            );
        }
    }
    let redacted = render(&["--redact"]).expect(0);
    for (_, pw) in PASSWORDS {
        assert!(!redacted.stdout.contains(pw) && !redacted.stderr.contains(pw));
    }
    assert!(redacted.stdout.contains(
        "CONTROL_PLANE_DB_PASSWORD: \"<redacted: from environment variable CONTROL_PLANE_DB_PASSWORD>\""
    ));
    // --redact reads no credential, so it works without them.
    km(&["render", "-f", &example(), "--redact"], &[]).expect(0);
}

#[test]
fn render_refuses_what_it_cannot_render() {
    let plan = example();
    let run = km(
        &["render", "-f", &plan],
        &[
            ("CONTROL_PLANE_DB_PASSWORD", "x"),
            ("SUPABASE_DB_PASSWORD", "y"),
        ],
    )
    .expect(2);
    assert!(
        run.stderr.contains(
            "plan.yaml:60:29: spec.targets[2].database.password.fromEnv: the environment variable COMPONENTS_V2_DB_PASSWORD is not set"
        ),
        "{}",
        run.stderr
    );
    assert!(
        run.stdout.is_empty(),
        "nothing is printed when something is wrong"
    );
    let run = render(&["--run-id", "Not_A_Label"]).expect(2);
    assert!(run.stderr.contains("--run-id"), "{}", run.stderr);
    let run = render(&["--run-id", "this-run-id-is-much-too-long"]).expect(2);
    assert!(run.stderr.contains("at most 20"), "{}", run.stderr);
    let run = render(&["--hooks", "flux"]).expect(2);
    assert!(run.stderr.contains("not helm or argocd"), "{}", run.stderr);
}

#[test]
fn render_hooks_annotate_every_object() {
    let out = render(&["--hooks", "helm", "--run-id", "h"])
        .expect(0)
        .stdout;
    assert_eq!(
        out.matches("helm.sh/hook: \"pre-install,pre-upgrade\"")
            .count(),
        6
    );
    assert_eq!(out.matches("helm.sh/hook-weight: \"-5\"").count(), 3);
    let out = render(&["--hooks", "argocd", "--run-id", "h"])
        .expect(0)
        .stdout;
    assert_eq!(out.matches("argocd.argoproj.io/hook: PreSync").count(), 6);
}

fn python() -> PathBuf {
    let tool = std::env::var_os("KUBERNETES_VALIDATE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../target/tools/venv/bin/kubernetes-validate")
        });
    let python = tool.with_file_name("python3");
    assert!(
        python.exists(),
        "the tools venv is missing: run `bash scripts/install-kubernetes-validate`"
    );
    python
}

/// Validates a YAML file against a JSON Schema with the venv's jsonschema and
/// PyYAML (both come with kubernetes-validate): prints the first error, if any.
const CHECK: &str = "import json, sys, yaml, jsonschema
schema = json.load(open(sys.argv[1]))
jsonschema.Draft202012Validator.check_schema(schema)
doc = yaml.safe_load(open(sys.argv[2]))
errors = list(jsonschema.Draft202012Validator(schema).iter_errors(doc))
print(errors[0].message if errors else 'valid')
";

#[test]
fn schema_accepts_the_example_and_rejects_a_misspelt_field() {
    let dir = tempfile::tempdir().unwrap();
    let schema = dir.path().join("schema.json");
    std::fs::write(&schema, km(&["schema"], &[]).expect(0).stdout).unwrap();
    let check = |plan: &Path| -> String {
        let out = std::process::Command::new(python())
            .args(["-c", CHECK])
            .arg(&schema)
            .arg(plan)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(check(Path::new(&example())), "valid");
    let bad = dir.path().join("bad.yaml");
    let text = std::fs::read_to_string(example())
        .unwrap()
        .replace("backoffLimit: 3", "backofLimit: 3");
    std::fs::write(&bad, text).unwrap();
    let msg = check(&bad);
    assert!(msg.contains("backofLimit"), "{msg}");
    let bad_pw = dir.path().join("bad-pw.yaml");
    let text = std::fs::read_to_string(example()).unwrap().replace(
        "{fromEnv: SUPABASE_DB_PASSWORD}",
        "{fromEnv: X, fromFile: y}",
    );
    std::fs::write(&bad_pw, text).unwrap();
    assert_ne!(check(&bad_pw), "valid");
}

#[test]
fn help_texts_have_examples() {
    for cmd in ["validate", "render", "schema"] {
        let run = km(&[cmd, "--help"], &[]).expect(0);
        assert!(run.stdout.contains("Examples:"), "{cmd}: {}", run.stdout);
    }
}

#[test]
fn the_committed_schema_is_current() {
    // docs/plan.schema.json is what editors load (see examples/ananta/plan.yaml's
    // first line); regenerate it with `kubemigrate schema > docs/plan.schema.json`.
    let committed = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/plan.schema.json"),
    )
    .unwrap();
    assert!(
        committed == km(&["schema"], &[]).expect(0).stdout,
        "docs/plan.schema.json is stale: run `kubemigrate schema > docs/plan.schema.json`"
    );
}

#[test]
fn an_imported_terraform_plan_renders_the_modules_resources() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/import/basic.plan.yaml")
        .display()
        .to_string();
    km(&["validate", "-f", &fixture], &[]).expect(0);
    let out = km(&["render", "-f", &fixture, "--run-id", "abc123"], PASSWORDS)
        .expect(0)
        .stdout;
    // The module's resources: a ConfigMap, a Secret and three Jobs with its names,
    // in its namespace, with its settings.
    let kinds: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("kind: "))
        .collect();
    assert_eq!(kinds, ["ConfigMap", "Secret", "Job", "Job", "Job"]);
    for name in [
        "  name: ananta-migration-config\n  namespace: ananta-platform\n",
        "  name: ananta-migration-db-credentials\n  namespace: ananta-platform\n",
        "  name: control-plane-migrations-abc123\n",
        "  name: supabase-migrations-abc123\n",
        "  name: components-v2-migrations-abc123\n",
        "  CONTROL_PLANE_DB_SCHEMA: tenant_management\n",
        "  SUPABASE_DB_PORT: \"27432\"\n",
        "  COMPONENTS_V2_DB_PORT: \"27010\"\n",
        "  backoffLimit: 3\n",
        "  ttlSecondsAfterFinished: 300\n",
        "  activeDeadlineSeconds: 600\n",
        "        sidecar.istio.io/inject: \"false\"\n",
        "    app.kubernetes.io/component: migrations\n",
        "            memory: 512Mi\n",
        "        - name: NODE_ENV\n          value: production\n",
        "            psql -X -v ON_ERROR_STOP=1 -f \"$f\"\n",
    ] {
        assert!(out.contains(name), "missing {name:?}");
    }
}

#[test]
fn the_rendered_example_in_docs_is_current() {
    // docs/ananta.rendered.yaml shows what the example plan becomes on a cluster;
    // regenerate it with the command in docs/local.md.
    let committed = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/ananta.rendered.yaml"),
    )
    .unwrap();
    let now = km(
        &[
            "render",
            "-f",
            &example(),
            "--redact",
            "--run-id",
            "example",
        ],
        &[],
    )
    .expect(0)
    .stdout;
    assert!(
        committed == now,
        "docs/ananta.rendered.yaml is stale: run `kubemigrate render -f examples/ananta/plan.yaml --redact --run-id example > docs/ananta.rendered.yaml`"
    );
}

/// The plan spells a target's `layout:` with its own serde enum (the plan crate does
/// not link the engine); the names must be exactly the engine's, which the runner's
/// `--layout` parses.
#[test]
fn the_plans_layout_names_are_the_engines() {
    use kubemigrate_sql::source::Layout as Engine;
    let mut plan_names = Vec::new();
    for engine in Engine::ALL {
        let plan: kubemigrate_plan::Layout =
            serde_json::from_value(serde_json::Value::String(engine.name().into()))
                .unwrap_or_else(|e| panic!("the plan refuses layout {}: {e}", engine.name()));
        assert_eq!(plan.name(), engine.name());
        plan_names.push(plan.name());
    }
    // And the plan knows no layout the engine does not: the schema's list (kept
    // current by the schema test above) is the engine's.
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/plan.schema.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let mut in_schema: Vec<&str> = schema["$defs"]["Layout"]["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["const"].as_str().unwrap())
        .collect();
    in_schema.sort_unstable();
    plan_names.sort_unstable();
    assert_eq!(in_schema, plan_names);
}
