//! `kubemigrate apply` on a cluster: the objects server-side applied, each Job
//! created when its dependencies succeeded, followed live, and reported.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::anyhow;
use kubemigrate_cluster::{Cluster, ClusterError, FollowOptions};
use kubemigrate_contract::k8s;
use kubemigrate_plan::values::Name;
use kubemigrate_render::{Rendered, key_prefix};

use super::Args;
use crate::apply::cluster::ClusterRunner;
use crate::apply::job_name;
use crate::apply::session::{Outcome, Session, usage};
use crate::args::plan;
use crate::exit::{CommandResult, Exit, Failure};
use crate::output::Reporter;
use crate::output::apply::{ApplyReport, JobSummary, TargetJson};

fn cluster_failure(e: ClusterError) -> Failure {
    Failure::new(Exit::Cluster, anyhow!(e))
}

/// Runs `apply` against the cluster.
pub async fn run(args: Args, reporter: Reporter) -> CommandResult {
    let mut loaded = plan::load(&args.plan)?;
    super::lint_before_apply(&loaded, args.skip_lint, reporter)?;
    if let Some(ns) = &args.namespace {
        loaded.plan.metadata.namespace =
            Name::new(ns).map_err(|e| usage(format!("--namespace: {e}")))?;
    }
    let session = Session::prepare(loaded, &args.only, args.run_id.as_deref())?;
    let (p, rendered, run_id) = (&session.loaded.plan, &session.rendered, &session.run_id);
    let cluster = Cluster::connect(args.context.as_deref())
        .await
        .map_err(cluster_failure)?;
    let ns = p.metadata.namespace.to_string();
    reporter.line(&format!(
        "applying plan {} in namespace {ns} (run {run_id})",
        p.metadata.name
    ));
    apply_objects(&cluster, rendered)
        .await
        .map_err(cluster_failure)?;

    let commands = helpful_commands(rendered, &ns, p.metadata.name.as_str());
    if args.no_wait {
        for j in &rendered.jobs {
            cluster.create_job(&j.job).await.map_err(cluster_failure)?;
            reporter.line(&format!("created Job {}", job_name(j)));
        }
        if rendered.jobs.iter().any(|j| !j.depends_on.is_empty()) {
            reporter.warn("--no-wait created every Job at once: dependsOn is not waited for");
        }
        finish(reporter, &session, &ns, None, &commands);
        return Ok(Exit::Ok);
    }

    let logs_dir = args
        .logs_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("kubemigrate-logs"))
        .join(run_id);
    let runner_codes: BTreeMap<String, bool> = p
        .spec
        .targets
        .iter()
        .map(|t| (t.name.to_string(), t.runs_native_engine()))
        .collect();
    let runner = ClusterRunner {
        cluster: cluster.clone(),
        follow: FollowOptions {
            fail_fast_after: args.fail_fast_after,
            report_waiting_every: args.waiting_report_every,
        },
        timeout: args
            .timeout
            .unwrap_or(p.spec.timeout.value() + Duration::from_secs(60)),
        logs_dir,
        runner_codes,
    };
    let outcome = tokio::select! {
        outcome = session.run(&runner, reporter, Box::new(|run| run)) => outcome,
        _ = tokio::signal::ctrl_c() => {
            reporter.line("\ninterrupted: kubemigrate stops waiting; the Jobs go on.");
            if args.delete_on_interrupt {
                for j in &rendered.jobs {
                    let name = job_name(j);
                    match cluster.delete_job(&ns, &name).await {
                        Ok(()) => reporter.line(&format!("deleted Job {name}")),
                        Err(ClusterError::Api { code: 404, .. }) => {}
                        Err(e) => reporter.warn(&e.to_string()),
                    }
                }
            } else {
                reporter.line(&format!("follow them with: {}", commands["list_jobs"]));
            }
            return Ok(Exit::Interrupted);
        }
    };
    finish(reporter, &session, &ns, Some(&outcome), &commands);
    Ok(outcome.exit)
}

async fn apply_objects(cluster: &Cluster, rendered: &Rendered) -> Result<(), ClusterError> {
    cluster.apply_config_map(&rendered.config_map).await?;
    if let Some(s) = &rendered.secret {
        cluster.apply_secret(s).await?;
    }
    for cm in &rendered.sql_config_maps {
        cluster.apply_config_map(cm).await?;
    }
    Ok(())
}

/// The module's `helpful_commands` output: kubectl commands to list the Jobs, read
/// each Job's logs and describe it.
fn helpful_commands(rendered: &Rendered, ns: &str, plan: &str) -> BTreeMap<String, String> {
    let mut c = BTreeMap::new();
    c.insert(
        "list_jobs".to_string(),
        format!(
            "kubectl get jobs -n {ns} -l {}={},{}={plan}",
            k8s::COMPONENT,
            k8s::COMPONENT_VALUE,
            k8s::PLAN
        ),
    );
    for j in &rendered.jobs {
        let key = key_prefix(&j.target).to_ascii_lowercase();
        let name = job_name(j);
        c.insert(
            format!("{key}_logs"),
            format!(
                "kubectl logs -n {ns} -l {}={name} --all-containers --prefix",
                k8s::JOB_NAME
            ),
        );
        c.insert(
            format!("{key}_describe"),
            format!("kubectl describe job {name} -n {ns}"),
        );
    }
    c
}

/// Ends the run: the summary, and the module's outputs (`migration_jobs_summary`,
/// `helpful_commands`); with `--no-wait` (no outcome) every Job counts as created.
fn finish(
    reporter: Reporter,
    session: &Session,
    ns: &str,
    outcome: Option<&Outcome>,
    commands: &BTreeMap<String, String>,
) {
    let results = outcome.map(|o| o.results.as_slice()).unwrap_or_default();
    let summary: BTreeMap<String, JobSummary> = session
        .rendered
        .jobs
        .iter()
        .map(|j| {
            let status = results
                .iter()
                .find(|r| r.target == j.target)
                .map_or("created", |r| r.status.word());
            (
                j.target.clone(),
                JobSummary {
                    job_name: job_name(j),
                    namespace: ns.to_string(),
                    status: status.to_string(),
                },
            )
        })
        .collect();
    let report = ApplyReport {
        plan: session.loaded.plan.metadata.name.as_str(),
        namespace: ns,
        run_id: &session.run_id,
        local: None,
        wait: Some(outcome.is_some()),
        duration_ms: None,
        targets: results.iter().map(TargetJson::of).collect(),
        migration_jobs_summary: Some(summary),
        helpful_commands: Some(commands),
        outcome,
    };
    reporter.finish(
        "apply",
        Some(&report),
        outcome.map_or(Exit::Ok, |o| o.exit),
        None,
    );
}
