//! `kubemigrate apply` on a cluster: the objects server-side applied, each Job
//! created when its dependencies succeeded, followed live, and reported.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::anyhow;
use kubemigrate_cluster::{Cluster, ClusterError, FollowOptions};
use kubemigrate_plan::values::Name;
use kubemigrate_render::{Rendered, key_prefix};

use crate::apply::cluster::ClusterRunner;
use crate::apply::report::{print_events, print_json};
use crate::apply::{ApplyEvent, TargetResult, job_name, run_jobs};
use crate::commands::apply::{Args, LocalRun, exit_of, print_summary, select_targets, usage};
use crate::commands::plan;
use crate::exit::{CommandResult, Exit, Failure};
use crate::reporter::Reporter;

fn cluster_failure(e: ClusterError) -> Failure {
    Failure::new(Exit::Cluster, anyhow!(e))
}

/// Runs `apply` against the cluster.
pub async fn run(args: Args, reporter: Reporter) -> CommandResult {
    let mut loaded = plan::load(&args.plan)?;
    super::apply::lint_before_apply(&loaded, args.skip_lint, reporter)?;
    let not_selected = select_targets(&mut loaded, &args.only)?;
    if let Some(ns) = &args.namespace {
        loaded.plan.metadata.namespace =
            Name::new(ns).map_err(|e| usage(format!("--namespace: {e}")))?;
    }
    let run_id = plan::run_id_or_random(args.run_id.as_deref())?;
    let (_, rendered) = plan::render(&loaded, run_id.clone(), None, false)?;
    let cluster = Cluster::connect(args.context.as_deref())
        .await
        .map_err(cluster_failure)?;
    let p = &loaded.plan;
    let ns = p.metadata.namespace.to_string();
    reporter.line(&format!(
        "applying plan {} in namespace {ns} (run {run_id})",
        p.metadata.name
    ));
    apply_objects(&cluster, &rendered)
        .await
        .map_err(cluster_failure)?;

    let commands = helpful_commands(&rendered, &ns, p.metadata.name.as_str());
    if args.no_wait {
        for j in &rendered.jobs {
            cluster.create_job(&j.job).await.map_err(cluster_failure)?;
            reporter.line(&format!("created Job {}", job_name(j)));
        }
        if rendered.jobs.iter().any(|j| !j.depends_on.is_empty()) {
            reporter.warn("--no-wait created every Job at once: dependsOn is not waited for");
        }
        let results: Vec<TargetResult> = Vec::new();
        finish(
            reporter,
            &rendered,
            &ns,
            &run_id,
            results,
            &commands,
            Exit::Ok,
            true,
        );
        return Ok(Exit::Ok);
    }

    let logs_dir = args
        .logs_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("kubemigrate-logs"))
        .join(&run_id);
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
    let names: Vec<String> = rendered.jobs.iter().map(|j| j.target.clone()).collect();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<ApplyEvent>();
    let started = std::time::Instant::now();
    let work = async {
        let (results, ()) = tokio::join!(
            run_jobs(&rendered.jobs, &runner, tx),
            print_events(rx, reporter, names)
        );
        results
    };
    let mut results = tokio::select! {
        results = work => results,
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
    for name in not_selected {
        results.push(TargetResult::not_selected(name));
    }
    let exit = exit_of(&results);
    let run = LocalRun {
        results,
        exit,
        run_id: run_id.clone(),
        duration: started.elapsed(),
        interruption: None,
    };
    if !reporter.json() {
        print_summary(&run, reporter);
    }
    finish(
        reporter,
        &rendered,
        &ns,
        &run_id,
        run.results,
        &commands,
        exit,
        false,
    );
    Ok(exit)
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
            "kubectl get jobs -n {ns} -l app.kubernetes.io/component=migrations,kubemigrate.io/plan={plan}"
        ),
    );
    for j in &rendered.jobs {
        let key = key_prefix(&j.target).to_ascii_lowercase();
        let name = job_name(j);
        c.insert(
            format!("{key}_logs"),
            format!("kubectl logs -n {ns} -l job-name={name} --all-containers --prefix"),
        );
        c.insert(
            format!("{key}_describe"),
            format!("kubectl describe job {name} -n {ns}"),
        );
    }
    c
}

/// Prints the end of a run: the module's outputs (`migration_jobs_summary`,
/// `helpful_commands`) in the JSON document, or the commands for people.
#[expect(
    clippy::too_many_arguments,
    reason = "one call site per mode; a struct would only rename the arguments"
)]
fn finish(
    reporter: Reporter,
    rendered: &Rendered,
    ns: &str,
    run_id: &str,
    results: Vec<TargetResult>,
    commands: &BTreeMap<String, String>,
    exit: Exit,
    no_wait: bool,
) {
    let summary: BTreeMap<String, serde_json::Value> = rendered
        .jobs
        .iter()
        .map(|j| {
            let status = results
                .iter()
                .find(|r| r.target == j.target)
                .map_or("created", |r| r.status.word());
            (
                j.target.clone(),
                serde_json::json!({"job_name": job_name(j), "namespace": ns, "status": status}),
            )
        })
        .collect();
    if reporter.json() {
        print_json(&serde_json::json!({
            "command": "apply",
            "ok": exit == Exit::Ok,
            "exit_code": exit.code(),
            "outcome": exit.name(),
            "plan": rendered.config_map.metadata.labels.as_ref()
                .and_then(|l| l.get("kubemigrate.io/plan")).cloned().unwrap_or_default(),
            "namespace": ns,
            "run_id": run_id,
            "wait": !no_wait,
            "targets": results,
            "migration_jobs_summary": summary,
            "helpful_commands": commands,
        }));
    } else {
        if no_wait {
            for (target, s) in &summary {
                reporter.line(&format!(
                    "{target}: Job {}",
                    s["job_name"].as_str().unwrap_or("")
                ));
            }
        }
        reporter.line("\nhelpful commands:");
        for (k, v) in commands {
            reporter.line(&format!("  {k}: {v}"));
        }
    }
}
