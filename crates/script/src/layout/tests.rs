//! Tests of the layouts: version order, dbmate and goose sections, and a section
//! run through a script.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is the failure the test reports"
)]
use super::*;

#[test]
fn flyway_versions_compare_as_numbers() {
    let f = Layout::Flyway;
    assert_eq!(f.compare("V1.10__b.sql", "V1.9__a.sql"), Ordering::Greater);
    assert_eq!(f.compare("V2__b.sql", "V1_1__a.sql"), Ordering::Greater);
    assert_eq!(f.version_parts("V1_2__x.sql"), Some(vec![1, 2]));
    assert_eq!(f.version_parts("R__x.sql"), None);
    assert_eq!(compare_parts(&[1], &[1, 0]), Ordering::Equal);
}

#[test]
fn numeric_layouts_ignore_width() {
    let p = Layout::PostgresMigrations;
    assert_eq!(p.compare("00010-a.sql", "0009-b.sql"), Ordering::Greater);
    assert_eq!(
        Layout::Native.compare("00010-a.sql", "0009-b.sql"),
        Ordering::Less
    );
    assert_eq!(
        Layout::Diesel.version_parts("2020-01-02-030405_x"),
        Some(vec![20200102030405])
    );
}

#[test]
fn dbmate_sections_and_options() {
    let p = Path::new("1_a.sql");
    let r = Layout::Dbmate
        .rules(p, "-- migrate:up transaction:false\ncreate index concurrently i on t (a);\n\n-- migrate:down\ndrop index i;\n")
        .unwrap();
    assert!(r.no_transaction);
    assert_eq!(
        r.section,
        Some(Section {
            first_line: 2,
            end_line: Some(4)
        })
    );
    let e = Layout::Dbmate
        .rules(p, "create table t ();\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("1_a.sql:1: dbmate does not support statements"),
        "{e}"
    );
    let e = Layout::Dbmate
        .rules(p, "-- migrate:down\n-- migrate:up\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(":1: dbmate requires '-- migrate:up' to appear before"),
        "{e}"
    );
}

#[test]
fn goose_annotations() {
    let p = Path::new("1_a.sql");
    let r = Layout::Goose
        .rules(p, "-- +goose NO TRANSACTION\n-- +goose Up\n-- +goose StatementBegin\nselect 1;\n-- +goose StatementEnd\n-- +goose Down\nselect 2;\n")
        .unwrap();
    assert!(r.no_transaction);
    assert_eq!(
        r.section,
        Some(Section {
            first_line: 3,
            end_line: Some(6)
        })
    );
    let e = Layout::Goose
        .rules(p, "-- +goose Up\n-- +goose StatementBegin\nselect 1;\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains(":2: '-- +goose StatementBegin' without"), "{e}");
}

proptest::proptest! {
    /// Any text: rules are read or refused with a line inside the file, never a panic.
    #[test]
    fn rules_never_panic_and_name_a_line_of_the_file(text in "(-- migrate:(up|down)( transaction:false)?\n|-- \\+goose (Up|Down|StatementBegin|StatementEnd|NO TRANSACTION)\n|select 1;\n|\n|-- x\n){0,12}") {
        let lines = u32::try_from(text.lines().count()).unwrap();
        for layout in Layout::ALL {
            match layout.rules(Path::new("f.sql"), &text) {
                Ok(r) => {
                    if let Some(s) = r.section {
                        proptest::prop_assert!(s.first_line >= 1);
                        proptest::prop_assert!(s.end_line.is_none_or(|e| e >= s.first_line));
                    }
                }
                Err(SourceError::Layout { line, .. }) => {
                    proptest::prop_assert!(line <= lines.max(1), "{layout}: line {line} of {lines}");
                }
                Err(e) => proptest::prop_assert!(false, "{e}"),
            }
        }
    }
}

#[test]
fn a_section_runs_only_its_lines_and_the_checksum_covers_the_file() {
    use crate::script::{Item, Script, Variables};
    let dir = std::env::temp_dir().join(format!("km-layout-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = "\u{feff}-- migrate:up\r\nSELECT 'é';\nSELECT 2;\n-- migrate:down\nDROP TABLE x;\n";
    let path = dir.join("1_a.sql");
    std::fs::write(&path, text).unwrap();
    let rules = Layout::Dbmate.rules(&path, text).unwrap();
    for block in [1, 2, 3, 7, 4096] {
        let mut script =
            Script::open_section(&path, &dir, &Variables::new(), block, rules.section).unwrap();
        let mut sent = Vec::new();
        while let Some(item) = script.next_item().unwrap() {
            if let Item::Sql { text, at, .. } = item {
                sent.push((text, at.line));
            }
        }
        assert_eq!(
            sent,
            [("SELECT 'é';".to_string(), 2), ("SELECT 2;".to_string(), 3)],
            "block {block}"
        );
        assert_eq!(
            script.finish().checksum.to_string(),
            crate::source::checksum(text)
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
