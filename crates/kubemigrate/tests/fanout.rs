//! Fan-out: `sql migrate` and `sql status` over many databases of one real
//! PostgreSQL (docs/fan-out.md).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure the test reports"
)]

mod common;

use common::{Db, Dir, km};

fn files() -> Dir {
    Dir::new(&[
        ("001_users.sql", "CREATE TABLE users (id int PRIMARY KEY);"),
        (
            "002_accounts.sql",
            "\n\nCREATE TABLE accounts (id int PRIMARY KEY);",
        ),
        ("003_rows.sql", "INSERT INTO users VALUES (1), (2);"),
    ])
}

/// A file of the databases' URLs, one a line, with a comment and a blank line.
fn url_file(dir: &Dir, dbs: &[Db]) -> String {
    let mut text = String::from("# tenants\n\n");
    for db in dbs {
        text.push_str(&db.url);
        text.push('\n');
    }
    dir.write("tenants.txt", &text);
    dir.file("tenants.txt").display().to_string()
}

/// How many files the history records as applied.
fn applied(db: &Db) -> usize {
    db.history().iter().filter(|r| r.contains("|true|")).count()
}

#[test]
fn a_hundred_databases_one_fails_the_others_migrate_and_the_report_names_it() {
    let dbs: Vec<Db> = (0..100).map(|_| Db::new()).collect();
    // Tenant 17 already has a table the second file creates: its run fails there.
    let bad = &dbs[16];
    bad.sql("CREATE TABLE accounts (legacy text)");
    let dir = files();
    let lists = Dir::new(&[]);
    let list = url_file(&lists, &dbs);
    let failed_list = lists.file("failed.txt").display().to_string();
    let run = km(
        &[
            "sql",
            "migrate",
            "-d",
            &dir.arg(),
            "--database-url-file",
            &list,
            "--concurrency",
            "8",
            "--failed-list",
            &failed_list,
            "-o",
            "json",
        ],
        &[],
    )
    .expect(3);
    let doc = run.json();
    assert_eq!(doc["outcome"], "sql_failed", "{doc}");
    assert_eq!(doc["counts"]["applied"], 99, "{doc}");
    assert_eq!(doc["counts"]["failed"], 1, "{doc}");
    let results = doc["databases"].as_array().unwrap();
    assert_eq!(results.len(), 100);
    // In the list's order, each named by its database.
    for (db, r) in dbs.iter().zip(results) {
        assert_eq!(r["database"], db.name.as_str());
    }
    let failed = &results[16];
    assert_eq!(failed["result"], "failed");
    assert_eq!(failed["exit_code"], 3);
    assert_eq!(failed["file"], "002_accounts.sql");
    assert_eq!(failed["applied"], 1);
    let error = failed["error"].as_str().unwrap();
    assert!(
        error.contains("002_accounts.sql:3:") && error.contains("already exists"),
        "{error}"
    );
    assert!(
        failed["last_lines"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().unwrap().contains("applying 002_accounts.sql")),
        "{failed}"
    );
    assert!(
        failed["place"]
            .as_str()
            .unwrap()
            .ends_with("tenants.txt:19")
    );
    assert_eq!(results[15]["result"], "applied");
    assert_eq!(results[15]["applied"], 3);
    // Logs (stderr with -o json) are prefixed with the database.
    assert!(
        run.stderr
            .contains(&format!("[{}] applying 002_accounts.sql", bad.name)),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("1 of 100 databases failed: ") && run.stderr.contains(&bad.name),
        "{}",
        run.stderr
    );
    // Each database has its own history: the bad one stopped at its second file,
    // whose failed attempt is recorded.
    assert_eq!(
        bad.history(),
        ["001_users.sql|sql|true|", "002_accounts.sql|sql|false|1"]
    );
    for db in [&dbs[0], &dbs[15], &dbs[99]] {
        assert_eq!(applied(db), 3, "{}", db.name);
        assert_eq!(db.sql("SELECT count(*) FROM users"), "2");
    }
    // The failed list holds only the bad tenant's URL, as given.
    assert_eq!(
        std::fs::read_to_string(&failed_list).unwrap(),
        format!("{}\n", bad.url)
    );

    // Fixed, and rerun over the failed list only: it alone is migrated.
    bad.sql("DROP TABLE accounts");
    let run = km(
        &[
            "sql",
            "migrate",
            "-d",
            &dir.arg(),
            "--database-url-file",
            &failed_list,
            "--failed-list",
            &failed_list,
        ],
        &[],
    )
    .expect(0);
    assert!(
        run.stdout.contains("1 database: 1 applied"),
        "{}",
        run.stdout
    );
    assert!(!std::path::Path::new(&failed_list).exists());
    assert_eq!(applied(bad), 3);

    // A second run over the whole list applies nothing anywhere.
    let run = km(
        &[
            "sql",
            "migrate",
            "-d",
            &dir.arg(),
            "--database-url-file",
            &list,
            "--concurrency",
            "8",
        ],
        &[],
    )
    .expect(0);
    assert!(
        run.stdout.contains("100 databases: 100 up to date in"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("] applying"), "{}", run.stdout);
    for db in &dbs {
        assert_eq!(applied(db), 3, "{}", db.name);
    }
}

#[test]
fn status_over_several_databases_names_the_pending_ones_and_exits_with_the_worst() {
    let dir = files();
    let done = Db::new();
    let behind = Db::new();
    done.km(&["sql", "migrate", "-d", &dir.arg()]).expect(0);
    let status = |extra: &[&str]| {
        let mut args = vec![
            "sql",
            "status",
            "-d",
            dir.path().to_str().unwrap(),
            "--database-url",
            &done.url,
            "--database-url",
            &behind.url,
        ];
        args.extend_from_slice(extra);
        km(&args, &[])
    };
    let run = status(&[]).expect(7);
    assert!(
        run.stdout.contains("2 databases: 1 up to date, 1 pending"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains(&format!("pending: {}: 3 files", behind.name)),
        "{}",
        run.stdout
    );
    // A drifted file needs a person (4): worse than pending (7).
    done.sql("UPDATE kubemigrate_history SET checksum = 'x' WHERE version = '003_rows.sql'");
    let run = status(&["-o", "json"]).expect(4);
    let doc = run.json();
    assert_eq!(doc["databases"][0]["result"], "failed", "{doc}");
    assert_eq!(doc["databases"][0]["outcome"], "needs_person");
    assert_eq!(doc["databases"][0]["file"], "003_rows.sql");
    assert_eq!(doc["databases"][1]["result"], "pending");
    assert_eq!(doc["databases"][1]["pending"], 3);
    // status changes nothing.
    assert!(
        behind
            .sql("SELECT to_regclass('kubemigrate_history') IS NULL")
            .contains('t')
    );
}

#[test]
fn on_failure_stop_starts_no_new_database() {
    let dir = files();
    let dbs: Vec<Db> = (0..3).map(|_| Db::new()).collect();
    dbs[0].sql("CREATE TABLE accounts (legacy text)");
    let lists = Dir::new(&[]);
    let failed_list = lists.file("failed.txt").display().to_string();
    let run = km(
        &[
            "sql",
            "migrate",
            "-d",
            &dir.arg(),
            "--database-url",
            &dbs[0].url,
            "--database-url",
            &dbs[1].url,
            "--database-url",
            &dbs[2].url,
            "--concurrency",
            "1",
            "--on-failure",
            "stop",
            "--failed-list",
            &failed_list,
        ],
        &[],
    )
    .expect(3);
    assert!(
        run.stdout.contains("3 databases: 1 failed, 2 not run"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(&format!(
            "not run (--on-failure stop): {}, {}",
            dbs[1].name, dbs[2].name
        )),
        "{}",
        run.stdout
    );
    for db in &dbs[1..] {
        assert!(
            db.sql("SELECT to_regclass('kubemigrate_history') IS NULL")
                .contains('t')
        );
    }
    // The failed and the not-run ones are the rerun list.
    let text = std::fs::read_to_string(&failed_list).unwrap();
    assert_eq!(text.lines().count(), 3);
}

#[test]
fn a_bad_line_in_the_url_file_is_named_without_its_password() {
    let dir = files();
    let lists = Dir::new(&[(
        "tenants.txt",
        "postgres://app:s3cret-pw@localhost:5432/t1\npostgres://app:s3cret-pw@localhost:notaport/t2\n",
    )]);
    let run = km(
        &[
            "sql",
            "migrate",
            "-d",
            &dir.arg(),
            "--database-url-file",
            &lists.file("tenants.txt").display().to_string(),
        ],
        &[],
    )
    .expect(2);
    assert!(run.stderr.contains("tenants.txt:2:"), "{}", run.stderr);
    assert!(!run.stderr.contains("s3cret"), "{}", run.stderr);
    assert!(!run.stdout.contains("s3cret"), "{}", run.stdout);
    let empty = Dir::new(&[("none.txt", "# nobody yet\n\n")]);
    let run = km(
        &[
            "sql",
            "migrate",
            "-d",
            &dir.arg(),
            "--database-url-file",
            &empty.file("none.txt").display().to_string(),
        ],
        &[],
    )
    .expect(2);
    assert!(run.stderr.contains("no URL in it"), "{}", run.stderr);
    // A pod's index beyond the shards is a mistake, not an empty shard.
    let run = km(
        &[
            "sql",
            "migrate",
            "-d",
            &dir.arg(),
            "--database-url",
            "postgres://app@localhost/postgres",
            "--databases",
            "t1,t2",
            "--shards",
            "2",
        ],
        &[("JOB_COMPLETION_INDEX", "2")],
    )
    .expect(2);
    assert!(
        run.stderr
            .contains("--shard-index 2 (or JOB_COMPLETION_INDEX) is not below --shards 2"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_query_lists_the_databases_and_each_pod_of_a_job_takes_its_shard() {
    let dir = files();
    let catalog = Db::new();
    let dbs: Vec<Db> = (0..3).map(|_| Db::new()).collect();
    let mut names: Vec<&str> = dbs.iter().map(|d| d.name.as_str()).collect();
    // The query's rows are sorted by name before sharding, whatever their order.
    let query = format!(
        "SELECT datname FROM pg_database WHERE datname IN ('{}') ORDER BY datname DESC",
        names.join("','")
    );
    names.sort();
    // Shard 1 of 2, as the pod with index 1 of an Indexed Job: the second name.
    let run = km(
        &[
            "sql",
            "migrate",
            "-d",
            &dir.arg(),
            "--database-query",
            &query,
            "--shards",
            "2",
            "-o",
            "json",
        ],
        &[
            ("DATABASE_URL", catalog.url.as_str()),
            ("JOB_COMPLETION_INDEX", "1"),
        ],
    )
    .expect(0);
    let doc = run.json();
    assert_eq!(doc["concurrency"], 1, "{doc}");
    let ran: Vec<&str> = doc["databases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["database"].as_str().unwrap())
        .collect();
    assert_eq!(ran, [names[1]]);
    // Without an index every shard runs: the other two are migrated now.
    let run = km(
        &[
            "sql",
            "migrate",
            "-d",
            &dir.arg(),
            "--database-query",
            &query,
            "--shards",
            "2",
        ],
        &[("DATABASE_URL", catalog.url.as_str())],
    )
    .expect(0);
    assert!(
        run.stdout.contains("3 databases: 1 up to date, 2 applied"),
        "{}",
        run.stdout
    );
    // --databases: names on the server of --database-url.
    let list = names.join(",");
    let run = km(
        &["sql", "status", "-d", &dir.arg(), "--databases", &list],
        &[("DATABASE_URL", catalog.url.as_str())],
    )
    .expect(0);
    assert!(
        run.stdout.contains("3 databases: 3 up to date"),
        "{}",
        run.stdout
    );
    // A query that fails is bad input, said with the server's words.
    let run = km(
        &[
            "sql",
            "status",
            "-d",
            &dir.arg(),
            "--database-query",
            "SELECT nope FROM pg_database",
        ],
        &[("DATABASE_URL", catalog.url.as_str())],
    )
    .expect(2);
    assert!(
        run.stderr
            .contains("--database-query: column \"nope\" does not exist"),
        "{}",
        run.stderr
    );
}

#[test]
fn apply_local_runs_a_plan_target_over_its_databases() {
    let catalog = Db::new();
    let dbs: Vec<Db> = (0..3).map(|_| Db::new()).collect();
    dbs[1].sql("CREATE TABLE accounts (legacy text)");
    let dir = tempfile::tempdir().unwrap();
    let sql = dir.path().join("sql");
    std::fs::create_dir_all(&sql).unwrap();
    for (name, body) in [
        ("001_users.sql", "CREATE TABLE users (id int PRIMARY KEY);"),
        (
            "002_accounts.sql",
            "CREATE TABLE accounts (id int PRIMARY KEY);",
        ),
    ] {
        std::fs::write(sql.join(name), body).unwrap();
    }
    let names: Vec<&str> = dbs.iter().map(|d| d.name.as_str()).collect();
    std::fs::write(
        dir.path().join("plan.yaml"),
        format!(
            "apiVersion: kubemigrate.io/v1alpha1
kind: MigrationPlan
metadata: {{name: saas}}
spec:
  targets:
    - name: tenants
      database: {{host: tenants-db, name: postgres, user: app, password: {{fromEnv: UNUSED}}}}
      databases:
        list: [{}]
        concurrency: 2
      sql: {{localDir: sql}}
",
            names.join(", ")
        ),
    )
    .unwrap();
    let plan = dir.path().join("plan.yaml").display().to_string();
    let db = format!("tenants={}", catalog.url);
    let apply = || {
        km(
            &[
                "apply", "-f", &plan, "--local", "--db", &db, "--run-id", "f1",
            ],
            &[],
        )
    };
    let run = apply().expect(3);
    let out = &run.stdout;
    assert!(
        out.contains("3 databases: 2 applied, 1 failed"),
        "{out}\n{}",
        run.stderr
    );
    assert!(out.contains(&format!("failed: {}: ", dbs[1].name)), "{out}");
    // apply reads each database's result back from the runner's log.
    assert!(
        out.contains(&format!(
            "tenants: 3 databases: 2 applied, 1 failed: {} (exit 3): ",
            dbs[1].name
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("[{}] applying 002_accounts.sql", dbs[1].name)),
        "{out}"
    );
    assert_eq!(applied(&dbs[0]), 2);
    assert_eq!(applied(&dbs[1]), 1);
    assert_eq!(applied(&dbs[2]), 2);
    // Fixed, the plan again: the one left is migrated, the others are up to date.
    dbs[1].sql("DROP TABLE accounts");
    let run = km(
        &[
            "apply", "-f", &plan, "--local", "--db", &db, "--run-id", "f2", "-o", "json",
        ],
        &[],
    )
    .expect(0);
    assert!(
        run.stderr.contains("3 databases: 2 up to date, 1 applied"),
        "{}",
        run.stderr
    );
    let doc = run.json();
    let reported = doc["targets"][0]["databases"].as_array().unwrap();
    assert_eq!(reported.len(), 3, "{doc}");
    for db in &dbs {
        let r = reported
            .iter()
            .find(|r| r["database"] == db.name.as_str())
            .unwrap();
        let want = if db.name == dbs[1].name {
            "applied"
        } else {
            "up_to_date"
        };
        assert_eq!(r["result"], want, "{doc}");
    }
}

#[test]
fn apply_local_says_a_secrets_list_cannot_be_read_here() {
    let catalog = Db::new();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("sql")).unwrap();
    std::fs::write(dir.path().join("sql/V1__a.sql"), "SELECT 1;").unwrap();
    std::fs::write(
        dir.path().join("plan.yaml"),
        "apiVersion: kubemigrate.io/v1alpha1
kind: MigrationPlan
metadata: {name: saas}
spec:
  targets:
    - name: tenants
      database: {host: db, name: postgres, user: app, password: {fromEnv: UNUSED}}
      databases:
        fromSecret: {name: tenant-list, key: names}
      sql: {localDir: sql}
",
    )
    .unwrap();
    let plan = dir.path().join("plan.yaml").display().to_string();
    let db = format!("tenants={}", catalog.url);
    let run = km(&["apply", "-f", &plan, "--local", "--db", &db], &[]);
    assert_ne!(run.code, 0);
    assert!(
        run.stdout.contains(
            "KUBEMIGRATE_DATABASES: the key names of the existing Secret tenant-list cannot be read locally; to run it here, list the databases in the plan"
        ),
        "{}\n{}",
        run.stdout,
        run.stderr
    );
    // URLs with their own credentials, from a Secret: not here either.
    let text = std::fs::read_to_string(&plan).unwrap().replace(
        "fromSecret: {name: tenant-list, key: names}",
        "urlsFromSecret: {name: tenant-urls, key: urls}",
    );
    std::fs::write(&plan, text).unwrap();
    let run = km(&["apply", "-f", &plan, "--local", "--db", &db], &[]);
    assert_ne!(run.code, 0);
    assert!(
        run.stdout.contains(
            "KUBEMIGRATE_DATABASE_URLS: the key urls of the existing Secret tenant-urls cannot be read locally; to run it here, give the URLs to `kubemigrate sql migrate --database-url-file FILE`"
        ),
        "{}\n{}",
        run.stdout,
        run.stderr
    );
}

/// The script of the command tests: fails on the database named in `BAD`, else
/// marks the database it was given, through psql and the variables exec exports.
const MARK: &str = r#"if [ "$PGDATABASE" = "$BAD" ]; then echo "bad tenant $PGDATABASE" >&2; exit 4; fi
psql -qX -v ON_ERROR_STOP=1 -c "CREATE TABLE IF NOT EXISTS marks (db text); INSERT INTO marks VALUES (current_database())"
echo "marked $PGDATABASE""#;

/// How many marks the command left in `db`.
fn marks(db: &Db) -> String {
    db.sql("SELECT count(*) FROM marks WHERE db = current_database()")
}

#[test]
fn exec_runs_a_command_once_per_database_under_each_ones_lock() {
    let catalog = Db::new();
    let dbs: Vec<Db> = (0..3).map(|_| Db::new()).collect();
    let names: Vec<&str> = dbs.iter().map(|d| d.name.as_str()).collect();
    let list = names.join(" ");
    let exec = |bad: &str, json: bool| {
        let mut args = vec!["exec", "--lock", "--databases", &list, "--concurrency", "2"];
        if json {
            args.extend(["-o", "json"]);
        }
        args.extend(["--", "sh", "-c", MARK]);
        km(
            &args,
            &[("DATABASE_URL", catalog.url.as_str()), ("BAD", bad)],
        )
    };
    let run = exec(names[1], false).expect(4);
    let out = &run.stdout;
    assert!(out.contains("3 databases: 2 ran, 1 failed"), "{out}");
    assert!(
        out.contains(&format!("[{0}] marked {0}", names[0])),
        "{out}"
    );
    assert!(
        out.contains(&format!("failed: {}: the command exited with 4", names[1])),
        "{out}"
    );
    // Its last lines are the command's own output.
    assert!(
        out.contains(&format!("      bad tenant {}", names[1])),
        "{out}"
    );
    assert!(
        run.stderr
            .contains(&format!("1 of 3 databases failed: {}", names[1]))
    );
    assert_eq!(
        (marks(&dbs[0]), marks(&dbs[2])),
        ("1".to_string(), "1".to_string())
    );
    // Each database's history records its own run of the command.
    let rows = |db: &Db| {
        db.sql(
            "SELECT string_agg(kind || ' ' || exit_code, ',' ORDER BY id) FROM kubemigrate_history",
        )
    };
    assert_eq!(rows(&dbs[0]), "command 0");
    assert_eq!(rows(&dbs[1]), "command 4");
    // Fixed, all again: every database runs it once more (a command has no
    // history of its own for kubemigrate to skip), and each lock was released.
    let run = exec("", true).expect(0);
    let doc = run.json();
    assert_eq!(doc["command"], "exec", "{doc}");
    assert_eq!(doc["counts"]["ran"], 3, "{doc}");
    assert_eq!(doc["databases"][1]["result"], "ran", "{doc}");
    assert_eq!(marks(&dbs[1]), "1");
    assert_eq!(marks(&dbs[0]), "2");
}

#[test]
fn apply_local_runs_a_command_target_over_its_databases() {
    let catalog = Db::new();
    let dbs: Vec<Db> = (0..2).map(|_| Db::new()).collect();
    let names: Vec<&str> = dbs.iter().map(|d| d.name.as_str()).collect();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("mark.sh"), MARK).unwrap();
    std::fs::write(
        dir.path().join("plan.yaml"),
        format!(
            "apiVersion: kubemigrate.io/v1alpha1
kind: MigrationPlan
metadata: {{name: saas}}
spec:
  targets:
    - name: tenants
      database: {{host: tenants-db, name: postgres, user: app, password: {{fromEnv: UNUSED}}}}
      databases: [{}]
      command:
        image: shop/app:1
        command: [sh, mark.sh]
        env: [{{name: BAD, value: none}}]
",
            names.join(", ")
        ),
    )
    .unwrap();
    let plan = dir.path().join("plan.yaml").display().to_string();
    let db = format!("tenants={}", catalog.url);
    let local_dir = format!("tenants={}", dir.path().display());
    let run = km(
        &[
            "apply",
            "-f",
            &plan,
            "--local",
            "--db",
            &db,
            "--local-dir",
            &local_dir,
        ],
        &[],
    )
    .expect(0);
    let out = &run.stdout;
    assert!(
        out.contains("tenants: 2 databases: 2 ran"),
        "{out}\n{}",
        run.stderr
    );
    assert!(
        out.contains(&format!("[{0}] marked {0}", names[1])),
        "{out}"
    );
    assert_eq!((marks(&dbs[0]), marks(&dbs[1])), ("1".into(), "1".into()));
}

#[test]
fn each_database_can_bring_its_own_user_and_password() {
    // Two tenants, each owned by a role of its own; a third URL with a wrong
    // password fails alone.
    let dbs: Vec<Db> = (0..3).map(|_| Db::new()).collect();
    let mut urls = String::from("# one URL a line, as a Secret's key holds them\n");
    for (i, db) in dbs.iter().enumerate() {
        let role = format!("{}_owner", db.name);
        let password = format!("pw-{i}-{}", db.name);
        db.sql(&format!(
            "CREATE ROLE {role} LOGIN PASSWORD '{password}'; ALTER DATABASE {} OWNER TO {role}",
            db.name
        ));
        let given = if i == 2 { "wrong-password" } else { &password };
        // The server's address from the superuser's URL.
        let server = db.url.rsplit_once('@').unwrap().1;
        urls.push_str(&format!("postgres://{role}:{given}@{server}\n"));
    }
    let dir = files();
    let run = km(
        &["sql", "migrate", "-d", &dir.arg()],
        &[("KUBEMIGRATE_DATABASE_URLS", urls.as_str())],
    )
    .expect(6);
    let out = &run.stdout;
    assert!(out.contains("3 databases: 2 applied, 1 failed"), "{out}");
    assert!(out.contains(&format!("failed: {}: ", dbs[2].name)), "{out}");
    assert!(
        out.contains("password authentication failed"),
        "{out}\n{}",
        run.stderr
    );
    // Each database's tables belong to its own user, and no password is shown.
    for db in &dbs[..2] {
        assert_eq!(
            db.sql("SELECT tableowner FROM pg_tables WHERE tablename = 'users'"),
            format!("{}_owner", db.name)
        );
    }
    for secret in ["pw-0-", "pw-1-", "wrong-password"] {
        assert!(
            !out.contains(secret) && !run.stderr.contains(secret),
            "{out}"
        );
    }
    // The variable's lines are the places errors name.
    let run = km(
        &["sql", "status", "-d", &dir.arg()],
        &[(
            "KUBEMIGRATE_DATABASE_URLS",
            "postgres://a@db/x\nmysql://nope\n",
        )],
    )
    .expect(2);
    assert!(
        run.stderr.contains("--database-urls line 2: "),
        "{}",
        run.stderr
    );
}

#[test]
fn sigterm_reaches_the_running_commands_and_no_other_database_starts() {
    let catalog = Db::new();
    let dbs: Vec<Db> = (0..3).map(|_| Db::new()).collect();
    let list = dbs
        .iter()
        .map(|d| d.name.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    let child = common::km_command(
        &[
            "exec",
            "--lock",
            "--databases",
            &list,
            "--concurrency",
            "1",
            "--",
            "sh",
            "-c",
            "echo started; exec sleep 30",
        ],
        &[("DATABASE_URL", catalog.url.as_str())],
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    // The first database's command starts right after its lock is taken.
    let started = std::time::Instant::now();
    let deadline = started + std::time::Duration::from_secs(20);
    let locked = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' \
                  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())";
    while dbs[0].sql(locked) == "0" {
        assert!(
            std::time::Instant::now() < deadline,
            "the first command never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let run = common::Run::from_output(child.wait_with_output().unwrap());
    assert_eq!(run.code, 143, "{}\n{}", run.stdout, run.stderr);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "not at once"
    );
    let out = &run.stdout;
    assert!(out.contains("3 databases: 1 failed, 2 not run"), "{out}");
    assert!(
        out.contains(&format!(
            "not run (stopped by SIGTERM): {}, {}",
            dbs[1].name, dbs[2].name
        )),
        "{out}"
    );
    assert!(
        run.stderr
            .contains("stopped by SIGTERM: 1 of 3 databases failed, 2 not run"),
        "{}",
        run.stderr
    );
    // The command was stopped by the signal passed on to it, and recorded.
    assert_eq!(
        dbs[0].sql("SELECT string_agg(kind || ' ' || exit_code, ',') FROM kubemigrate_history"),
        "command 143"
    );
    assert_eq!(
        dbs[1].sql("SELECT count(*) FROM pg_tables WHERE tablename = 'kubemigrate_history'"),
        "0"
    );
}
