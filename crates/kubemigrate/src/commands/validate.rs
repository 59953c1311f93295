//! `kubemigrate validate`: check a plan as a compiler would.

use crate::commands::plan::{self, PlanArgs};
use crate::exit::{CommandResult, Exit};
use crate::reporter::Reporter;

/// Check a plan file without touching a cluster or a database.
///
/// Reads the plan, reports every problem as `file:line:column: field: message`
/// (unknown fields with a "did you mean", names, quantities, durations, duplicate
/// targets, dependsOn cycles), then renders its objects with the credentials
/// redacted, so what `render` would refuse (a localDir over 1 MiB, a bad affinity)
/// is reported too. Credentials are not read: a missing fromEnv variable is not an
/// error here. The SQL files of `localDir` targets are linted with the plan's
/// `lint` policy (see `kubemigrate sql lint`); a denied rule fails the plan.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  kubemigrate validate -f plan.yaml
  kubemigrate validate -f plan.yaml -o json | jq .errors

Exit codes: 0 valid (warnings may be printed), 2 invalid or unreadable, 11 a denied\nlint rule fired in a localDir target's files.")]
pub struct Args {
    #[command(flatten)]
    plan: PlanArgs,
}

/// Runs the command.
pub async fn run(args: Args, reporter: Reporter) -> CommandResult {
    let loaded = plan::load(&args.plan)?;
    let (_, rendered) = plan::render(&loaded, "00000000".into(), None, true)?;
    crate::commands::sql_lint::lint_plan(&loaded)?;
    let p = &loaded.plan;
    let enabled = p.spec.targets.iter().filter(|t| t.enabled).count();
    let objects = rendered.to_values().len();
    if reporter.json() {
        let doc = serde_json::json!({
            "command": "validate",
            "ok": true,
            "exit_code": 0,
            "file": loaded.file.display().to_string(),
            "plan": p.metadata.name.as_str(),
            "namespace": p.metadata.namespace.as_str(),
            "targets": p.spec.targets.iter().map(|t| serde_json::json!({
                "name": t.name.as_str(),
                "enabled": t.enabled,
                "depends_on": t.depends_on,
            })).collect::<Vec<_>>(),
            "warnings": loaded.warnings.iter().map(ToString::to_string).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    } else {
        reporter.line(&format!(
            "{} is a valid plan: {} in namespace {}, {} target{} ({enabled} enabled), {objects} objects to render",
            loaded.file.display(),
            p.metadata.name,
            p.metadata.namespace,
            p.spec.targets.len(),
            if p.spec.targets.len() == 1 { "" } else { "s" },
        ));
    }
    Ok(Exit::Ok)
}
