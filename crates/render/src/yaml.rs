//! A small YAML writer for JSON values, as `kubectl get -o yaml` writes them: block
//! mappings and sequences, keys in the order given, strings quoted only when a
//! plain scalar would read back as something else, and multi-line strings (SQL
//! files) as literal blocks. Its scalar writer, [`scalar`], is public: the one place
//! that decides how a string is written in YAML.

use serde_json::Value;

/// Writes `docs` as a YAML stream: each document starts with `---`.
pub fn to_yaml_stream(docs: &[Value]) -> String {
    let mut out = String::new();
    for doc in docs {
        out.push_str("---\n");
        write_block(&mut out, doc, 0);
    }
    out
}

/// Writes one value as a YAML document (no `---`).
pub fn to_yaml(doc: &Value) -> String {
    let mut out = String::new();
    write_block(&mut out, doc, 0);
    out
}

fn indent(out: &mut String, n: usize) {
    for _ in 0..n {
        out.push(' ');
    }
}

/// Writes a mapping or sequence at `level`, or a scalar on its own line.
fn write_block(out: &mut String, v: &Value, level: usize) {
    match v {
        Value::Object(map) if !map.is_empty() => {
            for (k, val) in map {
                indent(out, level);
                out.push_str(&scalar_string(k, level));
                out.push(':');
                write_value_after_key(out, val, level);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for item in items {
                indent(out, level);
                out.push('-');
                write_item(out, item, level);
            }
        }
        other => {
            indent(out, level);
            out.push_str(&inline(other, level));
            out.push('\n');
        }
    }
}

fn write_value_after_key(out: &mut String, val: &Value, level: usize) {
    match val {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            write_block(out, val, level + 2);
        }
        // Sequences under a key are not indented, as kubectl writes them.
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            write_block(out, val, level);
        }
        other => {
            out.push(' ');
            out.push_str(&inline(other, level + 2));
            out.push('\n');
        }
    }
}

/// Writes a sequence item after its `-`.
fn write_item(out: &mut String, item: &Value, level: usize) {
    match item {
        Value::Object(map) if !map.is_empty() => {
            // The first key goes on the dash's line; the rest line up with it.
            for (i, (k, val)) in map.iter().enumerate() {
                if i == 0 {
                    out.push(' ');
                } else {
                    indent(out, level + 2);
                }
                out.push_str(&scalar_string(k, level + 2));
                out.push(':');
                write_value_after_key(out, val, level + 2);
            }
        }
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            write_block(out, item, level + 2);
        }
        other => {
            out.push(' ');
            out.push_str(&inline(other, level + 2));
            out.push('\n');
        }
    }
}

/// A value that fits after `key: ` or `- `: scalars, empty collections, literal blocks.
fn inline(v: &Value, level: usize) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => scalar_string(s, level),
        Value::Object(_) => "{}".into(),
        Value::Array(_) => "[]".into(),
    }
}

/// A string as a YAML scalar that reads back as exactly this string: a literal block
/// for multi-line text when one holds it, else [`scalar`].
fn scalar_string(s: &str, level: usize) -> String {
    if let Some(block) = literal_block(s, level) {
        return block;
    }
    scalar(s)
}

/// Any text as a one-line YAML scalar that reads back as exactly this string, in
/// YAML 1.1 and 1.2 readers alike: plain when nothing can misread it (`postgres:15`,
/// `500m`, `a b`), else double-quoted with escapes (`"yes"`, `"1e3"`, `"a: b"`,
/// `"two\nlines"`). The one YAML scalar writer of the project: the rendered objects
/// and `import terraform-vars`'s plan both use it. It fits wherever a scalar may
/// stand in block context: after `key: `, after `- `, and as a key.
pub fn scalar(s: &str) -> String {
    if is_safe_plain(s) {
        s.to_string()
    } else {
        double_quoted(s)
    }
}

/// Characters YAML readers (libyaml, go-yaml, which kubectl uses) refuse or read as
/// line breaks when written as they are: they are escaped in double quotes and
/// never put in a literal block.
fn needs_escape(c: char) -> bool {
    c.is_control() // C0, DEL, C1 (NEL included)
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}')
}

/// A YAML double-quoted scalar: `"`, `\\` and every character of
/// [`needs_escape`] escaped.
fn double_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            // Every such character is in the Basic Multilingual Plane.
            c if needs_escape(c) => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A multi-line string as a literal block (`|`), when every character survives one.
fn literal_block(s: &str, level: usize) -> Option<String> {
    if !s.contains('\n') || s.len() < 2 {
        return None;
    }
    // Characters a literal block cannot hold as written: control characters other
    // than tab and newline, a carriage return, a BOM, trailing spaces on a line
    // (allowed, but easy to lose), and a line of only spaces.
    if s.chars().any(|c| c != '\n' && c != '\t' && needs_escape(c)) {
        return None;
    }
    if s.lines().any(|l| l.ends_with(' ') || l.ends_with('\t')) {
        return None;
    }
    // Trailing blank lines would need "keep" chomping; quote such strings instead.
    if s.ends_with("\n\n") {
        return None;
    }
    let body = s.strip_suffix('\n').unwrap_or(s);
    let chomp = if s.ends_with('\n') { "" } else { "-" };
    // An explicit indentation indicator when the first line starts with a space.
    let first_line_indented = body.starts_with([' ', '\t']) || body.starts_with('\n');
    let width = 2;
    let mut out = String::from("|");
    if first_line_indented {
        out.push_str(&width.to_string());
    }
    out.push_str(chomp);
    for line in body.split('\n') {
        out.push('\n');
        if !line.is_empty() {
            indent(&mut out, level);
            out.push_str(line);
        }
    }
    Some(out)
}

/// Whether `s` can be written unquoted and read back as the same string (YAML 1.1
/// and 1.2 readers alike: `yes`, `on`, `0755`, `1e3` and `null` are quoted).
fn is_safe_plain(s: &str) -> bool {
    if s.is_empty() || s.trim() != s {
        return false;
    }
    let lower = s.to_ascii_lowercase();
    if matches!(
        lower.as_str(),
        "true"
            | "false"
            | "yes"
            | "no"
            | "on"
            | "off"
            | "y"
            | "n"
            | "null"
            | "~"
            | ".nan"
            | ".inf"
            | "-.inf"
            | "+.inf"
    ) {
        return false;
    }
    // Anything a YAML 1.1 or 1.2 reader could take for a number, a date or a
    // sexagesimal time: `1e3`, `0x1f`, `0o17`, `1_000`, `2024-01-01`, `12:30`, `.5`.
    let unsigned = s.strip_prefix(['+', '-']).unwrap_or(s);
    if unsigned.starts_with(|c: char| c.is_ascii_digit() || c == '.')
        && unsigned
            .chars()
            .all(|c| c.is_ascii_hexdigit() || "_.:+-xXoO".contains(c))
    {
        return false;
    }
    if s.starts_with("---") || s.starts_with("...") {
        return false;
    }
    let first = s.as_bytes()[0];
    // `-`, `?` and `:` may start a plain scalar only before a non-space; the other
    // indicators never.
    if first == b'-' && (s.len() == 1 || s.as_bytes()[1] == b' ') {
        return false;
    }
    if matches!(
        first,
        b'?' | b':'
            | b','
            | b'['
            | b']'
            | b'{'
            | b'}'
            | b'#'
            | b'&'
            | b'*'
            | b'!'
            | b'|'
            | b'>'
            | b'\''
            | b'"'
            | b'%'
            | b'@'
            | b'`'
    ) {
        return false;
    }
    if s.contains(": ") || s.contains(" #") || s.ends_with(':') {
        return false;
    }
    s.chars()
        .all(|c| c.is_ascii_alphanumeric() || " ._-/:=+@()<>$,;~^%".contains(c))
        && !s.contains(['{', '}', '[', ']', ','])
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn kubectl_like_layout() {
        let v = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "x", "labels": {"app.kubernetes.io/name": "x"}},
            "data": {"A": "5432", "B": "yes", "C": "", "D": "a: b"},
            "list": [{"name": "a", "value": "1"}, "plain", []],
            "empty": {}
        });
        assert_eq!(
            to_yaml(&v),
            "apiVersion: v1\ndata:\n  A: \"5432\"\n  B: \"yes\"\n  C: \"\"\n  D: \"a: b\"\n\
             empty: {}\nkind: ConfigMap\n\
             list:\n- name: a\n  value: \"1\"\n- plain\n- []\n\
             metadata:\n  labels:\n    app.kubernetes.io/name: x\n  name: x\n"
        );
    }

    #[test]
    fn quantities_and_flags_stay_plain_numbers_are_quoted() {
        let v = json!([
            "500m",
            "1Gi",
            "300s",
            "--lock",
            "1e3",
            "0x1f",
            "2024-01-01",
            "12:30",
            "-",
            "---x",
            "deadbeef"
        ]);
        assert_eq!(
            to_yaml(&v),
            "- 500m\n- 1Gi\n- 300s\n- --lock\n- \"1e3\"\n- \"0x1f\"\n- \"2024-01-01\"\n- \"12:30\"\n- \"-\"\n- \"---x\"\n- deadbeef\n"
        );
    }

    /// Reads YAML back with the plan loader's parser, typing plain scalars as YAML
    /// 1.2's core schema does.
    fn read_back(text: &str) -> Value {
        use kubemigrate_plan::yaml::{NodeKind, parse};
        fn conv(n: &kubemigrate_plan::yaml::Node) -> Value {
            match &n.kind {
                NodeKind::Map(e) => Value::Object(
                    e.iter()
                        .map(|(k, v)| (k.key_text().to_string(), conv(v)))
                        .collect(),
                ),
                NodeKind::Seq(items) => Value::Array(items.iter().map(conv).collect()),
                NodeKind::Scalar { text, plain: false } => Value::String(text.clone()),
                NodeKind::Scalar { text, plain: true } => {
                    if n.is_null() {
                        Value::Null
                    } else if text == "true" || text == "false" {
                        Value::Bool(text == "true")
                    } else if let Ok(i) = text.parse::<i64>() {
                        json!(i)
                    } else if let Ok(f) = text.parse::<f64>() {
                        json!(f)
                    } else {
                        Value::String(text.clone())
                    }
                }
            }
        }
        conv(&parse(text).unwrap().unwrap())
    }

    fn arb_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i32>().prop_map(|i| json!(i)),
            "[ -~\\n\\t]{0,12}".prop_map(Value::String),
            "[a-zA-Z0-9 .:_/#'\"-]{0,8}\\n[a-zA-Z0-9 ;$()]{0,8}\\n?".prop_map(Value::String),
            any::<String>().prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map("[a-zA-Z0-9./_-]{1,8}", inner, 1..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        #[test]
        fn what_is_written_reads_back_the_same(
            map in proptest::collection::btree_map("[a-zA-Z0-9./_-]{1,8}", arb_value(), 1..5)
        ) {
            let v = Value::Object(map.into_iter().collect());
            let text = to_yaml(&v);
            proptest::prop_assert_eq!(read_back(&text), v, "{}", text);
        }
    }

    /// Strings a YAML reader could take for something else, or lose a part of.
    const TRICKY: &[&str] = &[
        "",
        "yes",
        "No",
        "on",
        "OFF",
        "y",
        "~",
        "null",
        "Null",
        "true",
        "False",
        "0x1",
        "0o17",
        "0755",
        "1e3",
        "1E3",
        "1_000",
        ".5",
        "+1",
        "-1",
        ".inf",
        "-.inf",
        ".NaN",
        "12:30",
        "1:2:3",
        "2024-01-01",
        " lead",
        "trail ",
        " ",
        "a: b",
        "end:",
        ":x",
        "#x",
        "a #b",
        "a#b",
        "-",
        "- x",
        "--lock",
        "---",
        "...",
        "? x",
        "@x",
        "`x",
        "%x",
        "!tag",
        "&a",
        "*a",
        "|",
        "> x",
        "'q'",
        "\"q\"",
        "a,b",
        "[a]",
        "{a}",
        "tab\there",
        "line\nbreak",
        "trailing\n",
        "\r\n",
        "ünïcødé ✓",
        "😀",
        "a\u{2028}b",
        "a\u{85}b",
        "\u{feff}x",
        "back\\slash",
        "postgres:15-alpine",
        "500m",
        "1.5Gi",
        "a b",
    ];

    #[test]
    fn the_scalar_writer_round_trips_tricky_strings_through_a_yaml_parser() {
        for &text in TRICKY {
            // As a value and as a key, one line each.
            let written = scalar(text);
            assert!(!written.contains('\n'), "{text:?} -> {written}");
            for doc in [format!("k: {written}\n"), format!("{written}: v\n")] {
                let back = read_back(&doc);
                let expected = if doc.starts_with("k: ") {
                    json!({ "k": text })
                } else {
                    json!({ text: "v" })
                };
                assert_eq!(back, expected, "{text:?} written as {doc:?}");
            }
            // The words and numbers of YAML 1.1 (which the parser above, a 1.2 core
            // reader, takes for strings) are quoted too.
            let lower = text.to_ascii_lowercase();
            if [
                "yes", "no", "on", "off", "y", "n", "0755", "1_000", "12:30", "1:2:3",
            ]
            .contains(&lower.as_str())
            {
                assert!(written.starts_with('"'), "{text:?} -> {written}");
            }
        }
        // Multi-line text in a document: a literal block where it fits, read back too.
        for &text in TRICKY {
            let v = json!({ "k": text, "list": [text] });
            assert_eq!(read_back(&to_yaml(&v)), v, "{text:?}: {}", to_yaml(&v));
        }
    }

    #[test]
    fn characters_yaml_readers_refuse_are_escaped() {
        let v = json!({"k": "a\u{7f}b\u{85}c\u{2028}d\u{1F600}\"\\"});
        assert_eq!(
            to_yaml(&v),
            "k: \"a\\u007fb\\u0085c\\u2028d\u{1F600}\\\"\\\\\"\n"
        );
        // A line separator inside SQL keeps the file out of a literal block.
        let v = json!({"f.sql": "SELECT 1;\n-- \u{2028}\n"});
        assert!(to_yaml(&v).starts_with("f.sql: \""), "{}", to_yaml(&v));
    }

    #[test]
    fn multi_line_strings_are_literal_blocks() {
        let v =
            json!({"data": {"f.sql": "CREATE TABLE t (id int);\n\nINSERT INTO t VALUES (1);\n"}});
        assert_eq!(
            to_yaml(&v),
            "data:\n  f.sql: |\n    CREATE TABLE t (id int);\n\n    INSERT INTO t VALUES (1);\n"
        );
        let v = json!({"k": "  indented\nno newline"});
        assert_eq!(to_yaml(&v), "k: |2-\n    indented\n  no newline\n");
    }
}
