//! Following a Job to its end: the watches on the Job, its pods and their events,
//! the log streams, and what they add up to ([`JobOutcome`]).

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use futures_util::StreamExt as _;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, LogParams};
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

use diagnose::{Diagnosis, Terminal};

use kubemigrate_contract::k8s;

use crate::{Cluster, ClusterError, diagnose};

/// How many of a container's last log lines an outcome keeps.
const LAST_LINES: usize = 20;

impl Cluster {
    /// Follows a created Job to its end. Reports, on `events`, each container as it
    /// starts, every log line, and each problem seen in pod statuses and events
    /// (once each). Returns how the Job ended.
    ///
    /// # Caveats
    /// No timeout of its own: wrap it in `tokio::time::timeout`. A Job that is
    /// deleted while followed ends as [`JobOutcome::Deleted`], never as success.
    /// Problems that cannot heal (an image that cannot be pulled, a missing
    /// Secret) end it after `options.fail_fast_after` as [`JobOutcome::CannotHeal`]
    /// unless they clear first; the Job itself is left running. Watch errors other
    /// than 403 and 404 are retried with backoff (a watch may expire on a long run).
    /// When the Job ends, the log streams get up to [`DRAIN`] to deliver their last
    /// lines; a stream silent for [`DRAIN_QUIET`] counts as done.
    pub async fn follow_job(
        &self,
        ns: &str,
        name: &str,
        options: &FollowOptions,
        events: UnboundedSender<ClusterEvent>,
    ) -> JobOutcome {
        let jobs: Api<Job> = Api::namespaced(self.client.clone(), ns);
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let mut job_stream = watcher(
            jobs,
            watcher::Config::default().fields(&format!("metadata.name={name}")),
        )
        .default_backoff()
        .boxed();
        let mut pod_stream = watcher(
            pods.clone(),
            watcher::Config::default().labels(&format!("{}={name}", k8s::JOB_NAME)),
        )
        .default_backoff()
        .boxed();
        let (lines_tx, mut lines_rx) = unbounded_channel::<(String, String, String)>();
        let (diag_tx, mut diag_rx) = unbounded_channel::<Diagnosis>();
        let mut tasks = Tasks {
            pods,
            logs: tokio::task::JoinSet::new(),
            event_watches: tokio::task::JoinSet::new(),
            lines_tx,
            diag_tx,
            events: events.clone(),
        };
        let mut st = Follow::default();
        // The Job's own events: the controller's FailedCreate when admission
        // refuses its pods.
        tasks
            .event_watches
            .spawn(self.watch_events(ns, "Job", name, tasks.diag_tx.clone()));
        let mut waiting = tokio::time::interval(options.report_waiting_every);
        waiting.tick().await;

        let outcome = loop {
            let fail_at = st
                .cannot_heal
                .as_ref()
                .and_then(|(at, _)| at.checked_add(options.fail_fast_after));
            tokio::select! {
                ev = job_stream.next() => match ev {
                    Some(Ok(watcher::Event::Init)) => st.seen_job = false,
                    Some(Ok(watcher::Event::Apply(j) | watcher::Event::InitApply(j))) => {
                        st.seen_job = true;
                        if let Some(t) = diagnose::job_terminal(&j) {
                            break Some(t);
                        }
                    }
                    // A finished Job deleted by its TTL still ended as it did.
                    Some(Ok(watcher::Event::Delete(j))) => break diagnose::job_terminal(&j),
                    Some(Ok(watcher::Event::InitDone)) if !st.seen_job => break None,
                    Some(Ok(watcher::Event::InitDone)) => {}
                    Some(Err(e)) => {
                        if let Some(fatal) = fatal_watch_error(ns, "jobs", e) {
                            return JobOutcome::Error(fatal);
                        }
                    }
                    None => return JobOutcome::Error(ClusterError::Api {
                        what: format!("watching Job {ns}/{name}"),
                        message: "the watch ended".into(),
                        code: 0,
                    }),
                },
                ev = pod_stream.next() => match ev {
                    Some(Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p))) => {
                        self.on_pod(ns, &p, &mut st, &mut tasks);
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        if let Some(fatal) = fatal_watch_error(ns, "pods", e) {
                            return JobOutcome::Error(fatal);
                        }
                    }
                    None => {}
                },
                Some((pod, c, line)) = lines_rx.recv() => st.line(pod, c, line, &events),
                Some(d) = diag_rx.recv() => {
                    // An event's problem that cannot heal (the controller cannot
                    // create the pods) fails the Job as a pod's would; it clears when
                    // a pod appears.
                    if d.cannot_heal() && st.cannot_heal.is_none() {
                        st.cannot_heal = Some((tokio::time::Instant::now(), d.clone()));
                        st.cannot_heal_pod = None;
                    }
                    if st.reported.insert(format!("event/{}", d.dedup_key())) {
                        let _ = events.send(ClusterEvent::Problem { pod: String::new(), diagnosis: d });
                    }
                }
                _ = waiting.tick() => {
                    if let Some(pod) = &st.waiting_for_db {
                        let last = st
                            .last_lines
                            .get(&format!("{pod}/wait-for-postgres"))
                            .and_then(|l| l.back().cloned())
                            .unwrap_or_default();
                        let _ = events.send(ClusterEvent::StillWaitingForDatabase { last_line: last });
                    }
                }
                _ = async {
                    match fail_at {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending::<()>().await,
                    }
                } => {
                    if let Some((_, d)) = st.cannot_heal.take() {
                        return JobOutcome::CannotHeal(d);
                    }
                }
            }
        };

        // The Job has ended (or is gone). Take the pod updates already delivered (the
        // failed container's exit code may be among them), start a read of any
        // container whose log has not been streamed, then let the streams finish.
        while let Some(Some(Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)))) =
            futures_util::FutureExt::now_or_never(pod_stream.next())
        {
            self.on_pod(ns, &p, &mut st, &mut tasks);
        }
        // Watches of different resources are not ordered: a failed Job may be seen
        // before the pod status that says which container failed with which code.
        // Wait a little for it.
        if matches!(outcome, Some(Terminal::Failed { .. })) && st.last_failure.is_none() {
            let wait = async {
                while st.last_failure.is_none() {
                    match pod_stream.next().await {
                        Some(Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p))) => {
                            self.on_pod(ns, &p, &mut st, &mut tasks);
                        }
                        Some(_) => {}
                        None => break,
                    }
                }
            };
            let _ = tokio::time::timeout(POD_STATUS_GRACE, wait).await;
        }
        drop(tasks.lines_tx);
        // The log streams end when their containers have ended (a kubelet ends a
        // followed log then). Wait for that, but not for a stream that stays open
        // and silent: stop once no line has come for DRAIN_QUIET, and after DRAIN
        // in any case.
        let drain = async {
            loop {
                tokio::select! {
                    next = tasks.logs.join_next() => if next.is_none() { break },
                    line = lines_rx.recv() => match line {
                        Some((pod, c, line)) => st.line(pod, c, line, &events),
                        None => break,
                    },
                    () = tokio::time::sleep(DRAIN_QUIET) => break,
                }
            }
        };
        let _ = tokio::time::timeout(DRAIN, drain).await;
        tasks.logs.abort_all();
        while let Ok((pod, c, line)) = lines_rx.try_recv() {
            st.line(pod, c, line, &events);
        }
        let lines = st
            .last_failure
            .as_ref()
            .and_then(|(p, c, _)| st.last_lines.get(&format!("{p}/{c}")))
            .map(|l| l.iter().cloned().collect())
            .unwrap_or_default();
        match outcome {
            Some(Terminal::Complete) => JobOutcome::Complete,
            Some(Terminal::Failed { reason, message }) => JobOutcome::Failed {
                reason,
                message,
                container: st.last_failure.as_ref().map(|f| f.1.clone()),
                exit_code: st.last_failure.as_ref().map(|f| f.2),
                last_lines: lines,
            },
            None => JobOutcome::Deleted,
        }
    }

    /// A pod's new status: start its event watch and its containers' logs, note a
    /// failed container, report problems, and forget problems that cleared.
    fn on_pod(&self, ns: &str, p: &Pod, st: &mut Follow, tasks: &mut Tasks) {
        let Tasks {
            pods,
            logs,
            event_watches,
            lines_tx,
            diag_tx,
            events,
        } = tasks;
        let pod_name = p.metadata.name.clone().unwrap_or_default();
        if st.watching_events.insert(pod_name.clone()) {
            event_watches.spawn(self.watch_events(ns, "Pod", &pod_name, diag_tx.clone()));
        }
        for c in diagnose::started_containers(p) {
            if st.streaming.insert((pod_name.clone(), c.clone())) {
                let _ = events.send(ClusterEvent::ContainerStarted {
                    pod: pod_name.clone(),
                    container: c.clone(),
                });
                logs.spawn(stream_log(
                    pods.clone(),
                    pod_name.clone(),
                    c,
                    lines_tx.clone(),
                    events.clone(),
                ));
            }
        }
        if let Some((c, code, _)) = diagnose::failed_container(p) {
            st.last_failure = Some((pod_name.clone(), c, code));
        }
        st.waiting_for_db = running_wait(p).then(|| pod_name.clone());
        let found = diagnose::diagnose_pod(p);
        // A problem that cannot heal and has cleared (the image was pulled after
        // all, the Secret appeared) no longer fails the target.
        if let Some((_, d)) = &st.cannot_heal
            && match &st.cannot_heal_pod {
                Some(p) => *p == pod_name && !found.contains(d),
                // Seen in an event: the pods could not be created, and now one is.
                None => matches!(d, Diagnosis::PodsNotCreated { .. }),
            }
        {
            st.cannot_heal = None;
            st.cannot_heal_pod = None;
        }
        for d in found {
            if d.cannot_heal() && st.cannot_heal.is_none() {
                st.cannot_heal = Some((tokio::time::Instant::now(), d.clone()));
                st.cannot_heal_pod = Some(pod_name.clone());
            }
            if st.reported.insert(format!("{pod_name}/{}", d.dedup_key())) {
                let _ = events.send(ClusterEvent::Problem {
                    pod: pod_name.clone(),
                    diagnosis: d,
                });
            }
        }
    }

    /// Watches the events about one object and sends the problems they name.
    fn watch_events(
        &self,
        ns: &str,
        kind: &str,
        name: &str,
        tx: UnboundedSender<Diagnosis>,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let api: Api<Event> = Api::namespaced(self.client.clone(), ns);
        let cfg = watcher::Config::default().fields(&format!(
            "involvedObject.kind={kind},involvedObject.name={name}"
        ));
        async move {
            let mut stream = watcher(api, cfg).default_backoff().boxed();
            while let Some(ev) = stream.next().await {
                if let Ok(watcher::Event::Apply(ev) | watcher::Event::InitApply(ev)) = ev
                    && let Some(d) = diagnose::diagnose_event(&ev)
                    && tx.send(d).is_err()
                {
                    break;
                }
            }
        }
    }
}

/// The tasks one [`Cluster::follow_job`] starts, and the channels they send on.
/// Dropping it aborts the tasks (a `JoinSet` aborts its tasks when dropped).
struct Tasks {
    /// The Job's pods, for their logs.
    pods: Api<Pod>,
    /// One log stream per started container.
    logs: tokio::task::JoinSet<()>,
    /// One event watch for the Job and one per pod.
    event_watches: tokio::task::JoinSet<()>,
    /// Where the log streams send (pod, container, line).
    lines_tx: UnboundedSender<(String, String, String)>,
    /// Where the event watches send what they diagnose.
    diag_tx: UnboundedSender<Diagnosis>,
    /// The caller's events.
    events: UnboundedSender<ClusterEvent>,
}

/// What [`Cluster::follow_job`] has seen so far.
#[derive(Default)]
struct Follow {
    seen_job: bool,
    streaming: HashSet<(String, String)>,
    watching_events: HashSet<String>,
    reported: HashSet<String>,
    last_lines: HashMap<String, VecDeque<String>>,
    /// The last failed container: (pod, container, exit code).
    last_failure: Option<(String, String, i32)>,
    cannot_heal: Option<(tokio::time::Instant, Diagnosis)>,
    /// The pod whose status showed `cannot_heal`; `None` when an event did.
    cannot_heal_pod: Option<String>,
    waiting_for_db: Option<String>,
}

impl Follow {
    fn line(
        &mut self,
        pod: String,
        container: String,
        line: String,
        events: &UnboundedSender<ClusterEvent>,
    ) {
        push_line(&mut self.last_lines, &format!("{pod}/{container}"), &line);
        let _ = events.send(ClusterEvent::Log {
            pod,
            container,
            line,
        });
    }
}

/// How long a failed Job's pod status gets to arrive after the Job's condition.
pub const POD_STATUS_GRACE: Duration = Duration::from_secs(2);

/// How long the log streams of a finished Job get to deliver their last lines.
pub const DRAIN: Duration = Duration::from_secs(3);

/// How long a finished Job's log streams may stay silent before they count as
/// done. A kubelet ends a followed log once its container has ended; a stream
/// still open and silent this long after the Job's end has nothing more to say.
pub const DRAIN_QUIET: Duration = Duration::from_millis(500);

fn push_line(last: &mut HashMap<String, VecDeque<String>>, key: &str, line: &str) {
    let buf = last.entry(key.to_string()).or_default();
    if buf.len() == LAST_LINES {
        buf.pop_front();
    }
    buf.push_back(line.to_string());
}

/// Whether the pod's `wait-for-postgres` init container is running.
fn running_wait(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.init_container_statuses.as_ref())
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.name == k8s::WAIT_FOR_POSTGRES
                    && c.state.as_ref().is_some_and(|s| s.running.is_some())
            })
        })
}

/// Streams a container's log line by line (invalid UTF-8 replaced, never cut short);
/// a stream that cannot be opened or breaks is reported as a problem.
async fn stream_log(
    pods: Api<Pod>,
    pod: String,
    container: String,
    tx: UnboundedSender<(String, String, String)>,
    events: UnboundedSender<ClusterEvent>,
) {
    let params = LogParams {
        container: Some(container.clone()),
        follow: true,
        ..Default::default()
    };
    let problem = |message: String| {
        let _ = events.send(ClusterEvent::Problem {
            pod: pod.clone(),
            diagnosis: Diagnosis::LogUnavailable {
                container: container.clone(),
                message,
            },
        });
    };
    let mut stream = match pods.log_stream(&pod, &params).await {
        Ok(s) => Box::pin(s),
        Err(e) => {
            problem(ClusterError::of("reading the log", e).to_string());
            return;
        }
    };
    let mut send = |line: String| tx.send((pod.clone(), container.clone(), line)).is_ok();
    if let Err(e) = read_lines(&mut stream, &mut send).await {
        problem(e.to_string());
    }
}

/// Reads a log line by line into `line` until it ends or `line` returns false.
/// Invalid UTF-8 is replaced, never a reason to stop.
pub(crate) async fn read_lines(
    stream: &mut (impl futures_util::AsyncBufRead + Unpin),
    line: &mut (dyn FnMut(String) -> bool + Send),
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    loop {
        buf.clear();
        if futures_util::AsyncBufReadExt::read_until(stream, b'\n', &mut buf).await? == 0 {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&buf);
        if !line(text.trim_end_matches(['\n', '\r']).to_string()) {
            return Ok(());
        }
    }
}

/// A watch error that retrying cannot fix (403, 404), as a [`ClusterError`];
/// `None` for the others, which the watcher's backoff retries.
fn fatal_watch_error(ns: &str, what: &str, e: watcher::Error) -> Option<ClusterError> {
    let code = match &e {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s))
        | watcher::Error::WatchFailed(kube::Error::Api(s)) => s.code,
        _ => 0,
    };
    matches!(code, 403 | 404).then(|| watch_error(ns, what, e))
}

fn watch_error(ns: &str, what: &str, e: watcher::Error) -> ClusterError {
    match e {
        watcher::Error::InitialListFailed(e)
        | watcher::Error::WatchStartFailed(e)
        | watcher::Error::WatchFailed(e) => ClusterError::of(format!("watching {what} in {ns}"), e),
        other => ClusterError::Api {
            what: format!("watching {what} in {ns}"),
            message: other.to_string(),
            code: 0,
        },
    }
}

/// How [`Cluster::follow_job`] behaves.
#[derive(Debug, Clone)]
pub struct FollowOptions {
    /// How long a problem that cannot heal may last before the target fails.
    pub fail_fast_after: Duration,
    /// How often to repeat that `wait-for-postgres` is still waiting.
    pub report_waiting_every: Duration,
}

impl Default for FollowOptions {
    fn default() -> Self {
        FollowOptions {
            fail_fast_after: Duration::from_secs(60),
            report_waiting_every: Duration::from_secs(30),
        }
    }
}

/// What happens while a Job runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterEvent {
    /// A container started (or finished before it was seen running).
    ContainerStarted {
        /// The pod.
        pod: String,
        /// The container.
        container: String,
    },
    /// A log line.
    Log {
        /// The pod.
        pod: String,
        /// The container.
        container: String,
        /// The line.
        line: String,
    },
    /// A problem, reported once.
    Problem {
        /// The pod (empty when the problem came from an event).
        pod: String,
        /// What is wrong.
        diagnosis: Diagnosis,
    },
    /// `wait-for-postgres` is still waiting; its last line.
    StillWaitingForDatabase {
        /// The last line it printed.
        last_line: String,
    },
}

/// How following a Job ended.
#[derive(Debug)]
pub enum JobOutcome {
    /// Condition `Complete`.
    Complete,
    /// Condition `Failed` or `FailureTarget`.
    Failed {
        /// `BackoffLimitExceeded`, `DeadlineExceeded`, `PodFailurePolicy`…
        reason: String,
        /// The condition's message.
        message: String,
        /// The last failed container.
        container: Option<String>,
        /// Its exit code.
        exit_code: Option<i32>,
        /// Its last log lines.
        last_lines: Vec<String>,
    },
    /// A problem that cannot heal lasted longer than the grace period.
    CannotHeal(Diagnosis),
    /// The Job disappeared while it was followed.
    Deleted,
    /// The API server refused or could not be reached.
    Error(ClusterError),
}
