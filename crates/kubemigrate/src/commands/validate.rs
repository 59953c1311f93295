//! `kubemigrate validate`: check a plan as a compiler would.

use serde::Serialize;

use crate::args::plan::{self, PlanArgs};
use crate::exit::{CommandResult, Exit};
use crate::output::{Output, Reporter};

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
    crate::commands::sql::lint::lint_plan(&loaded)?;
    let p = &loaded.plan;
    let report = Validation {
        file: loaded.file.display().to_string(),
        plan: p.metadata.name.to_string(),
        namespace: p.metadata.namespace.to_string(),
        targets: p
            .spec
            .targets
            .iter()
            .map(|t| TargetInfo {
                name: t.name.to_string(),
                enabled: t.enabled,
                depends_on: t.depends_on.clone(),
            })
            .collect(),
        warnings: loaded.warnings.iter().map(ToString::to_string).collect(),
        objects: rendered.to_values().len(),
    };
    reporter.finish("validate", Some(&report), Exit::Ok, None);
    Ok(Exit::Ok)
}

/// `validate`'s result.
#[derive(Debug, Serialize)]
struct Validation {
    file: String,
    plan: String,
    namespace: String,
    targets: Vec<TargetInfo>,
    warnings: Vec<String>,
    #[serde(skip)]
    objects: usize,
}

/// A target of a valid plan.
#[derive(Debug, Serialize)]
struct TargetInfo {
    name: String,
    enabled: bool,
    depends_on: Vec<String>,
}

impl Output for Validation {
    fn human(&self, reporter: Reporter) {
        let n = self.targets.len();
        let enabled = self.targets.iter().filter(|t| t.enabled).count();
        reporter.line(&format!(
            "{} is a valid plan: {} in namespace {}, {n} target{} ({enabled} enabled), {} objects to render",
            self.file,
            self.plan,
            self.namespace,
            if n == 1 { "" } else { "s" },
            self.objects,
        ));
    }
}
