use super::connection::resolve_limit;
use super::*;
use crate::resolve;
use std::collections::HashMap;

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

#[test]
fn url_fields_and_params() {
    let o = ConnectOptions::resolve(
        Some("postgresql://app%40x:p%40ss%3Aword@db.example:6543/my%20db?sslmode=verify-full&application_name=job"),
        env(&[]),
    )
    .unwrap();
    assert_eq!(o.user, "app@x");
    assert_eq!(o.password.as_ref().unwrap().expose(), "p@ss:word");
    assert_eq!(
        (o.host.as_str(), o.port, o.dbname.as_str()),
        ("db.example", 6543, "my db")
    );
    assert_eq!(o.ssl_mode, SslMode::VerifyFull);
    assert_eq!(o.application_name, "job");
}

#[test]
fn options_from_the_url_win_over_pgoptions_and_are_kept_in_the_url() {
    let e = env(&[("PGOPTIONS", "-c search_path=env")]);
    let o = ConnectOptions::resolve(
        Some("postgres://u@h/d?options=-c%20search_path%3Dstorage%2Cpublic"),
        &e,
    )
    .unwrap();
    assert_eq!(o.options.as_deref(), Some("-c search_path=storage,public"));
    assert_eq!(
        o.masked_url(),
        "postgres://u@h:5432/d?options=-c%20search_path%3Dstorage%2Cpublic"
    );
    let o = ConnectOptions::resolve(Some("postgres://u@h/d"), &e).unwrap();
    assert_eq!(o.options.as_deref(), Some("-c search_path=env"));
}

#[test]
fn precedence_is_url_then_pg_then_db_then_defaults() {
    let e = env(&[
        ("PGHOST", "pghost"),
        ("PGPASSWORD", "pgpw"),
        ("DB_HOST", "dbhost"),
        ("DB_PORT", "27010"),
        ("DB_USER", "dbuser"),
        ("DB_SCHEMA", "tenant_management"),
    ]);
    let o = ConnectOptions::resolve(Some("postgres://urluser@/urldb"), &e).unwrap();
    assert_eq!(o.user, "urluser"); // URL wins over DB_USER
    assert_eq!(o.host, "pghost"); // PGHOST wins over DB_HOST
    assert_eq!(o.port, 27010); // only DB_PORT sets it
    assert_eq!(o.dbname, "urldb");
    assert_eq!(o.password.unwrap().expose(), "pgpw");
    assert_eq!(o.schema.as_deref(), Some("tenant_management"));
    let d = ConnectOptions::resolve(None, env(&[])).unwrap();
    assert_eq!(
        (d.host.as_str(), d.port, d.user.as_str()),
        ("localhost", 5432, "postgres")
    );
    assert_eq!(d.dbname, "postgres");
    assert_eq!(d.application_name, "kubemigrate");
    assert_eq!(d.ssl_mode, SslMode::Prefer);
}

#[test]
fn masked_url_never_shows_the_password() {
    let o = ConnectOptions::resolve(
        Some("postgres://u:s3cr%2Ft@h:1/d?sslmode=require"),
        env(&[]),
    )
    .unwrap();
    assert_eq!(o.masked_url(), "postgres://u:****@h:1/d?sslmode=require");
    assert_eq!(
        o.url_with_password().expose(),
        "postgres://u:s3cr%2Ft@h:1/d?sslmode=require"
    );
    assert!(!format!("{o:?}").contains("s3cr"));
    let reparsed = ConnectOptions::resolve(Some(o.url_with_password().expose()), env(&[])).unwrap();
    assert_eq!(reparsed, o);
}

#[test]
fn bad_urls_are_one_line_errors_without_the_password() {
    for (url, want) in [
        ("mysql://u:pw@h/d", "must start with postgres://"),
        ("postgres://u:pw@h:notaport/d", "the port must be a number"),
        // A forgotten host: the password would be read as the port.
        ("postgres://u:s3cretpw", "the port must be a number"),
        (
            "postgres://u:pw@h:0/d",
            "the port must be a number from 1 to 65535",
        ),
        ("postgres://u:ab?cdpw@h/d?x-y=1", "an unsupported parameter"),
        ("postgres://u:p%+1w@h/d", "bad %-escape in the password"),
        ("postgres://u:pw@h/d?sslmode=maybe", "sslmode \"maybe\""),
        (
            "postgres://u:pw@h/d?frobnicate=1",
            "unsupported parameter \"frobnicate\"",
        ),
        ("postgres://u:p%zzw@h/d", "bad %-escape in the password"),
        ("postgres://u:pw@a,b/d", "several hosts"),
    ] {
        let err = ConnectOptions::resolve(Some(url), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "{url}: {err}");
        assert!(
            !err.contains("pw") || want.contains("pw"),
            "{url} leaked: {err}"
        );
    }
}

#[test]
fn passwords_may_hold_slashes_question_marks_and_colons() {
    let o = ConnectOptions::resolve(Some("postgres://app:a/b?c:d@db:5433/app"), env(&[])).unwrap();
    assert_eq!(o.password.as_ref().map(Secret::expose), Some("a/b?c:d"));
    assert_eq!(
        (o.host.as_str(), o.port, o.dbname.as_str()),
        ("db", 5433, "app")
    );
    assert_eq!(o.masked_url(), "postgres://app:****@db:5433/app");
    assert_eq!(
        redact("x postgres://app:a%2Fb%3Fc%3Ad@db", "a/b?c:d"),
        "x postgres://app:****@db"
    );
    assert_eq!(redact("--pw=a/b?c:d", "a/b?c:d"), "--pw=****");
}

#[test]
fn ipv6_and_unix_socket_hosts() {
    let o = ConnectOptions::resolve(Some("postgres://u@[::1]:5433/d"), env(&[])).unwrap();
    assert_eq!((o.host.as_str(), o.port), ("::1", 5433));
    assert_eq!(o.masked_url(), "postgres://u@[::1]:5433/d");
    let s =
        ConnectOptions::resolve(Some("postgres:///d?host=/var/run/postgresql"), env(&[])).unwrap();
    assert_eq!(s.host, "/var/run/postgresql");
}

#[test]
fn env_vars_carry_the_module_contract() {
    let o = ConnectOptions::resolve(
        Some("postgres://u:pw@h:5432/arc_saas"),
        env(&[("DB_SCHEMA", "tenant_management")]),
    )
    .unwrap();
    let vars: HashMap<&str, String> = o
        .env_vars()
        .into_iter()
        .map(|(k, v)| (k, v.expose().to_string()))
        .collect();
    assert_eq!(vars["DB_HOST"], "h");
    assert_eq!(vars["DB_DATABASE"], "arc_saas");
    assert_eq!(vars["DB_PASSWORD"], "pw");
    assert_eq!(vars["PGPASSWORD"], "pw");
    assert_eq!(vars["DB_SCHEMA"], "tenant_management");
    assert_eq!(vars["DATABASE_URL"], "postgres://u:pw@h:5432/arc_saas");
    // libpq's default is not passed on: node-postgres would read it as "TLS
    // required" (examples/ananta/control-plane failed so on a plain server).
    assert!(!vars.contains_key("PGSSLMODE"));
    let o = ConnectOptions::resolve(Some("postgres://u@h/db?sslmode=require"), env(&[])).unwrap();
    let vars: HashMap<&str, String> = o
        .env_vars()
        .into_iter()
        .map(|(k, v)| (k, v.expose().to_string()))
        .collect();
    assert_eq!(vars["PGSSLMODE"], "require");
    assert_eq!(
        vars["DATABASE_URL"],
        "postgres://u@h:5432/db?sslmode=require"
    );
}

#[test]
fn resolving_gets_most_of_the_connect_timeout() {
    let s = Duration::from_secs;
    assert_eq!(resolve_limit(s(10)), s(8));
    assert_eq!(resolve_limit(s(1)), Duration::from_millis(1600));
    assert_eq!(resolve_limit(s(0)), resolve::DEFAULT_LIMIT);
    assert_eq!(resolve_limit(s(600)), resolve::DEFAULT_LIMIT);
}

#[tokio::test]
async fn a_host_that_does_not_resolve_names_itself_once() {
    // `.invalid` never resolves (RFC 2606); the hosts file does not name it and
    // any DNS answers NXDOMAIN or fails. Either way the message names the host.
    let o = ConnectOptions::resolve(
        Some("postgres://u:hunter2@db.kubemigrate.invalid:5432/d?connect_timeout=2"),
        env(&[]),
    )
    .unwrap();
    let err = o.connect().await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ConnectError::Resolve { .. }), "{text}");
    assert!(
        text.starts_with(
            "cannot connect to postgres://u:****@db.kubemigrate.invalid:5432/d: cannot resolve host \"db.kubemigrate.invalid\": not in /etc/hosts"
        ),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");
}
