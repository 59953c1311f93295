//! `kubemigrate import terraform-vars` end to end, with the real binary. No database
//! and no cluster: the command only reads a file and prints.
//!
//! The plan for the module README's basic example is kept in
//! `tests/fixtures/import/basic.plan.yaml` and compared exactly, so tests of later
//! commands (validate, render) can read it. After a deliberate change to the output,
//! rewrite it with `KUBEMIGRATE_BLESS=1 cargo test -p kubemigrate --test import`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure the test reports"
)]

use std::path::{Path, PathBuf};
use std::process::Command;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn expect(self, code: i32) -> Run {
        assert_eq!(
            self.code, code,
            "exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

fn km(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_kubemigrate"))
        .args(args)
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

fn import(file: &str) -> Run {
    km(&["import", "terraform-vars", file])
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn example(name: &str) -> String {
    repo()
        .join("examples/terraform")
        .join(name)
        .display()
        .to_string()
}

/// A scratch directory with files in it.
struct Scratch(tempfile::TempDir);

impl Scratch {
    fn new() -> Scratch {
        Scratch(tempfile::tempdir().unwrap())
    }

    fn file(&self, name: &str, text: &str) -> String {
        let path = self.0.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }
}

/// The variables the module requires (hosts and users), nothing else.
const REQUIRED: &str = "\
control_plane_db_host = \"cp-db\"
control_plane_db_user = \"cp_user\"
supabase_db_host      = \"sb-db\"
supabase_db_user      = \"sb_user\"
components_v2_db_host = \"c2-db\"
components_v2_db_user = \"c2_user\"
";

/// The lines of one target's entry in the plan.
fn target_block<'a>(plan: &'a str, name: &str) -> &'a str {
    let start = plan
        .find(&format!("    - name: {name}\n"))
        .unwrap_or_else(|| panic!("no target {name} in\n{plan}"));
    let rest = &plan[start + 1..];
    let end = rest
        .find("    - name: ")
        .map_or(plan.len(), |e| start + 1 + e);
    &plan[start..end]
}

/// A shape check standing in for a YAML parser (the crate has none, on purpose):
/// two-space indentation, no tabs, and every line a comment, `key: value`, `key:`,
/// or a `- ` list item.
fn assert_yaml_shape(plan: &str) {
    assert!(plan.ends_with('\n'));
    for (i, line) in plan.lines().enumerate() {
        let body = line.trim_start_matches(' ');
        let indent = line.len() - body.len();
        assert!(!line.contains('\t'), "line {}: tab: {line:?}", i + 1);
        assert_eq!(indent % 2, 0, "line {}: odd indentation: {line:?}", i + 1);
        assert!(
            !body.is_empty() && !body.ends_with(' '),
            "line {}: {line:?}",
            i + 1
        );
        if body.starts_with('#') {
            continue;
        }
        let item = body.strip_prefix("- ").unwrap_or(body);
        let key_end = if let Some(quoted) = item.strip_prefix('"') {
            quoted.find('"').map(|e| e + 2)
        } else {
            item.find(':')
        };
        let key_end = key_end.unwrap_or_else(|| panic!("line {}: no key: {line:?}", i + 1));
        let key = &item[..key_end];
        let after = &item[key_end..];
        assert!(
            after == ":" || after.starts_with(": "),
            "line {}: not `key: value`: {line:?}",
            i + 1
        );
        assert!(
            !key.contains(' ') || key.starts_with('"'),
            "line {}: key with a space: {line:?}",
            i + 1
        );
    }
}

#[test]
fn the_readme_basic_example_gives_the_fixture_plan_from_tfvars_and_from_json() {
    let fixture = repo().join("crates/kubemigrate/tests/fixtures/import/basic.plan.yaml");
    let hcl = import(&example("basic.tfvars")).expect(0);
    let json = import(&example("basic.tfvars.json")).expect(0);
    if std::env::var_os("KUBEMIGRATE_BLESS").is_some() {
        std::fs::write(&fixture, &hcl.stdout).unwrap();
    }
    let expected = std::fs::read_to_string(&fixture).unwrap();
    assert_eq!(hcl.stdout, expected, "from basic.tfvars");
    assert_eq!(json.stdout, expected, "from basic.tfvars.json");
    assert_yaml_shape(&expected);
    for password in [
        "example-control-plane-password",
        "example-supabase-password",
        "example-components-v2-password",
    ] {
        for run in [&hcl, &json] {
            assert!(!run.stdout.contains(password) && !run.stderr.contains(password));
        }
    }
    assert!(!hcl.stderr.contains("warning"), "{}", hcl.stderr);
}

#[test]
fn every_variable_the_file_does_not_set_gets_the_module_default() {
    let dir = Scratch::new();
    let plan = import(&dir.file("min.tfvars", REQUIRED)).expect(0).stdout;
    assert_yaml_shape(&plan);
    for line in [
        "  name: ananta\n",
        "  namespace: default  # namespace: module default\n",
        "  serviceAccountName: default  # service_account_name: module default\n",
        "    requests:\n      cpu: 100m  # migration_resources: module default\n      memory: 128Mi  # migration_resources: module default\n",
        "    limits:\n      cpu: 500m  # migration_resources: module default\n      memory: 512Mi  # migration_resources: module default\n",
        "  backoffLimit: 3  #",
        "  ttlSecondsAfterFinished: 300  #",
        "  timeout: 10m  # migration_timeout: module default\n",
        "  wait: true  # wait_for_completion: module default\n",
    ] {
        assert!(plan.contains(line), "missing {line:?} in\n{plan}");
    }
    let cp = target_block(&plan, "control-plane");
    for line in [
        "      enabled: true  # run_control_plane_migrations: module default\n",
        "        host: cp-db\n",
        "        port: 5432  # control_plane_db_port: module default\n",
        "        name: arc_saas  # control_plane_db_name: module default\n",
        "        schema: tenant_management  # control_plane_db_schema: module default\n",
        "        user: cp_user\n",
        "        password: {fromEnv: CONTROL_PLANE_DB_PASSWORD}\n",
        "      command:\n        image: ananta/tenant-management-service:latest  # control_plane_migration_image: module default\n        command: [npm, run, migrate]\n",
    ] {
        assert!(cp.contains(line), "missing {line:?} in\n{cp}");
    }
    let sb = target_block(&plan, "supabase");
    for line in [
        "      enabled: true  # run_supabase_migrations: module default\n",
        "        port: 27432  # supabase_db_port: module default\n",
        "        name: postgres  # supabase_db_name: module default\n",
        "        password: {fromEnv: SUPABASE_DB_PASSWORD}\n",
        "      sql:\n        image: postgres:15-alpine  # supabase_migration_image: module default\n        dir: /migrations\n",
        "        engine: psql\n",
    ] {
        assert!(sb.contains(line), "missing {line:?} in\n{sb}");
    }
    assert!(!sb.contains("schema:"), "{sb}");
    let c2 = target_block(&plan, "components-v2");
    for line in [
        "        port: 27010  # components_v2_db_port: module default\n",
        "        name: components_v2  # components_v2_db_name: module default\n",
        "        password: {fromEnv: COMPONENTS_V2_DB_PASSWORD}\n",
        "        image: postgres:15-alpine  # components_v2_migration_image: module default\n",
    ] {
        assert!(c2.contains(line), "missing {line:?} in\n{c2}");
    }
}

#[test]
fn every_optional_variable_is_carried_over() {
    let dir = Scratch::new();
    let file = dir.file(
        "all.tfvars",
        &format!(
            "{REQUIRED}namespace = \"ns1\"\nservice_account_name = \"migrator\"\n\
             control_plane_db_port = 6001\ncontrol_plane_db_name = \"cpn\"\ncontrol_plane_db_schema = \"tm\"\n\
             supabase_db_port = 6002\nsupabase_db_name = \"sbn\"\n\
             components_v2_db_port = 6003\ncomponents_v2_db_name = \"c2n\"\n\
             control_plane_migration_image = \"cp:1\"\nsupabase_migration_image = \"sb:1\"\n\
             components_v2_migration_image = \"c2:1\"\nmigration_timeout = \"30m\"\n\
             wait_for_completion = false\nrun_control_plane_migrations = true\n\
             run_supabase_migrations = \"true\"\nrun_components_v2_migrations = true\nlabels = {{ team = \"platform\" }}\n\
             migration_resources = {{\n  requests = {{ cpu = \"200m\", memory = \"512Mi\" }}\n  \
             limits = {{ cpu = \"1000m\", memory = \"1Gi\" }}\n}}\n"
        ),
    );
    let plan = import(&file).expect(0).stdout;
    assert_yaml_shape(&plan);
    assert!(!plan.contains(": module default"), "{plan}");
    for line in [
        "  namespace: ns1\n",
        "  serviceAccountName: migrator\n",
        "  labels:\n    team: platform\n",
        "    requests:\n      cpu: 200m\n      memory: 512Mi\n    limits:\n      cpu: 1000m\n      memory: 1Gi\n",
        "  timeout: 30m\n",
        "  wait: false\n",
        "        port: 6001\n        name: cpn\n        schema: tm\n",
        "        image: cp:1\n",
        "        port: 6002\n        name: sbn\n",
        "        image: sb:1\n",
        "        port: 6003\n        name: c2n\n",
        "        image: c2:1\n",
    ] {
        assert!(plan.contains(line), "missing {line:?} in\n{plan}");
    }
}

#[test]
fn run_supabase_migrations_false_disables_only_that_target() {
    let dir = Scratch::new();
    for file in [
        dir.file(
            "off.tfvars",
            &format!("{REQUIRED}run_supabase_migrations = false\n"),
        ),
        dir.file(
            "off.tfvars.json",
            "{\"control_plane_db_host\": \"cp-db\", \"control_plane_db_user\": \"u\",
              \"supabase_db_host\": \"sb-db\", \"supabase_db_user\": \"u\",
              \"components_v2_db_host\": \"c2-db\", \"components_v2_db_user\": \"u\",
              \"run_supabase_migrations\": false}",
        ),
    ] {
        let plan = import(&file).expect(0).stdout;
        assert!(
            target_block(&plan, "supabase").contains("      enabled: false\n"),
            "{plan}"
        );
        for other in ["control-plane", "components-v2"] {
            assert!(target_block(&plan, other).contains("      enabled: true  #"));
        }
    }
}

#[test]
fn passwords_never_reach_stdout_or_stderr() {
    let dir = Scratch::new();
    let secrets = ["Pa55-cp-\u{e9}9f1", "Pa55-sb-77b2", "Pa55-c2-04d3"];
    let body = format!(
        "{REQUIRED}control_plane_db_password = \"{}\"\nsupabase_db_password = <<EOF\n{}\nEOF\n\
         components_v2_db_password = \"{}\"\n",
        secrets[0], secrets[1], secrets[2]
    );
    let ok = import(&dir.file("ok.tfvars", &body)).expect(0);
    // A failed import (a type error elsewhere, a misspelled password variable, a
    // password of the wrong type) shows none either.
    let failed = import(&dir.file(
        "bad.tfvars",
        &format!(
            "{body}control_plane_db_port = \"x\"\nsupabase_db_pasword = \"{}\"\n",
            secrets[1]
        ),
    ))
    .expect(2);
    let wrong_type = import(&dir.file(
        "list.tfvars",
        &format!(
            "{REQUIRED}control_plane_db_password = [\"{}\"]\n",
            secrets[0]
        ),
    ))
    .expect(2);
    for run in [&ok, &failed, &wrong_type] {
        for secret in secrets {
            assert!(!run.stdout.contains(secret), "{}", run.stdout);
            assert!(!run.stderr.contains(secret), "{}", run.stderr);
        }
    }
    // The user is told which variables to export, and that the file's values were not copied.
    for (env, var) in [
        ("CONTROL_PLANE_DB_PASSWORD", "control_plane_db_password"),
        ("SUPABASE_DB_PASSWORD", "supabase_db_password"),
        ("COMPONENTS_V2_DB_PASSWORD", "components_v2_db_password"),
    ] {
        assert!(
            ok.stderr
                .contains(&format!("{env:<27}the value of {var} (set in ")),
            "{}",
            ok.stderr
        );
        assert!(ok.stdout.contains(&format!("password: {{fromEnv: {env}}}")));
    }
    assert!(
        wrong_type
            .stderr
            .contains(":7:29: control_plane_db_password: expected a string, found a list")
    );
    let unset = import(&dir.file("unset.tfvars", REQUIRED)).expect(0);
    assert!(unset.stderr.contains(
        "CONTROL_PLANE_DB_PASSWORD  the value of control_plane_db_password (not set in "
    ));
}

#[test]
fn unknown_variables_are_warnings_with_a_suggestion() {
    let dir = Scratch::new();
    let file = dir.file(
        "typo.tfvars",
        &format!(
            "{REQUIRED}supabase_db_prot = 27432\nmigration_timout = \"5m\"\nreplicas = 3\n\
             source = \"../../modules/migrations/kubernetes\"\n"
        ),
    );
    let run = import(&file).expect(0);
    for warning in [
        format!(
            "warning: {file}:7:1: supabase_db_prot is not a variable of the migrations module; ignored (did you mean supabase_db_port?)"
        ),
        format!(
            "warning: {file}:8:1: migration_timout is not a variable of the migrations module; ignored (did you mean migration_timeout?)"
        ),
        format!(
            "warning: {file}:9:1: replicas is not a variable of the migrations module; ignored\n"
        ),
        format!(
            "warning: {file}:10:1: source is not a variable of the migrations module; ignored (it is an argument of the module block)"
        ),
    ] {
        assert!(
            run.stderr.contains(&warning),
            "missing {warning:?} in\n{}",
            run.stderr
        );
    }
    // Ignored: the defaults stand.
    assert!(
        run.stdout
            .contains("port: 27432  # supabase_db_port: module default")
    );
    assert!(run.stdout.contains("timeout: 10m  #"));
}

#[test]
fn postgres_wait_image_is_ignored_with_a_warning() {
    let dir = Scratch::new();
    let file = dir.file(
        "wait.tfvars",
        &format!("{REQUIRED}postgres_wait_image = \"postgres:16-alpine\"\n"),
    );
    let run = import(&file).expect(0);
    assert!(run.stderr.contains(&format!(
        "warning: {file}:7:1: postgres_wait_image has no equivalent and is ignored: kubemigrate's runner image (spec.runnerImage) waits for the database"
    )), "{}", run.stderr);
    assert!(!run.stdout.contains("postgres:16-alpine"));
}

#[test]
fn a_wrong_type_is_an_error_at_file_line_column_with_exit_2() {
    let dir = Scratch::new();
    let file = dir.file(
        "port.tfvars",
        &format!("{REQUIRED}control_plane_db_port = \"abc\"\n"),
    );
    let run = import(&file).expect(2);
    assert_eq!(run.stdout, "");
    assert_eq!(
        run.stderr,
        format!(
            "error: {file}:7:25: control_plane_db_port: expected a port number (1 to 65535), found the string \"abc\"\n"
        )
    );
    // The same in JSON points at the value too.
    let file = dir.file(
        "port.tfvars.json",
        "{\n  \"control_plane_db_host\": \"h\",\n  \"wait_for_completion\": \"maybe\"\n}\n",
    );
    let run = import(&file).expect(2);
    assert!(
        run.stderr.starts_with("error: 2 problems in "),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains(&format!(
        "  {file}:3:26: wait_for_completion: expected true or false, found the string \"maybe\"\n"
    )), "{}", run.stderr);
    assert!(run.stderr.contains(&format!(
        "  {file}: missing required variables (the module has no default): control_plane_db_user, supabase_db_host, supabase_db_user, components_v2_db_host, components_v2_db_user\n"
    )), "{}", run.stderr);
}

#[test]
fn missing_required_hosts_and_users_are_one_error_listing_them_all() {
    let dir = Scratch::new();
    let file = dir.file(
        "partial.tfvars",
        "control_plane_db_host = \"cp\"\ncontrol_plane_db_user = \"u\"\nsupabase_db_user = \"u\"\n",
    );
    let run = import(&file).expect(2);
    assert_eq!(run.stdout, "");
    assert_eq!(
        run.stderr,
        format!(
            "error: {file}: missing required variables (the module has no default): supabase_db_host, components_v2_db_host, components_v2_db_user\n"
        )
    );
}

#[test]
fn syntax_errors_name_the_place_and_what_was_expected() {
    let dir = Scratch::new();
    for (name, text, expected) in [
        (
            "unterminated.tfvars",
            "namespace = \"ns\ncontrol_plane_db_host = \"h\"\n",
            ":1:13: unterminated string: a quoted string ends on the line it starts (use a heredoc, <<EOF, for several lines)",
        ),
        (
            "reference.tfvars",
            "control_plane_db_password = var.db_password\n",
            ":1:29: references are not allowed in a .tfvars file: var.db_password (write the value itself)",
        ),
        (
            "garbage.tfvars",
            "namespace = \"ns\" \"more\"\n",
            ":1:18: expected a new line after the value of namespace, found `\"`",
        ),
        (
            "twice.tfvars",
            "namespace = \"a\"\nnamespace = \"b\"\n",
            ":2:1: namespace is set twice (first at line 1)",
        ),
        (
            "block.tfvars",
            "module \"migrations\" {\n  namespace = \"a\"\n}\n",
            ":1:1: `module` starts a block",
        ),
        (
            "bad.tfvars.json",
            "{\"namespace\": \"a\",}",
            ":1:19: invalid JSON: key must be a string",
        ),
    ] {
        let file = dir.file(name, text);
        let run = import(&file).expect(2);
        assert!(
            run.stderr.starts_with(&format!("error: {file}{expected}")),
            "{name}: {}",
            run.stderr
        );
        assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
        assert_eq!(run.stdout, "");
    }
    let run = import("/nonexistent/x.tfvars").expect(2);
    assert!(
        run.stderr
            .starts_with("error: /nonexistent/x.tfvars: cannot read:")
    );
}

#[test]
fn name_write_and_force() {
    let dir = Scratch::new();
    let file = dir.file("v.tfvars", REQUIRED);
    let run = km(&["import", "terraform-vars", &file, "--name", "ananta-prod"]).expect(0);
    assert!(run.stdout.contains("metadata:\n  name: ananta-prod\n"));
    let run = km(&["import", "terraform-vars", &file, "--name", "Ananta_Prod"]).expect(2);
    assert!(
        run.stderr.contains("not a DNS-1123 label"),
        "{}",
        run.stderr
    );

    let out = dir.0.path().join("plan.yaml").display().to_string();
    let run = km(&["import", "terraform-vars", &file, "--write", &out]).expect(0);
    assert_eq!(run.stdout, format!("wrote the plan to {out}\n"));
    let written = std::fs::read_to_string(&out).unwrap();
    assert_eq!(written, import(&file).stdout);
    std::fs::write(&out, "hand edits").unwrap();
    let run = km(&["import", "terraform-vars", &file, "-w", &out]).expect(2);
    assert!(
        run.stderr
            .contains("the file exists; pass --force to replace it")
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "hand edits");
    km(&["import", "terraform-vars", &file, "-w", &out, "--force"]).expect(0);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), written);

    let run = km(&["import", "terraform-vars", &file, "-o", "json"]).expect(2);
    assert!(run.stdout.contains("\"exit_code\": 2"), "{}", run.stdout);
}

#[test]
fn values_that_need_quotes_are_quoted() {
    let dir = Scratch::new();
    let file = dir.file(
        "q.tfvars",
        &format!(
            "{REQUIRED}namespace = \"true\"\ncontrol_plane_db_name = \"my db: #1\"\n\
             labels = {{ \"example.com/owner\" = \"a \\\"b\\\"\", version = 1.5 }}\n\
             control_plane_db_schema = \"tab\\there\"\n"
        ),
    );
    let plan = import(&file).expect(0).stdout;
    assert_yaml_shape(&plan);
    for line in [
        "  namespace: \"true\"\n",
        "        name: \"my db: #1\"\n",
        "    example.com/owner: \"a \\\"b\\\"\"\n",
        "    version: \"1.5\"\n",
        "        schema: \"tab\\there\"\n",
    ] {
        assert!(plan.contains(line), "missing {line:?} in\n{plan}");
    }
}
