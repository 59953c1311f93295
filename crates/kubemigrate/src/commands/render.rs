//! `kubemigrate render`: the plan's Kubernetes objects as YAML.

use std::io::Write;

use kubemigrate_render::Hooks;

use crate::args::plan::{self, PlanArgs};
use crate::exit::{CommandResult, Exit, Failure};
use crate::output::Reporter;

/// Print the Kubernetes objects that run a plan, as a YAML stream for
/// `kubectl apply -f -` or a GitOps repository.
///
/// The stream holds, in creation order: the ConfigMap `<plan>-migration-config`
/// (hosts, ports, database names, schemas), the Secret
/// `<plan>-migration-db-credentials` (users and passwords not taken from an existing
/// Secret), a ConfigMap of SQL files per `localDir` target, and one Job per enabled
/// target, `<target>-migrations-<run id>`. Credentials given as `fromEnv`/`fromFile`
/// are read now and appear only in the Secret. The SQL files of `localDir` targets
/// are linted first (the plan's `lint` policy); a denied rule stops the render
/// (exit 11) and nothing is printed.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  kubemigrate render -f plan.yaml | kubectl apply -f -
  kubemigrate render -f plan.yaml --redact              # review without secrets
  kubemigrate render -f plan.yaml --run-id v42 --hooks helm > chart/templates/migrations.yaml
  kubemigrate render -f plan.yaml --hooks argocd --run-id \"$(git rev-parse --short HEAD)\"
  kubemigrate render -f plan.yaml --rbac --rbac-subject ci-deployer | kubectl apply -f -")]
pub struct Args {
    #[command(flatten)]
    plan: PlanArgs,
    /// The Job name suffix (a DNS-1123 label, at most 20 characters). Default: 8
    /// random hexadecimal digits, so every render makes new Jobs (a Job's template
    /// cannot be changed). Set it for reproducible output, e.g. to a release or
    /// commit id.
    #[arg(long, value_name = "ID", value_parser = plan::parse_run_id)]
    run_id: Option<String>,
    /// Print placeholders instead of the users and passwords (for review; the
    /// output cannot be applied as is). Credentials are not read at all.
    #[arg(long)]
    redact: bool,
    /// Add hook annotations: `helm` (pre-install,pre-upgrade; ConfigMaps and Secret
    /// first by weight) or `argocd` (PreSync; sync waves).
    #[arg(long, value_name = "KIND", value_parser = parse_hooks)]
    hooks: Option<Hooks>,
    /// Print instead the Role and RoleBinding that `kubemigrate apply`, `status`,
    /// `logs` and `cleanup` need in the plan's namespace (see docs/rbac.md).
    #[arg(long, conflicts_with_all = ["run_id", "redact", "hooks"])]
    rbac: bool,
    /// With --rbac: the ServiceAccount (in the plan's namespace) to bind the Role to.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "kubemigrate",
        requires = "rbac"
    )]
    rbac_subject: String,
}

fn parse_hooks(s: &str) -> Result<Hooks, String> {
    match s {
        "helm" => Ok(Hooks::Helm),
        "argocd" | "argo-cd" | "argo" => Ok(Hooks::ArgoCd),
        other => Err(format!("{other:?} is not helm or argocd")),
    }
}

/// Runs the command.
pub async fn run(args: Args, _reporter: Reporter) -> CommandResult {
    let loaded = plan::load(&args.plan)?;
    if args.rbac {
        let (role, binding) = kubemigrate_render::rbac(&loaded.plan, &args.rbac_subject);
        let docs: Vec<serde_json::Value> =
            [serde_json::to_value(role), serde_json::to_value(binding)]
                .into_iter()
                .filter_map(Result::ok)
                .collect();
        return write(&kubemigrate_render::yaml::to_yaml_stream(&docs));
    }
    let run_id = plan::run_id_or_random(args.run_id.as_deref())?;
    let (_, rendered) = plan::render(&loaded, run_id, args.hooks, args.redact)?;
    crate::commands::sql::lint::lint_plan(&loaded)?;
    write(&rendered.to_yaml())
}

fn write(text: &str) -> CommandResult {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(Exit::Ok),
        // A closed pipe (`| head`) is not an error worth a message.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(Exit::Ok),
        Err(e) => Err(Failure::new(
            Exit::Internal,
            anyhow::Error::new(e).context("writing the YAML"),
        )),
    }
}
