//! The real Kubernetes control plane for the cluster tests: etcd, kube-apiserver,
//! kube-controller-manager and kube-scheduler of the release pinned in
//! `tools/kube`, with kwok playing the kubelet of one node (`scripts/kube-up`).
//!
//! One control plane per test binary, started on first use and stopped by its
//! supervisor when the test process exits. Each test works in a namespace of its
//! own. A pod's scenario comes from the plan's labels
//! (`sim.kubemigrate.test/<target>: exit-3`, see `tools/kube/kwok-stages.yaml`); its
//! containers' logs from files per namespace (a kwok `ClusterLogs` object).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// A running control plane.
pub struct Kube {
    /// Its directory (certificates, logs, `env`, `kubeconfig`).
    pub dir: PathBuf,
    /// The admin's kubeconfig.
    pub kubeconfig: PathBuf,
    /// Where kubectl and the other binaries are.
    pub bin: PathBuf,
    /// The API server's URL.
    pub api_url: String,
    /// `v1.37.2`.
    pub version: String,
    /// With a real node (`kube-up --kubelet`): this machine's address that pods
    /// reach (the bridge's gateway).
    pub host_ip: Option<std::net::Ipv4Addr>,
    /// With a real node: the runner image imported into its containerd.
    pub runner_image: Option<String>,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The control plane shared by the tests of this binary.
pub fn kube() -> &'static Kube {
    static KUBE: OnceLock<Kube> = OnceLock::new();
    KUBE.get_or_init(|| Kube::start().expect("start the control plane"))
}

/// The control plane with a real node (`kube-up --kubelet`) shared by the tests of
/// this binary.
pub fn real_node() -> &'static Kube {
    static KUBE: OnceLock<Kube> = OnceLock::new();
    KUBE.get_or_init(|| Kube::start_with(&["--kubelet"]).expect("start a real node"))
}

impl Kube {
    /// Starts a control plane of its own (`scripts/kube-up`), stopped when this
    /// process exits or the value is dropped.
    pub fn start() -> Result<Kube, String> {
        Kube::start_with(&[])
    }

    /// As [`Kube::start`], with more arguments for `kube-up`.
    pub fn start_with(args: &[&str]) -> Result<Kube, String> {
        // kube-down deletes the directory, also when this process dies (its
        // supervisor does then): it is not a TempDir's to delete.
        let dir = tempfile::Builder::new()
            .prefix("kubemigrate-kube-")
            .tempdir()
            .map_err(|e| e.to_string())?
            .keep();
        let out = Command::new("bash")
            .arg(repo_root().join("scripts/kube-up"))
            .arg("--dir")
            .arg(&dir)
            .arg("--owner-pid")
            .arg(std::process::id().to_string())
            .args(args)
            .stdout(Stdio::inherit())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| format!("cannot run scripts/kube-up: {e}"))?;
        if !out.status.success() {
            // Empty when kube-up refused at once; else it holds the logs it kept.
            let _ = std::fs::remove_dir(&dir);
            return Err(format!(
                "scripts/kube-up failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let env = std::fs::read_to_string(dir.join("env")).map_err(|e| e.to_string())?;
        let get = |key: &str| -> String {
            env.lines()
                .find_map(|l| l.strip_prefix(&format!("{key}=")))
                .unwrap_or_default()
                .to_string()
        };
        Ok(Kube {
            kubeconfig: PathBuf::from(get("KUBECONFIG")),
            bin: PathBuf::from(get("KUBE_BIN")),
            api_url: get("KUBE_API_URL"),
            version: get("KUBE_VERSION"),
            host_ip: get("KUBE_HOST_IP").parse().ok(),
            runner_image: Some(get("KUBE_RUNNER_IMAGE")).filter(|i| !i.is_empty()),
            dir,
        })
    }

    /// Runs kubectl as the admin.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_in(args, None)
    }

    /// Runs kubectl as the admin with `stdin` as its input.
    pub fn kubectl_in(&self, args: &[&str], stdin: Option<&str>) -> Output {
        use std::io::Write as _;
        let mut child = Command::new(self.bin.join("kubectl"))
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kubectl");
        let mut input = child.stdin.take().expect("stdin");
        if let Some(s) = stdin {
            input.write_all(s.as_bytes()).expect("write to kubectl");
        }
        drop(input);
        child.wait_with_output().expect("wait for kubectl")
    }

    /// Runs kubectl and returns its stdout; panics when it fails.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `kubectl apply -f -` of `yaml`; panics when it fails.
    pub fn apply(&self, yaml: &str) {
        let out = self.kubectl_in(&["apply", "-f", "-"], Some(yaml));
        assert!(
            out.status.success(),
            "kubectl apply failed: {}\n{yaml}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A fresh namespace, with `labels`, and a log file per container name for
    /// the pods in it.
    pub fn namespace(&self, labels: &[(&str, &str)]) -> Namespace {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "t{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let labels: String = labels
            .iter()
            .map(|(k, v)| format!("    {k}: {v:?}\n"))
            .collect();
        self.apply(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n  labels:\n    kubemigrate.test/suite: cluster\n{labels}"
        ));
        let logs = tempfile::tempdir().expect("a directory for the logs");
        let ns = Namespace {
            name,
            logs,
            containers: ["wait-for-postgres", "install-runner", "run-migrations"],
        };
        if self.host_ip.is_none() {
            self.simulated_logs(&ns);
        }
        // Pods need the namespace's default ServiceAccount.
        let sa = "serviceaccount/default";
        for _ in 0..300 {
            if self.kubectl(&["get", sa, "-n", &ns.name]).status.success() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        ns
    }

    /// The files kwok serves as the logs of the containers in `ns`.
    fn simulated_logs(&self, ns: &Namespace) {
        for c in ns.containers {
            ns.set_log(c, &[]);
        }
        ns.set_log("other", &[]);
        let entries: String = ns
            .containers
            .iter()
            .map(|c| {
                format!(
                    "  - containers: [{c}]\n    logsFile: {}\n",
                    ns.log_file(c).display()
                )
            })
            .collect();
        self.apply(&format!(
            "apiVersion: kwok.x-k8s.io/v1alpha1\nkind: ClusterLogs\nmetadata: {{name: {n}}}\nspec:\n  selector: {{matchNamespaces: [{n}]}}\n  logs:\n{entries}  - logsFile: {other}\n",
            n = ns.name,
            other = ns.log_file("other").display()
        ));
    }

    /// A headless Service `name` in `ns` whose one endpoint is `ip`: the cluster
    /// DNS answers `name` (and `name.<ns>.svc.cluster.local`) with `ip`.
    pub fn service(&self, ns: &str, name: &str, ip: std::net::Ipv4Addr) {
        self.apply(&format!(
            "apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {ns}}}
spec:
  clusterIP: None
  ports: [{{name: pg, port: 5432}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: {name}-1
  namespace: {ns}
  labels: {{kubernetes.io/service-name: {name}}}
addressType: IPv4
ports: [{{name: pg, port: 5432}}]
endpoints: [{{addresses: [\"{ip}\"]}}]
"
        ));
    }

    /// Stops a component and starts it again (`kube-up --restart`); with
    /// `expire_watches`, etcd's history is compacted meanwhile, so that watches
    /// resumed from before get 410 Gone.
    pub fn restart(&self, component: &str, expire_watches: bool) {
        let out = Command::new("bash")
            .arg(repo_root().join("scripts/kube-up"))
            .arg("--dir")
            .arg(&self.dir)
            .args(["--restart", component])
            .args(expire_watches.then_some("--expire-watches"))
            .output()
            .expect("run kube-up --restart");
        assert!(
            out.status.success(),
            "restarting {component} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The last `lines` lines of a component's log (`logs/NAME.log`: `coredns`,
    /// `kubelet`, …), or why it cannot be read.
    pub fn log_tail(&self, component: &str, lines: usize) -> String {
        let path = self.dir.join(format!("logs/{component}.log"));
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let all: Vec<&str> = text.lines().collect();
                all[all.len().saturating_sub(lines)..].join("\n")
            }
            Err(e) => format!("({}: {e})", path.display()),
        }
    }

    /// The API server's audit log, one JSON document per request.
    pub fn audit(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.join("logs/audit.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl Drop for Kube {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(repo_root().join("scripts/kube-down"))
            .arg("--dir")
            .arg(&self.dir)
            .status();
    }
}

/// A test's namespace.
pub struct Namespace {
    /// Its name.
    pub name: String,
    logs: tempfile::TempDir,
    containers: [&'static str; 3],
}

impl Namespace {
    fn log_file(&self, container: &str) -> PathBuf {
        self.logs.path().join(format!("{container}.log"))
    }

    /// What every container named `container` prints in this namespace (written in
    /// the container runtime's log format, which kwok serves).
    pub fn set_log(&self, container: &str, lines: &[&str]) {
        let text: String = lines
            .iter()
            .map(|l| format!("2026-01-01T00:00:00.000000000Z stdout F {l}\n"))
            .collect();
        // Written aside and renamed: kwok may be reading the file.
        let tmp = self.logs.path().join(format!(".{container}.tmp"));
        std::fs::write(&tmp, text).expect("write a log file");
        std::fs::rename(&tmp, self.log_file(container)).expect("rename a log file");
    }
}
