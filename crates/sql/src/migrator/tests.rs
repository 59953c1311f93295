#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is the failure the test reports"
)]
use super::*;
use std::path::PathBuf;

fn src(files: &[(&str, &str)]) -> Source {
    Source {
        dir: PathBuf::from("m"),
        migrations: files
            .iter()
            .map(|(n, b)| Migration {
                deferred: false,
                version: (*n).into(),
                path: PathBuf::from(n),
                checksum: crate::source::sum_of_text(b),
                no_transaction: false,
                controls_transaction: false,
                statements: 1,
                repeatable: false,
                section: None,
            })
            .collect(),
        warnings: vec![],
        layout: crate::source::Layout::Native,
        include_root: None,
    }
}

fn row(version: &str, checksum: &str, success: bool, transactional: bool) -> HistoryRow {
    HistoryRow {
        id: 1,
        version: version.into(),
        kind: RowKind::Sql,
        checksum: Some(checksum.into()),
        applied_at: crate::history::Timestamp::from_pg_micros(0),
        execution_ms: 1,
        applied_by: "t".into(),
        success,
        error: None,
        statement: Some(2),
        exit_code: None,
        transactional,
    }
}

#[test]
fn reconcile_classifies_every_state() {
    let s = src(&[
        ("1.sql", "a;"),
        ("2.sql", "b;"),
        ("3.sql", "c;"),
        ("4.sql", "d;"),
        ("5.sql", "e;"),
    ]);
    let c = |i: usize| s.migrations[i].checksum.to_string();
    let history = vec![
        row("1.sql", &c(0), true, true),
        row("2.sql", "old", true, true),
        row("4.sql", &c(3), false, false),
        row("5.sql", &c(4), false, true),
        row("9.sql", "x", true, true),
    ];
    let r = reconcile(&s, &history);
    assert!(matches!(r.files[0], (FileState::Applied(_), false)));
    assert!(matches!(r.files[1], (FileState::Drifted(_), false)));
    // 3.sql is pending and sorts before 9.sql, which is applied.
    assert!(matches!(
        r.files[2],
        (
            FileState::Pending {
                previous_failure: None
            },
            true
        )
    ));
    assert!(matches!(r.files[3], (FileState::Failed(_), false)));
    assert!(matches!(
        r.files[4],
        (
            FileState::Pending {
                previous_failure: Some(_)
            },
            true
        )
    ));
    assert_eq!(r.missing.len(), 1);
    let opts = MigrateOptions::default();
    let problems = r.problems(&s, &opts);
    let names: Vec<_> = problems.iter().map(|p| p.version.as_str()).collect();
    assert_eq!(names, ["2.sql", "3.sql", "4.sql", "5.sql"]);
    assert!(
        problems[2].message.contains("interrupted at statement 2"),
        "{}",
        problems[2].message
    );
    let lenient = MigrateOptions {
        allow_drift: true,
        allow_out_of_order: true,
        strict: true,
        ..MigrateOptions::default()
    };
    let names: Vec<_> = r
        .problems(&s, &lenient)
        .into_iter()
        .map(|p| p.version)
        .collect();
    assert_eq!(names, ["4.sql", "9.sql"]);
}

#[test]
fn reconcile_orders_versions_by_layout_and_reruns_changed_repeatables() {
    let mut s = src(&[
        ("0009-a.sql", "a;"),
        ("00010-b.sql", "b;"),
        ("00011-c.sql", "c;"),
        ("views.sql", "v2;"),
    ]);
    s.layout = crate::source::Layout::PostgresMigrations;
    s.migrations[3].repeatable = true;
    let c = |i: usize| s.migrations[i].checksum.to_string();
    let history = vec![
        row("0009-a.sql", &c(0), true, true),
        row("00010-b.sql", &c(1), true, true),
        row("views.sql", "v1", true, true),
    ];
    let r = reconcile(&s, &history);
    // 00011 comes after 00010 by number (byte-wise it sorts before 0009): not out of order.
    assert!(matches!(r.files[2], (FileState::Pending { .. }, false)));
    // A changed repeatable file is pending, not drifted, and never out of order.
    assert!(matches!(
        r.files[3],
        (
            FileState::Pending {
                previous_failure: None
            },
            false
        )
    ));
    assert!(r.problems(&s, &MigrateOptions::default()).is_empty());
    // Byte-wise (native), the same history makes 00011 out of order.
    s.layout = crate::source::Layout::Native;
    let r = reconcile(&s, &history);
    assert!(matches!(r.files[2], (FileState::Pending { .. }, true)));
}

#[test]
fn reconcile_takes_each_files_newest_row_and_keeps_gone_files_rows_in_recorded_order() {
    let mut s = src(&[
        ("1.sql", "a;"),
        ("2.sql", "b;"),
        ("3.sql", "c;"),
        ("4.sql", "d;"),
        ("0-views.sql", "v;"),
    ]);
    // A repeatable file runs last: the files are not in byte order.
    s.migrations[4].repeatable = true;
    let c = |i: usize| s.migrations[i].checksum.to_string();
    let rows = [
        row("3.sql", &c(2), false, true),
        row("1.sql", &c(0), true, true),
        row("x.sql", "gone", true, true),
        row("3.sql", &c(2), true, true),
        row("2.sql", &c(1), true, true),
        row("2.sql", &c(1), false, false),
        row("y.sql", "gone", false, true),
        row("0-views.sql", &c(4), true, true),
    ];
    let history: Vec<HistoryRow> = rows
        .into_iter()
        .zip(1..)
        .map(|(r, id)| HistoryRow { id, ..r })
        .collect();
    let r = reconcile(&s, &history);
    let id = |state: &FileState| match state {
        FileState::Applied(r) | FileState::Drifted(r) | FileState::Failed(r) => Some(r.id),
        FileState::Pending { previous_failure } => previous_failure.as_ref().map(|r| r.id),
    };
    let states: Vec<_> = r.files.iter().map(|(s, ooo)| (id(s), *ooo)).collect();
    // 3.sql's success replaced its failed attempt, 2.sql's failure its success;
    // 4.sql is pending and sorts before x.sql, applied and gone.
    assert_eq!(
        states,
        [
            (Some(2), false),
            (Some(6), false),
            (Some(4), false),
            (None, true),
            (Some(8), false)
        ]
    );
    assert!(matches!(r.files[1].0, FileState::Failed(_)));
    assert!(matches!(r.files[4].0, FileState::Applied(_)));
    let missing: Vec<_> = r
        .missing
        .iter()
        .map(|m| (m.id, m.version.as_str()))
        .collect();
    assert_eq!(missing, [(3, "x.sql"), (7, "y.sql")]);
}
