//! Runs a rendered Job on this machine: its containers in order, as processes, with
//! the environment the Job gives them (from the rendered ConfigMap and Secret) and
//! the image paths mapped to local ones. The Job's own commands run, so a local run
//! checks the same contract a cluster run uses.
//!
//! What differs from a cluster: `install-runner` is not needed (the runner binary is
//! this one), a failed pod is not retried (`backoffLimit` is a cluster setting), and
//! the process inherits this machine's environment (PATH, HOME…) apart from any
//! connection variable, which comes only from the Job.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, EnvVar};
use kubemigrate_render::{COPIED_BINARY, RUNNER_BINARY, Rendered, TargetJob};
use tokio::io::{AsyncBufReadExt as _, BufReader};

use tokio::sync::mpsc::UnboundedSender;

use super::children::{Children, signal_group, signal_name};
use super::{ApplyEvent, Reason, Status, TargetResult, TargetRunner, job_name};
use crate::exit::Exit;
use kubemigrate_contract::k8s;

/// Expands `$(VAR)` from `vars` as the kubelet does: `$$` is a literal `$`, a
/// reference to an undefined variable stays as written, and expanded text is not
/// expanded again.
pub fn expand(value: &str, vars: &[(String, String)]) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
            && let Some((_, val)) = vars.iter().rev().find(|(k, _)| *k == inner[..end])
        {
            out.push_str(val);
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Sends SIGTERM to a process group when dropped (a timed-out target's command and
/// everything it started, such as npm's node), unless disarmed. The group stays
/// registered, so the end of the run (or the watchdog) sends SIGKILL to what is left.
struct GroupGuard<'a> {
    pgid: Option<u32>,
    children: &'a Children,
}

impl GroupGuard<'_> {
    /// The group's leader was reaped: nothing to stop.
    fn disarm(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            self.children.unregister(pgid);
        }
    }
}

impl Drop for GroupGuard<'_> {
    fn drop(&mut self) {
        if let Some(pgid) = self.pgid {
            signal_group(pgid, libc::SIGTERM);
        }
    }
}

/// How long past the plan's timeout a local target may run, for its processes to
/// say why they stopped, before it fails with `DeadlineExceeded`.
pub const DEADLINE_GRACE: Duration = Duration::from_secs(5);

/// How many of a failed container's last lines a result keeps.
const LAST_LINES: usize = 10;

/// Where one target's image paths are on this machine.
#[derive(Debug, Clone, Default)]
pub struct TargetPaths {
    /// Image path → local path (`/migrations` → `examples/ananta/components-v2`).
    pub mounts: Vec<(String, PathBuf)>,
    /// The working directory of its containers.
    pub workdir: Option<PathBuf>,
    /// Whether `run-migrations` is kubemigrate's engine, whose exit codes have the
    /// meanings of docs/exit-codes.md (not a command's or psql's own codes).
    pub runner_codes: bool,
}

/// Why a container failed.
struct ContainerFailure {
    code: Option<i32>,
    meaning: Option<&'static str>,
    reason: Reason,
    last: Vec<String>,
}

impl ContainerFailure {
    fn new(reason: Reason) -> ContainerFailure {
        ContainerFailure {
            code: None,
            meaning: None,
            reason,
            last: Vec::new(),
        }
    }

    /// A container that could not run at all.
    fn not_run(message: String) -> ContainerFailure {
        ContainerFailure::new(Reason::ContainerNotRun { message })
    }
}

/// What a local run of a target whose databases are in a cluster object can do.
const LIST_HINT: &str = "; to run it here, list the databases in the plan (databases: [...])";

/// Runs Jobs as local processes.
pub struct LocalRunner {
    config: BTreeMap<String, String>,
    /// The rendered ConfigMap's name: a reference to another one cannot be read locally.
    config_name: String,
    secret: BTreeMap<String, String>,
    binary: PathBuf,
    paths: BTreeMap<String, TargetPaths>,
    /// The plan's timeout (each target gets it, plus [`DEADLINE_GRACE`]).
    timeout: Duration,
    children: Children,
}

impl LocalRunner {
    /// A runner for the objects of `rendered`. `binary` is what the runner image's
    /// `/kubemigrate` stands for (this executable); `paths` maps each target's image
    /// paths; `timeout` (the plan's) bounds each target, as `activeDeadlineSeconds`
    /// does; `children` keeps the containers' process groups.
    pub fn new(
        rendered: &Rendered,
        binary: PathBuf,
        paths: BTreeMap<String, TargetPaths>,
        timeout: Duration,
        children: Children,
    ) -> LocalRunner {
        LocalRunner {
            config: rendered.config_map.data.clone().unwrap_or_default(),
            config_name: rendered
                .config_map
                .metadata
                .name
                .clone()
                .unwrap_or_default(),
            secret: rendered
                .secret
                .as_ref()
                .and_then(|s| s.string_data.clone())
                .unwrap_or_default(),
            binary,
            paths,
            timeout,
            children,
        }
    }

    /// The process groups of the running containers.
    pub fn children(&self) -> &Children {
        &self.children
    }

    /// A container's environment, resolved as the kubelet does: `configMapKeyRef`
    /// and `secretKeyRef` from the rendered objects, `$(VAR)` from earlier entries.
    fn env(&self, vars: &[EnvVar]) -> Result<Vec<(String, String)>, String> {
        let mut out: Vec<(String, String)> = Vec::new();
        for v in vars {
            let value = match &v.value_from {
                Some(from) => {
                    if let Some(r) = &from.config_map_key_ref {
                        if r.name != self.config_name {
                            return Err(format!(
                                "{}: the key {} of the existing ConfigMap {} cannot be read \
                                 locally{}",
                                v.name, r.key, r.name, LIST_HINT
                            ));
                        }
                        self.config.get(&r.key).cloned().ok_or_else(|| {
                            format!("{}: ConfigMap {} has no key {}", v.name, r.name, r.key)
                        })?
                    } else if let Some(r) = &from.secret_key_ref {
                        match self.secret.get(&r.key) {
                            Some(value) => value.clone(),
                            None if v.name == kubemigrate_contract::env::DATABASES => {
                                return Err(format!(
                                    "{}: the key {} of the existing Secret {} cannot be read \
                                     locally{LIST_HINT}",
                                    v.name, r.key, r.name
                                ));
                            }
                            None if v.name == kubemigrate_contract::env::DATABASE_URLS => {
                                return Err(format!(
                                    "{}: the key {} of the existing Secret {} cannot be read \
                                     locally; to run it here, give the URLs to `kubemigrate sql \
                                     migrate --database-url-file FILE`",
                                    v.name, r.key, r.name
                                ));
                            }
                            None => {
                                return Err(format!(
                                    "{}: the key {} of the existing Secret {} cannot be read \
                                     locally; give the target's connection with --db",
                                    v.name, r.key, r.name
                                ));
                            }
                        }
                    } else {
                        return Err(format!("{}: unsupported valueFrom", v.name));
                    }
                }
                None => expand(v.value.as_deref().unwrap_or_default(), &out),
            };
            out.push((v.name.clone(), value));
        }
        Ok(out)
    }

    fn map(&self, target: &str, arg: &str) -> String {
        if arg == RUNNER_BINARY || arg == COPIED_BINARY {
            return self.binary.display().to_string();
        }
        if let Some(paths) = self.paths.get(target) {
            for (image_path, local) in &paths.mounts {
                if arg == image_path {
                    return local.display().to_string();
                }
                if let Some(rest) = arg.strip_prefix(&format!("{image_path}/")) {
                    return local.join(rest).display().to_string();
                }
            }
        }
        arg.to_string()
    }

    async fn run_container(
        &self,
        target: &str,
        c: &Container,
        events: &UnboundedSender<ApplyEvent>,
    ) -> Result<(), ContainerFailure> {
        let env = self
            .env(c.env.as_deref().unwrap_or_default())
            .map_err(ContainerFailure::not_run)?;
        // The kubelet expands $(VAR) in the command and arguments too.
        let command: Vec<String> = c
            .command
            .iter()
            .flatten()
            .chain(c.args.iter().flatten())
            .map(|a| self.map(target, &expand(a, &env)))
            .collect();
        let Some((program, args)) = command.split_first() else {
            return Err(ContainerFailure::not_run(format!(
                "{} has no command",
                c.name
            )));
        };
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        for var in kubemigrate_contract::env::scrubbed() {
            cmd.env_remove(var);
        }
        for (k, v) in env {
            let v = self.map(target, &v);
            cmd.env(k, v);
        }
        if let Some(dir) = self.paths.get(target).and_then(|p| p.workdir.as_ref()) {
            cmd.current_dir(dir);
        }
        let _ = events.send(ApplyEvent::Container {
            target: target.to_string(),
            container: c.name.clone(),
        });
        let mut child = cmd.spawn().map_err(|e| {
            ContainerFailure::not_run(format!("{} cannot start {program}: {e}", c.name))
        })?;
        if let Some(pgid) = child.id() {
            self.children.register(pgid, target);
            // A signal that came between the last check and the start: this group
            // was not there to get it.
            if let Some(sig) = self.children.interrupted() {
                signal_group(pgid, sig);
            }
        }
        let mut group = GroupGuard {
            pgid: child.id(),
            children: &self.children,
        };
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let pump = |stream: Option<Box<dyn tokio::io::AsyncRead + Unpin + Send>>| {
            let tx = tx.clone();
            tokio::spawn(async move {
                // Invalid UTF-8 is replaced, never a reason to stop reading (which
                // would close the pipe under the process).
                if let Some(s) = stream {
                    let mut reader = BufReader::new(s);
                    let mut buf = Vec::new();
                    loop {
                        buf.clear();
                        match reader.read_until(b'\n', &mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(_) => {
                                let text = String::from_utf8_lossy(&buf);
                                let _ = tx.send(text.trim_end_matches(['\n', '\r']).to_string());
                            }
                        }
                    }
                }
            })
        };
        let a = pump(stdout.map(|s| Box::new(s) as _));
        let b = pump(stderr.map(|s| Box::new(s) as _));
        drop(tx);
        let mut last: Vec<String> = Vec::new();
        while let Some(line) = rx.recv().await {
            if last.len() == LAST_LINES {
                last.remove(0);
            }
            last.push(line.clone());
            let _ = events.send(ApplyEvent::Log {
                target: target.to_string(),
                container: c.name.clone(),
                line,
            });
        }
        let _ = (a.await, b.await);
        let status = child
            .wait()
            .await
            .map_err(|e| ContainerFailure::not_run(format!("{}: {e}", c.name)))?;
        group.disarm();
        match status.code() {
            Some(0) => Ok(()),
            Some(code) => {
                let ours = c.name != k8s::RUN_MIGRATIONS
                    || self.paths.get(target).is_some_and(|p| p.runner_codes);
                let meaning = Exit::runner_meaning(code).filter(|_| ours);
                Err(ContainerFailure {
                    code: Some(code),
                    meaning,
                    reason: Reason::ContainerExited {
                        container: c.name.clone(),
                        code,
                    },
                    last,
                })
            }
            None => Err(ContainerFailure {
                last,
                ..ContainerFailure::new(Reason::ContainerKilled {
                    container: c.name.clone(),
                })
            }),
        }
    }

    async fn run_job(&self, job: &TargetJob, events: UnboundedSender<ApplyEvent>) -> TargetResult {
        let mut result = TargetResult::new(job.target.clone(), job_name(job), Status::Succeeded);
        if let Some(sig) = self.children.interrupted() {
            result.status = Status::Skipped;
            result.reason = Some(Reason::NotStarted {
                signal: signal_name(sig),
            });
            return result;
        }
        let Some(pod) = job.job.spec.as_ref().and_then(|s| s.template.spec.as_ref()) else {
            result.status = Status::Failed;
            result.reason = Some(Reason::NoPodTemplate);
            return result;
        };
        let containers = pod
            .init_containers
            .iter()
            .flatten()
            .chain(pod.containers.iter())
            // The runner binary is this executable: nothing to install.
            .filter(|c| c.name != k8s::INSTALL_RUNNER);
        let run = async {
            for c in containers {
                // An interrupted run starts no other container.
                if let Some(sig) = self.children.interrupted() {
                    return Err((
                        c.name.clone(),
                        ContainerFailure::new(Reason::StoppedBefore {
                            signal: signal_name(sig),
                            container: c.name.clone(),
                        }),
                    ));
                }
                if let Err(f) = self.run_container(&job.target, c, &events).await {
                    return Err((c.name.clone(), f));
                }
            }
            Ok(())
        };
        match tokio::time::timeout(self.timeout + DEADLINE_GRACE, run).await {
            Ok(Ok(())) => {}
            Ok(Err((container, f))) => {
                result.status = Status::Failed;
                if self.children.interrupted().is_some() {
                    result.status = Status::Interrupted;
                }
                result.reason = Some(match (self.children.interrupted(), f.reason) {
                    (Some(sig), reason) if !matches!(reason, Reason::StoppedBefore { .. }) => {
                        Reason::StoppedWhile {
                            signal: signal_name(sig),
                            container: container.clone(),
                        }
                    }
                    (_, reason) => reason,
                });
                result.container = Some(container);
                result.exit_code = f.code;
                result.meaning = f.meaning;
                result.last_lines = f.last;
            }
            Err(_) => {
                result.status = Status::Failed;
                result.reason = Some(Reason::LocalDeadline {
                    timeout: self.timeout,
                    grace: DEADLINE_GRACE,
                });
            }
        }
        result
    }
}

impl TargetRunner for LocalRunner {
    fn run<'a>(
        &'a self,
        job: &'a TargetJob,
        events: UnboundedSender<ApplyEvent>,
    ) -> Pin<Box<dyn Future<Output = TargetResult> + 'a>> {
        Box::pin(self.run_job(job, events))
    }
}

#[cfg(test)]
mod tests {
    use super::expand;

    #[test]
    fn expansion_follows_the_kubelet() {
        let vars = vec![
            ("DB_HOST".to_string(), "db".to_string()),
            ("X".to_string(), "$(DB_HOST)".to_string()),
        ];
        assert_eq!(expand("$(DB_HOST):5432", &vars), "db:5432");
        assert_eq!(expand("$$(DB_HOST)", &vars), "$(DB_HOST)");
        assert_eq!(expand("$(NOPE) $5 $", &vars), "$(NOPE) $5 $");
        assert_eq!(expand("$(X)", &vars), "$(DB_HOST)", "not expanded twice");
    }
}
