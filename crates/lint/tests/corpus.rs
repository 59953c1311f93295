//! The corpus: for every rule on by default, a migration that breaks it
//! (`RULE.unsafe.sql`) and one written the safe way (`RULE.safe.sql`). Each file
//! says on its `-- expect:` line which rules must fire on it (or `nothing`), and
//! the default policy must find exactly those.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::Path;

use kubemigrate_lint::{Level, Policy, lint_source};
use kubemigrate_sql::script::Variables;
use kubemigrate_sql::source::Source;

fn expected(path: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("-- expect: "))
        .unwrap_or_else(|| panic!("{} has no `-- expect:` line", path.display()));
    line.split_whitespace()
        .filter(|r| *r != "nothing")
        .map(str::to_string)
        .collect()
}

#[test]
fn every_file_of_the_corpus_gets_exactly_its_expected_rules() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let vars = Variables::new();
    let source = Source::read_dir(&dir, &vars).unwrap();
    let report = lint_source(&source, &vars, &Policy::new(), None).unwrap();
    let mut wrong = Vec::new();
    for f in &report.files {
        let got: BTreeSet<String> = f.findings.iter().map(|x| x.rule.to_string()).collect();
        let want = expected(&f.path);
        if got != want {
            wrong.push(format!("{}: expected {want:?}, found {got:?}", f.version));
        }
        for x in &f.findings {
            assert!(x.line >= 1 && x.column >= 1, "{x:?}");
            assert!(!x.why.is_empty() && !x.safe.is_empty(), "{x:?}");
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // Each rule on by default has its pair: the unsafe file fires it, the safe one not.
    for rule in kubemigrate_lint::catalogue()
        .iter()
        .filter(|r| r.default != Level::Off)
    {
        let unsafe_file = format!("{}.unsafe.sql", rule.id);
        let safe_file = format!("{}.safe.sql", rule.id);
        let find = |v: &str| report.files.iter().find(|f| f.version == v);
        let u = find(&unsafe_file).unwrap_or_else(|| panic!("no {unsafe_file} in the corpus"));
        let s = find(&safe_file).unwrap_or_else(|| panic!("no {safe_file} in the corpus"));
        assert!(
            u.findings.iter().any(|x| x.rule == rule.id),
            "{unsafe_file}"
        );
        assert!(s.findings.iter().all(|x| x.rule != rule.id), "{safe_file}");
    }
}
