//! Tests of the variable file readers.

use super::*;

fn one(text: &str) -> Kind {
    let attrs = parse_hcl(text).unwrap();
    assert_eq!(attrs.len(), 1, "{attrs:?}");
    attrs.into_iter().next().unwrap().value.kind
}

fn string(text: &str) -> String {
    match one(text) {
        Kind::String(s) => s,
        other => panic!("not a string: {other:?}"),
    }
}

fn err(text: &str) -> String {
    parse_hcl(text).unwrap_err().to_string()
}

fn s(text: &str) -> Kind {
    Kind::String(text.to_string())
}

fn kinds(v: &[Value]) -> Vec<Kind> {
    v.iter().map(|v| v.kind.clone()).collect()
}

#[test]
fn scalars() {
    assert_eq!(one("a = 5432"), Kind::Number(5432.0));
    assert_eq!(one("a = -1.5e2"), Kind::Number(-150.0));
    assert_eq!(one("a = true"), Kind::Bool(true));
    assert_eq!(one("a = false\n"), Kind::Bool(false));
    assert_eq!(one("a = null"), Kind::Null);
    assert_eq!(one("a = \"x\""), s("x"));
}

#[test]
fn string_escapes_and_template_escapes() {
    assert_eq!(
        string(r#"a = "a\nb\tc\"d\\e\u00e9\U0001F600""#),
        "a\nb\tc\"d\\e\u{e9}\u{1F600}"
    );
    assert_eq!(
        string(r#"a = "$${x} %%{y} $ % $$ 100%""#),
        "${x} %{y} $ % $$ 100%"
    );
    assert_eq!(string("a = \"ünïcødé ✓\""), "ünïcødé ✓");
}

#[test]
fn interpolation_is_an_error_at_its_column() {
    assert_eq!(
        err("a = \"x${var.y}\""),
        "1:7: interpolation ${…} is not allowed in a .tfvars file (write the value itself, or $${ for a literal ${)"
    );
    assert!(err("a = \"%{ if x }\"").starts_with("1:6: template directive"));
}

#[test]
fn bad_escapes() {
    assert!(err(r#"a = "\q""#).starts_with("1:6: unknown escape \\q"));
    assert!(err(r#"a = "\u12""#).starts_with("1:6: expected 4 hex digits"));
    assert!(err(r#"a = "\uD800""#).contains("not a Unicode scalar value"));
}

#[test]
fn unterminated_string_points_at_its_start() {
    assert!(err("a = 1\nb = \"abc\nc = 2\n").starts_with("2:5: unterminated string"));
    assert!(err("a = \"abc").starts_with("1:5: unterminated string"));
}

#[test]
fn heredocs() {
    assert_eq!(
        string("a = <<EOF\nline 1\n  line 2\nEOF\n"),
        "line 1\n  line 2\n"
    );
    assert_eq!(
        string("a = <<-EOT\n    x\n      y\n\n    z\n    EOT\n"),
        "x\n  y\n\nz\n"
    );
    assert_eq!(string("a = <<EOF\nEOF"), "");
    // No escapes in heredocs, but the template escapes apply.
    assert_eq!(string("a = <<EOF\n\\n $${x}\nEOF\n"), "\\n ${x}\n");
    assert!(err("a = <<EOF\nx ${y}\nEOF\n").starts_with("2:3: interpolation"));
    assert!(err("a = <<EOF\nnever closed\n").starts_with("1:5: unterminated heredoc"));
    assert!(
        err("a = <<EOF x\nEOF\n").starts_with("1:10: expected a new line after the heredoc marker")
    );
    let attrs = parse_hcl("a = <<EOF\nx\nEOF\nb = 1\n").unwrap();
    assert_eq!(attrs[1].pos, Pos { line: 4, column: 1 });
}

#[test]
fn lists_with_comments_and_trailing_commas() {
    let text = "a = [\n  \"x\", # first\n  // second\n  2, /* third */ true,\n]\n";
    match one(text) {
        Kind::List(items) => {
            assert_eq!(
                kinds(&items),
                vec![s("x"), Kind::Number(2.0), Kind::Bool(true)]
            );
            assert_eq!(items[1].pos, Pos { line: 4, column: 3 });
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(one("a = []"), Kind::List(vec![]));
    assert!(err("a = [1 2]").starts_with("1:8: expected , or ] in the list that starts at 1:5"));
    assert!(err("a = [1,\n2\n").starts_with("1:5: unterminated list"));
}

#[test]
fn nested_objects_with_every_separator_and_key_form() {
    let text = "r = {\n  requests = { cpu = \"1\", memory: \"2Gi\" }\n  \"limits\" = {\n    cpu = 2 # c\n  },\n}\n";
    let Kind::Object(items) = one(text) else {
        panic!()
    };
    assert_eq!(items[0].0.name, "requests");
    assert_eq!(items[1].0.name, "limits");
    assert_eq!(items[1].0.pos, Pos { line: 3, column: 3 });
    let Kind::Object(req) = &items[0].1.kind else {
        panic!()
    };
    assert_eq!(req[1].0.name, "memory");
    assert_eq!(req[1].1.kind, s("2Gi"));
    let Kind::Object(lim) = &items[1].1.kind else {
        panic!()
    };
    assert_eq!(lim[0].1.kind, Kind::Number(2.0));
    assert_eq!(one("m = {}"), Kind::Object(vec![]));
    assert!(err("m = { a = 1 b = 2 }").starts_with("1:13: expected a comma, a new line or }"));
    assert!(err("m = { a = 1, a = 2 }").starts_with("1:14: key a is set twice"));
    assert!(err("m = { app.kubernetes.io/name = 1 }").contains("quote keys that hold"));
    assert!(err("m = {\n a = 1\n").starts_with("1:5: unterminated object"));
}

#[test]
fn comments_everywhere() {
    let attrs = parse_hcl(
        "# top\n// also\n/* block\n comment */ a = 1 # after\nb = \"#not a comment\" // c\n",
    )
    .unwrap();
    assert_eq!(attrs.len(), 2);
    assert_eq!(attrs[1].value.kind, s("#not a comment"));
    assert!(err("a = 1 /* open").starts_with("1:7: unterminated comment"));
}

#[test]
fn crlf_bom_and_unicode_identifiers() {
    let attrs = parse_hcl("\u{feff}a = 1\r\nnäme = \"x\"\r\n").unwrap();
    assert_eq!(attrs[1].name, "näme");
    assert_eq!(attrs[1].value.pos, Pos { line: 2, column: 8 });
}

#[test]
fn trailing_garbage_and_other_mistakes() {
    assert!(err("a = 1 2").starts_with("1:7: expected a new line after the value of a"));
    assert!(err("a = 1 + 2").contains("operators and expressions are not supported"));
    assert!(err("a = \"x\"\"y\"").starts_with("1:8: expected a new line"));
    assert!(err("a = 1\n}").starts_with("2:1: expected a variable name"));
    assert!(err("a =").starts_with("1:4: expected a value, found the end of the file"));
    assert!(err("a =\n1").starts_with("1:4: expected a value, found the end of the line"));
    assert!(err("a 1").starts_with("1:3: expected = after a"));
    assert!(err("a: 1").starts_with("1:2: expected = after a"));
    assert!(err("a = 'x'").contains("double quotes"));
    assert!(err("a = -x").starts_with("1:5: expected a number after -"));
    assert!(err("a = 1e999").contains("out of range"));
}

#[test]
fn references_calls_blocks_and_bare_words() {
    assert_eq!(
        err("p = var.db_password"),
        "1:5: references are not allowed in a .tfvars file: var.db_password (write the value itself)"
    );
    assert!(err("p = file(\"x\")").contains("function calls are not allowed"));
    assert!(err("p = hello").contains("unquoted word hello: write text in double quotes"));
    assert!(err("module \"m\" {\n}").contains("starts a block"));
    assert!(err("terraform {\n}").contains("starts a block"));
}

#[test]
fn duplicates_are_errors() {
    assert_eq!(
        err("a = 1\nb = 2\na = 3\n"),
        "3:1: a is set twice (first at line 1)"
    );
}

#[test]
fn nesting_is_limited() {
    let deep = format!("a = {}{}", "[".repeat(500), "]".repeat(500));
    assert!(err(&deep).contains("nest more than"));
}

#[test]
fn no_single_edit_of_the_examples_panics() {
    // Every deletion, and every insertion of a troublesome character, at every place.
    for (text, json) in [
        (
            include_str!("../../../../examples/terraform/basic.tfvars"),
            false,
        ),
        (
            include_str!("../../../../examples/terraform/basic.tfvars.json"),
            true,
        ),
        (
            "a = <<-EOF\n  x ${y}\n  EOF\nm = { k = [1, \"\\u00e9\", {}] }\n",
            false,
        ),
    ] {
        let chars: Vec<char> = text.chars().collect();
        let parse = |t: &str| {
            if json {
                parse_json(t).map(|_| ())
            } else {
                parse_hcl(t).map(|_| ())
            }
        };
        for i in 0..=chars.len() {
            let mut deleted = chars.clone();
            if i < chars.len() {
                deleted.remove(i);
                let _ = parse(&deleted.iter().collect::<String>());
            }
            for c in [
                '"', '\\', '{', '}', '[', ']', '<', '$', '#', '/', '*', '\n', '-', 'é', '\u{0}',
            ] {
                let mut inserted = chars.clone();
                inserted.insert(i, c);
                let _ = parse(&inserted.iter().collect::<String>());
            }
        }
    }
}

#[test]
fn json_values_with_positions() {
    let text = "{\n  \"port\": 5432,\n  \"//\": \"a comment\",\n  \"m\": {\"a\": [1, \"x\", null, true]},\n  \"s\": \"\\u00e9 $${x}\"\n}\n";
    let attrs = parse_json(text).unwrap();
    assert_eq!(attrs.len(), 3);
    assert_eq!(attrs[0].name, "port");
    assert_eq!(attrs[0].pos, Pos { line: 2, column: 3 });
    assert_eq!(
        attrs[0].value.pos,
        Pos {
            line: 2,
            column: 11
        }
    );
    assert_eq!(attrs[0].value.kind, Kind::Number(5432.0));
    let Kind::Object(m) = &attrs[1].value.kind else {
        panic!()
    };
    let Kind::List(list) = &m[0].1.kind else {
        panic!()
    };
    assert_eq!(
        kinds(list),
        vec![Kind::Number(1.0), s("x"), Kind::Null, Kind::Bool(true)]
    );
    assert_eq!(attrs[2].value.kind, s("\u{e9} ${x}"));
}

#[test]
fn json_errors() {
    let e = parse_json("{\"a\": 1,\n \"b\": }").unwrap_err().to_string();
    assert!(e.starts_with("2:7: invalid JSON: expected value"), "{e}");
    assert!(
        parse_json("[1]")
            .unwrap_err()
            .to_string()
            .contains("one JSON object")
    );
    assert_eq!(
        parse_json("{\"a\": 1, \"a\": 2}").unwrap_err().to_string(),
        "1:10: \"a\" is set twice in this object (first at 1:2)"
    );
    assert!(
        parse_json("{\"a\": \"${x}\"}")
            .unwrap_err()
            .to_string()
            .starts_with("1:7: interpolation")
    );
    assert!(parse_json("").is_err());
}

#[test]
fn json_positions_count_characters_and_survive_crlf_and_a_bom() {
    let text = "\u{feff}{\r\n  \"é\": \"ü\", \"n\": [1,\r\n 2],\r\n  \"o\": {\"k\": true}\r\n}";
    let attrs = parse_json(text).unwrap();
    let at = |a: &Attribute| {
        (
            a.pos.line,
            a.pos.column,
            a.value.pos.line,
            a.value.pos.column,
        )
    };
    assert_eq!(at(&attrs[0]), (2, 3, 2, 8));
    assert_eq!(at(&attrs[1]), (2, 13, 2, 18));
    let Kind::List(items) = &attrs[1].value.kind else {
        panic!()
    };
    assert_eq!(items[1].pos, Pos { line: 3, column: 2 });
    assert_eq!(at(&attrs[2]), (4, 3, 4, 8));
    let Kind::Object(inner) = &attrs[2].value.kind else {
        panic!()
    };
    assert_eq!(inner[0].0.pos, Pos { line: 4, column: 9 });
    // A number too large for a double is out of range, where it is.
    assert_eq!(
        parse_json("{\"a\":\n  1e999}").unwrap_err().to_string(),
        "2:3: number 1e999 is out of range"
    );
}
