//! A throwaway PostgreSQL server started from the system's own binaries.
//!
//! [`LocalPostgres::start`] finds `initdb` and `postgres` (on `PATH`, in
//! `KUBEMIGRATE_PG_BIN`, or under `/usr/lib/postgresql/*/bin`), initialises a
//! cluster in a fresh temporary directory, and starts it on a free loopback port
//! with password authentication. PostgreSQL refuses to run as root, so when this
//! process is root the server runs as the `postgres` user (or `nobody`).
//!
//! # Caveats
//! The server is supervised by a small shell process that reads a pipe from this
//! process. When this process exits for any reason (even `SIGKILL`) the pipe
//! closes and the supervisor stops the server (fast shutdown) and deletes its
//! directory. Dropping [`LocalPostgres`] does the same and waits for it.
//!
//! # Who uses it
//! It is part of the shipped binary, not only of the tests: `kubemigrate demo` runs
//! its plan against one, and `sql lint --trace` replays migrations in one to record
//! the locks they take. The tests use it too, with [`Options`],
//! [`LocalPostgres::stop_fast`], [`LocalPostgres::restart`] and
//! [`LocalPostgres::log`] besides. It needs only the standard library, `thiserror`
//! and `getrandom` (both linked anyway), resolves no host names, and reads
//! `/etc/passwd` itself, so it adds nothing to the static runner's needs.

use std::fs;
use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Why the throwaway server could not be started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No PostgreSQL server binaries were found.
    #[error(
        "no PostgreSQL server binaries found (looked for initdb on PATH, in KUBEMIGRATE_PG_BIN and under /usr/lib/postgresql/*/bin); install them, e.g. `apt-get install postgresql`"
    )]
    NotInstalled,
    /// A file or process operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: io::Error,
    },
    /// `initdb` failed.
    #[error("initdb failed: {0}")]
    Initdb(String),
    /// The server did not become ready.
    #[error("the PostgreSQL server did not start: {0}")]
    Start(String),
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
    let context = context.into();
    move |source| Error::Io { context, source }
}

/// How to start the server.
#[derive(Debug, Clone)]
pub struct Options {
    /// Turn off fsync and synchronous commit: much faster, unsafe for real data.
    pub fast_unsafe: bool,
    /// `max_connections` of the server.
    pub max_connections: u32,
    /// How long to wait for the server to accept connections.
    pub start_timeout: Duration,
    /// An address to listen on besides 127.0.0.1 (for clients on another network
    /// of this machine, such as pods on a bridge whose gateway it is). Clients
    /// from the networks this machine is directly on may then connect, with the
    /// password.
    pub also_listen_on: Option<Ipv4Addr>,
    /// The port, when the caller has chosen one (a client configured before the
    /// server starts); default: a free one.
    pub port: Option<u16>,
    /// The superuser's password; default: a random one.
    pub password: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            fast_unsafe: true,
            max_connections: 200,
            start_timeout: Duration::from_secs(60),
            also_listen_on: None,
            port: None,
            password: None,
        }
    }
}

/// A running throwaway PostgreSQL server. Stopped and deleted on drop.
#[derive(Debug)]
pub struct LocalPostgres {
    port: u16,
    password: String,
    root: PathBuf,
    bin_dir: PathBuf,
    supervisor: Option<Child>,
    stdin: Option<ChildStdin>,
    options: Options,
    run_as: Option<(u32, u32)>,
}

/// The superuser name of every throwaway server.
pub const SUPERUSER: &str = "postgres";

impl LocalPostgres {
    /// Initialises and starts a server with default [`Options`].
    ///
    /// # Errors
    /// [`Error::NotInstalled`] when no binaries are found; otherwise an error
    /// naming the step that failed, with the server's own message.
    pub fn start() -> Result<Self, Error> {
        Self::start_with(Options::default())
    }

    /// Initialises and starts a server.
    ///
    /// # Errors
    /// As [`LocalPostgres::start`].
    pub fn start_with(options: Options) -> Result<Self, Error> {
        let bin_dir = find_bin_dir().ok_or(Error::NotInstalled)?;
        let run_as = if running_as_root() {
            Some(unprivileged_user()?)
        } else {
            None
        };
        let root = make_root_dir(run_as)?;
        let password = options.password.clone().unwrap_or_else(random_token);
        let mut server = LocalPostgres {
            port: 0,
            password,
            root,
            bin_dir,
            supervisor: None,
            stdin: None,
            options,
            run_as,
        };
        // On any error below, dropping `server` removes the directory.
        server.initdb()?;
        server.launch()?;
        Ok(server)
    }

    /// The TCP port the server listens on (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The superuser's password (random for each server).
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The directory holding the server's binaries.
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// A `postgres://` URL for database `dbname` as the superuser.
    pub fn url(&self, dbname: &str) -> String {
        format!(
            "postgres://{SUPERUSER}:{}@127.0.0.1:{}/{dbname}",
            self.password, self.port
        )
    }

    /// The server's log so far (for diagnosing a failed test).
    pub fn log(&self) -> String {
        fs::read_to_string(self.root.join("server.log")).unwrap_or_default()
    }

    /// Stops the server with a fast shutdown (as `pg_ctl stop -m fast`), keeping
    /// its data, so that [`LocalPostgres::restart`] can start it again.
    ///
    /// # Errors
    /// When the server's process cannot be signalled or waited for.
    pub fn stop_fast(&mut self) -> Result<(), Error> {
        self.stop("-INT")
    }

    /// Stops the server as a crash would (`pg_ctl stop -m immediate`, SIGQUIT):
    /// what its processes had not written out of shared memory is lost, and the
    /// next start recovers from the WAL on disk. [`LocalPostgres::restart`] starts
    /// it again.
    ///
    /// # Errors
    /// As [`LocalPostgres::stop_fast`].
    pub fn stop_immediate(&mut self) -> Result<(), Error> {
        self.stop("-QUIT")
    }

    fn stop(&mut self, signal: &str) -> Result<(), Error> {
        let pid = self.postmaster_pid()?;
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .map_err(io_err("signalling postgres"))?;
        if !status.success() {
            return Err(Error::Start(format!("could not signal postgres pid {pid}")));
        }
        let deadline = Instant::now() + self.options.start_timeout;
        while self.data_dir().join("postmaster.pid").exists() {
            if Instant::now() > deadline {
                return Err(Error::Start("postgres did not stop".into()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Starts the server again after [`LocalPostgres::stop_fast`], on the same port.
    ///
    /// # Errors
    /// When the server does not come back.
    pub fn restart(&mut self) -> Result<(), Error> {
        let status = Command::new(self.bin_dir.join("pg_ctl"))
            .arg("start")
            .arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.root.join("server.log"))
            .arg("-o")
            .arg(self.server_args().join(" "))
            .stdout(Stdio::null())
            .as_user(self.run_as)
            .status()
            .map_err(io_err("running pg_ctl start"))?;
        if !status.success() {
            return Err(Error::Start(self.log()));
        }
        self.wait_ready()
    }

    fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    fn postmaster_pid(&self) -> Result<u32, Error> {
        let text = fs::read_to_string(self.data_dir().join("postmaster.pid"))
            .map_err(io_err("reading postmaster.pid"))?;
        text.lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .ok_or_else(|| Error::Start("postmaster.pid has no pid".into()))
    }

    fn initdb(&mut self) -> Result<(), Error> {
        let pwfile = self.root.join("pwfile");
        fs::write(&pwfile, &self.password).map_err(io_err("writing the password file"))?;
        chown_to(&pwfile, self.run_as)?;
        let out = Command::new(self.bin_dir.join("initdb"))
            .arg("-D")
            .arg(self.data_dir())
            .args(["-U", SUPERUSER, "--auth=scram-sha-256", "-E", "UTF8"])
            .args(["--locale=C", "--no-sync"])
            .arg(format!("--pwfile={}", pwfile.display()))
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .as_user(self.run_as)
            .output()
            .map_err(io_err("running initdb"))?;
        let _ = fs::remove_file(&pwfile);
        if !out.status.success() {
            return Err(Error::Initdb(
                String::from_utf8_lossy(&out.stderr).trim().to_string(),
            ));
        }
        if self.options.also_listen_on.is_some() {
            let hba = self.data_dir().join("pg_hba.conf");
            let mut text = fs::read_to_string(&hba).map_err(io_err("reading pg_hba.conf"))?;
            text.push_str("host all all samenet scram-sha-256\n");
            fs::write(&hba, text).map_err(io_err("writing pg_hba.conf"))?;
        }
        Ok(())
    }

    fn server_args(&self) -> Vec<String> {
        let mut args = vec![
            "-p".to_string(),
            self.port.to_string(),
            "-c".into(),
            match self.options.also_listen_on {
                Some(ip) => format!("listen_addresses=127.0.0.1,{ip}"),
                None => "listen_addresses=127.0.0.1".into(),
            },
            "-c".into(),
            "unix_socket_directories=".into(),
            "-c".into(),
            format!("max_connections={}", self.options.max_connections),
        ];
        if self.options.fast_unsafe {
            for setting in [
                "fsync=off",
                "synchronous_commit=off",
                "full_page_writes=off",
            ] {
                args.push("-c".into());
                args.push(setting.into());
            }
        }
        args
    }

    fn launch(&mut self) -> Result<(), Error> {
        // A few tries: the free port we picked may be taken before postgres binds it.
        let mut last = String::new();
        for _ in 0..5 {
            self.port = match self.options.port {
                Some(p) => p,
                None => free_port()?,
            };
            // The supervisor: starts postgres, waits for our pipe to close (we
            // stopped or died), then stops postgres and removes everything.
            let script = r#"
bin=$1; root=$2; shift 2
"$bin" -D "$root/data" "$@" >>"$root/server.log" 2>&1 &
pid=$!
cat >/dev/null
kill -INT "$pid" 2>/dev/null
if [ -f "$root/data/postmaster.pid" ]; then
  p=$(head -n 1 "$root/data/postmaster.pid"); kill -INT "$p" 2>/dev/null
  while kill -0 "$p" 2>/dev/null; do sleep 0.05; done
fi
wait "$pid" 2>/dev/null
rm -rf "$root"
"#;
            let mut child = Command::new("sh")
                .arg("-c")
                .arg(script)
                .arg("localpg-supervisor")
                .arg(self.bin_dir.join("postgres"))
                .arg(&self.root)
                .args(self.server_args())
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .as_user(self.run_as)
                .spawn()
                .map_err(io_err("starting the postgres supervisor"))?;
            self.stdin = child.stdin.take();
            self.supervisor = Some(child);
            match self.wait_ready() {
                Ok(()) => return Ok(()),
                Err(e) => {
                    last = e.to_string();
                    if !self.log().contains("could not bind") {
                        return Err(e);
                    }
                    // Port clash: the supervisor is still running; stop it but keep the dir.
                    self.stdin = None;
                    if let Some(mut c) = self.supervisor.take() {
                        let _ = c.wait();
                    }
                    self.root = make_root_dir(self.run_as)?;
                    self.initdb()?;
                }
            }
        }
        Err(Error::Start(last))
    }

    /// Waits until postmaster.pid says the server is ready (PostgreSQL 10+).
    fn wait_ready(&mut self) -> Result<(), Error> {
        let deadline = Instant::now() + self.options.start_timeout;
        let pidfile = self.data_dir().join("postmaster.pid");
        loop {
            if let Ok(text) = fs::read_to_string(&pidfile)
                && text.lines().nth(7).is_some_and(|s| s.trim() == "ready")
            {
                return Ok(());
            }
            let log = self.log();
            if log.contains("FATAL:") || log.contains("invalid argument") {
                return Err(Error::Start(log.trim().to_string()));
            }
            if let Some(child) = self.supervisor.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(Error::Start(format!(
                    "supervisor exited with {status}: {}",
                    self.log().trim()
                )));
            }
            if Instant::now() > deadline {
                return Err(Error::Start(format!(
                    "not ready after {:?}: {}",
                    self.options.start_timeout,
                    self.log().trim()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for LocalPostgres {
    fn drop(&mut self) {
        // Closing the pipe tells the supervisor to stop the server and clean up.
        self.stdin = None;
        if let Some(mut child) = self.supervisor.take() {
            let _ = child.wait();
        } else {
            let _ = fs::remove_dir_all(&self.root);
        }
    }
}

trait AsUser {
    fn as_user(&mut self, who: Option<(u32, u32)>) -> &mut Self;
}

impl AsUser for Command {
    fn as_user(&mut self, who: Option<(u32, u32)>) -> &mut Self {
        if let Some((uid, gid)) = who {
            self.uid(uid).gid(gid).env("HOME", "/tmp");
        }
        self
    }
}

/// Finds the directory holding `initdb` and `postgres`.
pub fn find_bin_dir() -> Option<PathBuf> {
    let has_both = |d: &Path| d.join("initdb").is_file() && d.join("postgres").is_file();
    if let Some(dir) = std::env::var_os("KUBEMIGRATE_PG_BIN").map(PathBuf::from)
        && has_both(&dir)
    {
        return Some(dir);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if has_both(&dir) {
                // Resolve a symlinked initdb (Debian links /usr/local/bin/initdb) to its real dir.
                let real = fs::canonicalize(dir.join("initdb"))
                    .ok()
                    .and_then(|p| p.parent().map(Path::to_path_buf));
                return Some(real.filter(|d| has_both(d)).unwrap_or(dir));
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, d)| has_both(d))
        .collect();
    versions.sort();
    versions.pop().map(|(_, d)| d)
}

fn running_as_root() -> bool {
    // The owner of /proc/self is this process's effective uid (no unsafe libc call).
    fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// The uid and gid of `postgres`, else `nobody`, from /etc/passwd.
fn unprivileged_user() -> Result<(u32, u32), Error> {
    let passwd = fs::read_to_string("/etc/passwd").map_err(io_err("reading /etc/passwd"))?;
    let find = |name: &str| {
        passwd.lines().find_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            (f.len() > 3 && f[0] == name).then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
        })
    };
    find("postgres")
        .or_else(|| find("nobody"))
        .ok_or_else(|| Error::Start("running as root and no postgres or nobody user exists".into()))
}

fn chown_to(path: &Path, who: Option<(u32, u32)>) -> Result<(), Error> {
    if let Some((uid, gid)) = who {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .map_err(io_err(format!("chown {}", path.display())))?;
    }
    Ok(())
}

fn make_root_dir(run_as: Option<(u32, u32)>) -> Result<PathBuf, Error> {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "kubemigrate-pg-{}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
    ));
    fs::create_dir(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
        .map_err(io_err(format!("chmod {}", dir.display())))?;
    chown_to(&dir, run_as)?;
    Ok(dir)
}

/// A TCP port free on 127.0.0.1 now (another process may take it later).
///
/// # Errors
/// [`Error::Io`] when no socket can be bound.
pub fn free_port() -> Result<u16, Error> {
    // An address, not a string: a string would link getaddrinfo, which a static
    // kubemigrate must not (docs/runner.md).
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(io_err("finding a free port"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(io_err("finding a free port"))
}

/// A random alphanumeric token (passwords), from the system's random source.
pub fn random_token() -> String {
    let mut bytes = [0u8; 18];
    if getrandom::fill(&mut bytes).is_err() {
        // No random source: fall back to time and pid; still unique per server.
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
            ^ u128::from(std::process::id());
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = (seed >> ((i % 16) * 8)) as u8;
        }
    }
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpStream;

    #[test]
    fn starts_accepts_tcp_and_cleans_up_on_drop() {
        let server = LocalPostgres::start().unwrap();
        let root = server.root.clone();
        assert!(root.join("data/PG_VERSION").exists());
        TcpStream::connect(("127.0.0.1", server.port())).unwrap();
        assert!(server.url("db").contains(&format!(":{}/db", server.port())));
        drop(server);
        assert!(!root.exists(), "{} was not removed", root.display());
    }

    #[test]
    fn stop_fast_then_restart_on_the_same_port() {
        let mut server = LocalPostgres::start().unwrap();
        let port = server.port();
        server.stop_fast().unwrap();
        assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
        server.restart().unwrap();
        TcpStream::connect(("127.0.0.1", port)).unwrap();
    }

    #[test]
    fn tokens_are_random_and_alphanumeric() {
        let (a, b) = (random_token(), random_token());
        assert_ne!(a, b);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()) && a.len() == 18);
    }
}
