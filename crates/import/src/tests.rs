//! Tests of the conversion: Terraform's type conversions, the messages and their
//! places, and values that need quotes in the plan.

use crate::convert::{Converted, convert, suggest};
use crate::module::VARIABLES;
use crate::{check_plan_name, tfvars};

/// Each diagnostic as its one line.
fn lines(d: &[crate::Diagnostic]) -> Vec<String> {
    d.iter().map(ToString::to_string).collect()
}

fn run(text: &str) -> Converted {
    convert(&tfvars::parse_hcl(text).unwrap(), "t.tfvars", "ananta")
}

const REQUIRED: &str = "control_plane_db_host = \"a\"\ncontrol_plane_db_user = \"u\"\n\
    supabase_db_host = \"b\"\nsupabase_db_user = \"u\"\n\
    components_v2_db_host = \"c\"\ncomponents_v2_db_user = \"u\"\n";

#[test]
fn suggestions() {
    let names = || VARIABLES.iter().map(|(n, _)| *n);
    assert_eq!(
        suggest("control_plane_db_hots", names()),
        Some("control_plane_db_host")
    );
    assert_eq!(
        suggest("supabase_password", names()),
        Some("supabase_db_password")
    );
    assert_eq!(suggest("namspace", names()), Some("namespace"));
    assert_eq!(suggest("replicas", names()), None);
}

#[test]
fn terraform_conversions() {
    let c = run(&format!(
        "{REQUIRED}control_plane_db_port = \"6543\"\nwait_for_completion = \"false\"\n\
         namespace = 7\nlabels = {{ team = \"db\", tier = 1 }}\n"
    ));
    assert!(c.problems.is_empty(), "{:?}", c.problems);
    assert!(c.yaml.contains("        port: 6543\n"), "{}", c.yaml);
    assert!(c.yaml.contains("  wait: false\n"));
    assert!(c.yaml.contains("  namespace: \"7\"\n"));
    assert!(c.yaml.contains("    team: db\n    tier: \"1\"\n"));
}

#[test]
fn type_errors_name_the_place_and_never_show_a_password() {
    let c = run(&format!(
        "{REQUIRED}control_plane_db_port = \"abc\"\nsupabase_db_port = 70000\n\
         run_supabase_migrations = \"yes\"\ncontrol_plane_db_password = [\"hunter2\"]\n\
         labels = [\"a\"]\nnamespace = {{}}\n"
    ));
    assert_eq!(
        lines(&c.problems),
        vec![
            "t.tfvars:7:25: control_plane_db_port: expected a port number (1 to 65535), found the string \"abc\"",
            "t.tfvars:8:20: supabase_db_port: expected a port number (1 to 65535), found the number 70000",
            "t.tfvars:9:27: run_supabase_migrations: expected true or false, found the string \"yes\"",
            "t.tfvars:10:29: control_plane_db_password: expected a string, found a list",
            "t.tfvars:11:10: labels: expected a map of strings ({ key = \"value\" }), found a list",
            "t.tfvars:12:13: namespace: expected a string, found an object",
        ]
    );
    assert!(c.yaml.is_empty());
}

#[test]
fn missing_and_empty_required_variables() {
    let c = run("supabase_db_host = \"\"\nsupabase_db_user = \"u\"\n");
    assert_eq!(
        lines(&c.problems),
        vec![
            "t.tfvars:1:20: supabase_db_host: must not be empty",
            "t.tfvars: missing required variables (the module has no default): \
             control_plane_db_host, control_plane_db_user, components_v2_db_host, components_v2_db_user",
        ]
    );
}

#[test]
fn null_means_not_set() {
    let c = run(&format!(
        "{REQUIRED}control_plane_db_port = null\nlabels = null\n"
    ));
    assert!(c.problems.is_empty());
    assert!(
        c.yaml
            .contains("port: 5432  # control_plane_db_port: module default")
    );
}

#[test]
fn resources_partial_and_misspelled() {
    let c = run(&format!(
        "{REQUIRED}migration_resources = {{\n  limits = {{ memory = \"1Gi\", cpus = 2 }}\n  limit = {{}}\n}}\n"
    ));
    assert!(c.problems.is_empty(), "{:?}", c.problems);
    assert!(
        c.yaml.contains(
            "    limits:\n      cpu: 500m  # migration_resources: module default\n      memory: 1Gi\n"
        ),
        "{}",
        c.yaml
    );
    assert_eq!(
        lines(&c.warnings),
        vec![
            "t.tfvars:8:30: migration_resources: limits.cpus is not cpu or memory; ignored (did you mean cpu?)",
            "t.tfvars:9:3: migration_resources: limit is not requests or limits; ignored (did you mean limits?)",
        ]
    );
    let c = run(&format!(
        "{REQUIRED}migration_resources = {{ limits = \"1Gi\" }}\n"
    ));
    assert_eq!(
        lines(&c.problems),
        vec![
            "t.tfvars:7:34: migration_resources: limits: expected {cpu = \"…\", memory = \"…\"}, found the string \"1Gi\""
        ]
    );
}

#[test]
fn labels_that_need_quotes_are_quoted() {
    let c = run(&format!(
        "{REQUIRED}labels = {{ \"a: b\" = \"x #y\", \"team.example.com/role\" = \"db\" }}\n"
    ));
    assert!(
        c.yaml
            .contains("  labels:\n    \"a: b\": \"x #y\"\n    team.example.com/role: db\n"),
        "{}",
        c.yaml
    );
}

#[test]
fn plan_names() {
    assert!(check_plan_name("ananta-prod").is_ok());
    for bad in ["", "-a", "a-", "Ananta", "a_b", &"a".repeat(64)] {
        assert!(check_plan_name(bad).is_err(), "{bad}");
    }
}
