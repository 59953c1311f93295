//! The static executable runs where the runner image puts it: in a root file system
//! that holds nothing but kubemigrate and the migration files (no libc, no NSS, no
//! /proc, no shell). See docs/runner.md.
//!
//! The executable is built by `scripts/build-static` (release, a few minutes the
//! first time) into a target directory of its own, so that the build does not wait
//! for the lock of the cargo that runs this test. Each test then runs it under
//! `chroot` (as root, as in CI) or, when not root, under
//! `unshare --user --map-root-user --root=DIR`. When neither works the tests fail:
//! they never pass without having run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure the test reports"
)]

mod common;

use std::net::UdpSocket;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};

use common::{Db, Run, pg};

/// The made-up host name of the test database, given by the chroot's /etc/hosts.
const DB_HOST: &str = "db.kubemigrate.test";

/// Builds the static executable once per test binary; returns its path.
fn static_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("static");
        let out = Command::new("bash")
            .arg(repo.join("scripts/build-static"))
            .arg(&target_dir)
            .output()
            .expect("run bash scripts/build-static");
        assert!(
            out.status.success(),
            "scripts/build-static failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let path = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
        assert!(path.is_file(), "scripts/build-static printed {path:?}");
        path
    })
}

/// Whether an ELF executable has a program interpreter (PT_INTERP), that is, needs
/// the dynamic loader of the image it runs in.
fn has_elf_interpreter(elf: &[u8]) -> bool {
    assert_eq!(&elf[..4], b"\x7fELF", "not an ELF file");
    assert_eq!(elf[4], 2, "not a 64-bit ELF file");
    assert_eq!(elf[5], 1, "not a little-endian ELF file");
    let u16_at = |at: usize| usize::from(u16::from_le_bytes([elf[at], elf[at + 1]]));
    let phoff = usize::try_from(u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap())).unwrap();
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    (0..phnum).any(|i| {
        let at = phoff + i * phentsize;
        u32::from_le_bytes(elf[at..at + 4].try_into().unwrap()) == 3 // PT_INTERP
    })
}

/// A root file system: the static executable as /kubemigrate, and `files`.
struct Root {
    dir: tempfile::TempDir,
}

impl Root {
    fn new(files: &[(&str, &str)]) -> Root {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("kubemigrate");
        std::fs::copy(static_binary(), &bin).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        for (path, body) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, body).unwrap();
        }
        Root { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Every file under the root, relative, sorted.
    fn files(&self) -> Vec<String> {
        fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, base, out);
                } else {
                    out.push(path.strip_prefix(base).unwrap().display().to_string());
                }
            }
        }
        let mut out = Vec::new();
        walk(self.path(), self.path(), &mut out);
        out.sort();
        out
    }

    /// Runs `program` (a path inside the root) with `args` and only `env`.
    fn run(&self, program: &str, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = jail_command(self.path());
        cmd.arg(program)
            .args(args)
            .env_clear()
            .envs(env.iter().copied());
        Run::from_output(cmd.output().expect("start the jailed command"))
    }
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// A program on PATH or in the sbin directories, by absolute path (the jailed
/// commands run with an empty environment, so no PATH).
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.is_file())
}

/// `chroot DIR` as root; else `unshare --user --map-root-user --root=DIR` when this
/// machine allows unprivileged user namespaces; else the test fails, saying why.
fn jail_command(root: &Path) -> Command {
    if running_as_root() {
        let mut cmd = Command::new(find_program("chroot").expect("chroot is not installed"));
        cmd.arg(root);
        return cmd;
    }
    static UNSHARE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let unshare = UNSHARE.get_or_init(|| {
        let unshare = find_program("unshare").ok_or("unshare is not installed")?;
        let probe = Root::new(&[]);
        let out = Command::new(&unshare)
            .args(["--user", "--map-root-user"])
            .arg(format!("--root={}", probe.path().display()))
            .args(["/kubemigrate", "--version"])
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(unshare)
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    });
    match unshare {
        Ok(unshare) => {
            let mut cmd = Command::new(unshare);
            cmd.args(["--user", "--map-root-user"])
                .arg(format!("--root={}", root.display()));
            cmd
        }
        Err(why) => panic!(
            "this test runs kubemigrate in an empty root file system: it needs root (for chroot) \
             or unprivileged user namespaces (unshare --user --map-root-user --root=DIR), and \
             unshare failed: {why}"
        ),
    }
}

const MIGRATIONS: [(&str, &str); 4] = [
    (
        "etc/hosts",
        "# only the test database\n127.0.0.1\tdb.kubemigrate.test db\n",
    ),
    (
        "migrations/0001_create_users.sql",
        "CREATE TABLE users (id serial PRIMARY KEY, email text NOT NULL UNIQUE);\n",
    ),
    (
        "migrations/0002_orders.sql",
        "CREATE TABLE orders (\n  id serial PRIMARY KEY,\n  user_id int NOT NULL REFERENCES users (id)\n);\n",
    ),
    (
        "migrations/0003_seed_users.sql",
        "INSERT INTO users (email) VALUES ('a@example.test'), ('b@example.test');\n",
    ),
];

fn pg_env<'a>(db: &'a Db, host: &'a str, port: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("PGHOST", host),
        ("PGPORT", port),
        ("PGUSER", "postgres"),
        ("PGPASSWORD", pg().password()),
        ("PGDATABASE", db.name.as_str()),
    ]
}

#[test]
fn the_static_binary_has_no_elf_interpreter() {
    let elf = std::fs::read(static_binary()).unwrap();
    assert!(
        !has_elf_interpreter(&elf),
        "{} needs a dynamic loader",
        static_binary().display()
    );
    // The check itself works: the test binary is dynamic.
    let own = std::fs::read(std::env::current_exe().unwrap()).unwrap();
    assert!(has_elf_interpreter(&own));
}

#[test]
fn waits_for_and_migrates_the_database_from_an_empty_root() {
    let root = Root::new(&MIGRATIONS);
    assert_eq!(
        root.files(),
        [
            "etc/hosts",
            "kubemigrate",
            "migrations/0001_create_users.sql",
            "migrations/0002_orders.sql",
            "migrations/0003_seed_users.sql",
        ]
    );
    let db = Db::new();
    let port = pg().port().to_string();
    let env = pg_env(&db, DB_HOST, &port);

    let wait = root
        .run("/kubemigrate", &["wait-for-db", "--timeout", "30s"], &env)
        .expect(0);
    assert!(
        wait.stdout.contains(&format!(
            "database postgres://postgres:****@{DB_HOST}:{port}/"
        )),
        "{}",
        wait.stdout
    );

    let migrate = root
        .run(
            "/kubemigrate",
            &["sql", "migrate", "--dir", "/migrations"],
            &env,
        )
        .expect(0);
    assert!(migrate.stdout.contains("3 applied"), "{}", migrate.stdout);
    assert_eq!(
        db.history(),
        [
            "0001_create_users.sql|sql|true|",
            "0002_orders.sql|sql|true|",
            "0003_seed_users.sql|sql|true|",
        ]
    );
    assert_eq!(db.sql("SELECT count(*) FROM users"), "2");
    assert_eq!(db.sql("SELECT count(*) FROM orders"), "0");
    // No HOSTNAME and no /proc: the history says so instead of failing.
    assert_eq!(
        db.sql("SELECT DISTINCT applied_by FROM kubemigrate_history"),
        "unknown"
    );

    let again = root
        .run(
            "/kubemigrate",
            &["sql", "migrate", "--dir", "/migrations"],
            &env,
        )
        .expect(0);
    assert!(
        again.stdout.contains("0 applied, 3 already applied"),
        "{}",
        again.stdout
    );
}

#[test]
fn a_name_missing_from_etc_hosts_is_a_clear_resolve_error() {
    // No resolv.conf: DNS is 127.0.0.1:53, as in glibc, where nothing answers (or
    // the fake server of the DNS test answers NXDOMAIN).
    let root = Root::new(&MIGRATIONS[..1]);
    let db = Db::new();
    let port = pg().port().to_string();
    let run = root
        .run(
            "/kubemigrate",
            &["wait-for-db", "--timeout", "1s"],
            &pg_env(&db, "elsewhere.kubemigrate.test", &port),
        )
        .expect(6);
    assert!(
        run.stderr.contains(
            "cannot resolve host \"elsewhere.kubemigrate.test\": not in /etc/hosts, and DNS"
        ),
        "{}",
        run.stderr
    );
}

#[test]
fn install_runner_copies_itself_in_an_empty_root() {
    let root = Root::new(&[]);
    let run = root
        .run(
            "/kubemigrate",
            &["install-runner", "/work/kubemigrate"],
            &[],
        )
        .expect(0);
    assert!(
        run.stdout
            .contains("installed /kubemigrate as /work/kubemigrate"),
        "{}",
        run.stdout
    );
    let copy = root.path().join("work/kubemigrate");
    assert_eq!(
        std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777,
        0o755
    );
    let version = root.run("/work/kubemigrate", &["--version"], &[]).expect(0);
    assert_eq!(
        version.stdout.trim(),
        format!("kubemigrate {}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(root.files(), ["kubemigrate", "work/kubemigrate"]);
}

/// A self-signed CA certificate (no key kept): only parsed, never used to verify.
const TEST_CA: &str = "-----BEGIN CERTIFICATE-----\n\
MIIBkzCCATmgAwIBAgIUAYWCqzJCSxB17Vy+6UyDrA00Tf8wCgYIKoZIzj0EAwIw\n\
HjEcMBoGA1UEAwwTa3ViZW1pZ3JhdGUgdGVzdCBDQTAgFw0yNjExMjQyMzQ2MjFa\n\
GA8yMTI2MTAzMTIzNDYyMVowHjEcMBoGA1UEAwwTa3ViZW1pZ3JhdGUgdGVzdCBD\n\
QTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABCENONimYamJcVoGbWd+h63mqf1q\n\
sDi4TgDdEeZtOXHxwVHXMxOyse4EK4JcMOfz0LPqb959KaAqlH9hst8TX72jUzBR\n\
MB0GA1UdDgQWBBQtDjmBKA/gFZDZay/lR+plhrsxITAfBgNVHSMEGDAWgBQtDjmB\n\
KA/gFZDZay/lR+plhrsxITAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0gA\n\
MEUCIQDo0sLODkoKHhcUWLUvpHHeEx/Pq9iD1XfLzuypkqW2ZQIgfzXzLkToIXuq\n\
pDrQ08OeJI/ERa19Ykzobx0UFSKIQkQ=\n\
-----END CERTIFICATE-----";

#[test]
fn verify_full_reads_the_ca_bundle_where_the_runner_image_puts_it() {
    // The Dockerfile copies the CA bundle to /etc/ssl/certs/ca-certificates.crt.
    let db = Db::new();
    let port = pg().port().to_string();
    let mut env = pg_env(&db, DB_HOST, &port);
    env.push(("PGSSLMODE", "verify-full"));
    let args = ["wait-for-db", "--timeout", "10s"];

    let without = Root::new(&MIGRATIONS[..1]);
    let run = without.run("/kubemigrate", &args, &env).expect(6);
    assert!(
        run.stderr.contains("no trusted root certificates"),
        "{}",
        run.stderr
    );

    let with = Root::new(&[
        MIGRATIONS[0],
        ("etc/ssl/certs/ca-certificates.crt", TEST_CA),
    ]);
    let run = with.run("/kubemigrate", &args, &env).expect(6);
    // The roots were found; the test server does not speak TLS.
    assert!(
        !run.stderr.contains("no trusted root certificates") && run.stderr.contains("TLS"),
        "{}",
        run.stderr
    );
}

/// A DNS server on 127.0.0.1:53 (UDP) that knows one name; records the questions.
struct FakeDns {
    questions: Arc<Mutex<Vec<(String, u16)>>>,
}

impl FakeDns {
    /// Answers A queries for `name` with 127.0.0.1, AAAA queries with no records,
    /// and everything else with NXDOMAIN.
    fn start(name: &'static str) -> FakeDns {
        let socket = UdpSocket::bind("127.0.0.1:53").unwrap_or_else(|e| {
            panic!("this test needs to bind 127.0.0.1:53 (root, nothing listening there): {e}")
        });
        let questions = Arc::new(Mutex::new(Vec::new()));
        let seen = questions.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while let Ok((n, from)) = socket.recv_from(&mut buf) {
                let query = &buf[..n];
                // The question: labels from byte 12, then type and class.
                let mut at = 12;
                let mut labels = Vec::new();
                while at < n && query[at] != 0 {
                    let len = usize::from(query[at]);
                    labels.push(String::from_utf8_lossy(&query[at + 1..at + 1 + len]).into_owned());
                    at += 1 + len;
                }
                let qname = labels.join(".").to_ascii_lowercase();
                let qtype = u16::from_be_bytes([query[at + 1], query[at + 2]]);
                let question_end = at + 5;
                seen.lock().unwrap().push((qname.clone(), qtype));
                let found = qname == name;
                let answer = found && qtype == 1;
                let mut reply = query[..2].to_vec();
                reply.extend_from_slice(&[0x81, if found { 0x80 } else { 0x83 }]);
                reply.extend_from_slice(&[0, 1, 0, u8::from(answer), 0, 0, 0, 0]);
                reply.extend_from_slice(&query[12..question_end]);
                if answer {
                    reply.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
                    reply.extend_from_slice(&[127, 0, 0, 1]);
                }
                let _ = socket.send_to(&reply, from);
            }
        });
        FakeDns { questions }
    }
}

#[test]
fn dns_search_domains_resolve_from_an_empty_root() {
    // As in a Kubernetes pod: a short name, ndots:5 and a search list. No /etc/hosts.
    let root = Root::new(&[(
        "etc/resolv.conf",
        "search ns.svc.cluster.local kubemigrate.test\nnameserver 127.0.0.1\noptions ndots:5 timeout:2 attempts:1\n",
    )]);
    let dns = FakeDns::start("db.kubemigrate.test");
    let db = Db::new();
    let port = pg().port().to_string();
    root.run(
        "/kubemigrate",
        &["wait-for-db", "--timeout", "30s"],
        &pg_env(&db, "db", &port),
    )
    .expect(0);
    let asked: Vec<String> = dns
        .questions
        .lock()
        .unwrap()
        .iter()
        // Another test's queries may reach this server too (no resolv.conf there).
        .filter(|(name, qtype)| *qtype == 1 && name.starts_with("db."))
        .map(|(name, _)| name.clone())
        .collect();
    assert_eq!(
        asked[..2],
        ["db.ns.svc.cluster.local", "db.kubemigrate.test"],
        "{asked:?}"
    );
}
