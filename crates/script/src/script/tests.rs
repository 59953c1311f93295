//! Tests of the script reader: interpolation, streaming in any block size against
//! the whole-file split, `--set` names, booleans and the checksum.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure the test reports"
)]
use super::variables::quote_literal;
use super::*;
use crate::lexer;

fn vars(pairs: &[(&str, &str)]) -> Variables {
    let mut v = Variables::new();
    for (k, val) in pairs {
        v.set(*k, *val);
    }
    v
}

#[test]
fn interpolation_skips_quotes_comments_dollar_quotes_and_casts() {
    let v = vars(&[("t", "users"), ("n", "it's"), ("c", "Col\"x")]);
    let (out, edits) = interpolate(
        "select :'n', x::int, ':t', $$ :t $$, \"a:t\" from :t /* :t */ -- :t\nwhere :\"c\" = 1",
        &v,
    )
    .unwrap();
    assert_eq!(
        out,
        "select 'it''s', x::int, ':t', $$ :t $$, \"a:t\" from users /* :t */ -- :t\nwhere \"Col\"\"x\" = 1"
    );
    assert_eq!(edits.len(), 3);
    assert_eq!(interpolate("select :nope", &v), Err((7, "nope".into())));
    assert_eq!(quote_literal("a\\b"), " E'a\\\\b'");
}

#[test]
fn offsets_map_back_through_interpolation() {
    let v = vars(&[("long", "0123456789")]);
    let sql = "select :long, nope";
    let (out, edits) = interpolate(sql, &v).unwrap();
    let at = out.find("nope").unwrap();
    assert_eq!(unmap_offset(&edits, at), sql.find("nope").unwrap());
    assert_eq!(unmap_offset(&edits, 3), 3);
    assert_eq!(
        unmap_offset(&edits, out.find('3').unwrap()),
        sql.find(':').unwrap()
    );
}

/// What the whole-input splitter says a text runs: statements, and COPY data
/// without its terminator line.
fn expected(text: &str) -> Result<Vec<String>, ()> {
    let chunks = lexer::split(text).map_err(|_| ())?;
    let mut out = Vec::new();
    for c in chunks {
        match c.kind {
            ChunkKind::Sql => out.push(c.text(text).to_string()),
            ChunkKind::CopyData => {
                let data = c.text(text);
                let data = data.strip_suffix('\n').unwrap_or(data);
                let data = data.strip_suffix('\r').unwrap_or(data);
                let data = data.strip_suffix("\\.").unwrap_or(data);
                out.push(format!("DATA:{data}"));
            }
            ChunkKind::Meta => return Err(()),
            ChunkKind::Blank => {}
        }
    }
    Ok(out)
}

fn streamed(path: &Path, block: usize) -> Result<Vec<String>, ScriptError> {
    let dir = path.parent().unwrap();
    let mut script = Script::open_with_block(path, dir, &Variables::new(), block)?;
    let mut out = Vec::new();
    while let Some(item) = script.next_item()? {
        match item {
            Item::Sql { text, .. } => out.push(text),
            Item::Copy { text, .. } => {
                out.push(text);
                let mut data = Vec::new();
                while let Some(b) = script.copy_block()? {
                    data.extend(b);
                }
                out.push(format!("DATA:{}", String::from_utf8(data).unwrap()));
            }
            Item::Echo(_) => {}
        }
    }
    Ok(out)
}

fn fragments() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let frag = prop::sample::select(vec![
        "select 1",
        ";",
        " ",
        "\n",
        "\r\n",
        "'",
        "''",
        "\"",
        "$$",
        "$a$",
        "E'\\'",
        "--",
        "/*",
        "*/",
        "(",
        ")",
        "copy t from stdin;\n",
        "1\t2\n",
        "\\.\n",
        "\\.",
        "begin atomic",
        "end",
        "é",
        "x",
    ]);
    prop::collection::vec(frag, 0..40).prop_map(|v| v.concat())
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(600))]
    #[test]
    fn streaming_in_any_block_size_runs_what_the_whole_file_split_gives(text in fragments(), block in 1usize..9) {
        let dir = std::env::temp_dir().join(format!("km-script-{}-{:?}", std::process::id(), std::thread::current().id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.sql");
        std::fs::write(&path, &text).unwrap();
        let want = expected(&text);
        let got = streamed(&path, block);
        match (&want, &got) {
            (Ok(w), Ok(g)) => proptest::prop_assert_eq!(w, g),
            (Err(()), Err(_)) => {}
            _ => proptest::prop_assert!(false, "whole: {:?}\nstreamed: {:?}", want, got),
        }
        let summary = Script::summarize(&path, &dir, &Variables::new());
        if let Ok(summary) = summary {
            proptest::prop_assert_eq!(summary.checksum.to_string(), crate::source::checksum(&text));
        }
    }
}

#[test]
fn set_names_must_be_usable_as_variables() {
    assert!(Variables::parse_assignment("env=prod").is_ok());
    assert!(Variables::parse_assignment("_x1=").is_ok());
    let e = Variables::parse_assignment("1a=x").unwrap_err();
    assert!(e.contains("could never use :1a"), "{e}");
    assert!(Variables::parse_assignment("a-b=x").is_err());
    assert!(Variables::parse_assignment("=x").is_err());
}

#[test]
fn booleans_as_psql_reads_them() {
    for t in ["true", "t", "TRUE", "yes", "y", "on", "1"] {
        assert_eq!(parse_bool(t), Some(true), "{t}");
    }
    for f in ["false", "f", "no", "n", "off", "0"] {
        assert_eq!(parse_bool(f), Some(false), "{f}");
    }
    for x in ["o", "2", "", "maybe"] {
        assert_eq!(parse_bool(x), None, "{x}");
    }
}

#[test]
fn checksum_matches_the_whole_file_rule_across_blocks() {
    let text = "a\r\nb\rc\r\n";
    let mut whole = Checksum::new();
    whole.update(text.as_bytes());
    for cut in 0..text.len() {
        let mut parts = Checksum::new();
        parts.update(&text.as_bytes()[..cut]);
        parts.update(&text.as_bytes()[cut..]);
        assert_eq!(
            parts.finish().to_string(),
            crate::source::checksum(text),
            "cut at {cut}"
        );
    }
    assert_eq!(whole.finish().to_string(), crate::source::checksum(text));
}
