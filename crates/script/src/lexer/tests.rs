//! Tests of the lexer: statements, COPY data, meta-commands, errors and positions,
//! and properties over generated inputs.

use super::*;
use ChunkKind::{Blank, CopyData, Meta, Sql};
use proptest::prelude::*;

/// All chunks as (kind, text).
fn chunks(input: &str) -> Vec<(ChunkKind, &str)> {
    split(input)
        .unwrap_or_else(|e| panic!("split failed: {e} for {input:?}"))
        .iter()
        .map(|c| (c.kind, c.text(input)))
        .collect()
}

/// Texts of the Sql chunks only.
fn stmts(input: &str) -> Vec<&str> {
    chunks(input)
        .into_iter()
        .filter(|(k, _)| *k == Sql)
        .map(|(_, t)| t)
        .collect()
}

/// (kind, line, column) of the error.
fn err(input: &str) -> (LexErrorKind, u32, u32) {
    let e = split(input).expect_err(input);
    (e.kind, e.line, e.column)
}

/// Asserts that each input fails to split with its (kind, line, column).
fn assert_errors(cases: &[(&str, LexErrorKind, u32, u32)]) {
    for (input, kind, line, column) in cases {
        assert_eq!(err(input), (kind.clone(), *line, *column), "{input:?}");
    }
}

// --- statements -------------------------------------------------------

#[test]
fn empty_input_gives_no_chunks() {
    assert!(split("").unwrap().is_empty());
}

#[test]
fn blank_input_is_one_blank_chunk() {
    let input = "  \n-- c\n/* x */\r\n\t";
    assert_eq!(chunks(input), vec![(Blank, input)]);
}

#[test]
fn simple_statements() {
    assert_eq!(
        chunks("select 1;\nselect 2;\n"),
        vec![
            (Sql, "select 1;"),
            (Blank, "\n"),
            (Sql, "select 2;"),
            (Blank, "\n"),
        ]
    );
    assert_eq!(
        chunks("  -- lead\nselect 1;select 2;"),
        vec![
            (Blank, "  -- lead\n"),
            (Sql, "select 1;"),
            (Sql, "select 2;"),
        ]
    );
}

#[test]
fn empty_statement() {
    assert_eq!(stmts(";;select 1;"), vec![";", ";", "select 1;"]);
}

#[test]
fn final_statement_without_semicolon() {
    assert_eq!(
        chunks("select 1;\nselect 2 -- tail ;\n/* c */\n"),
        vec![
            (Sql, "select 1;"),
            (Blank, "\n"),
            (Sql, "select 2"),
            (Blank, " -- tail ;\n/* c */\n"),
        ]
    );
    assert_eq!(chunks("select 'x'"), vec![(Sql, "select 'x'")]);
}

#[test]
fn semicolon_in_standard_string() {
    assert_eq!(
        stmts("select 'a;b', 'it''s;';select 2;"),
        vec!["select 'a;b', 'it''s;';", "select 2;"]
    );
    // standard_conforming_strings: a backslash does not escape the quote.
    assert_eq!(
        stmts(r"select 'a\';select 2;"),
        vec![r"select 'a\';", "select 2;"]
    );
    // B'', X'', N'' are standard strings.
    assert_eq!(
        stmts("select b'1;', X'F;', n'x;';select 2;"),
        vec!["select b'1;', X'F;', n'x;';", "select 2;"]
    );
}

#[test]
fn semicolon_in_escape_string() {
    assert_eq!(
        stmts(r"select E'it\'s; fine', e'\\';select 2;"),
        vec![r"select E'it\'s; fine', e'\\';", "select 2;"]
    );
    assert_eq!(
        stmts(r"select E'a''b;\';'; x;"),
        vec![r"select E'a''b;\';';", "x;"]
    );
    // A word that merely ends in `e` is not an escape-string prefix.
    assert_eq!(stmts(r"select xe'a\';x;"), vec![r"select xe'a\';", "x;"]);
}

#[test]
fn escape_string_continuation() {
    // `E'a'` <newline> `'…'` continues the escape string, so `\'` escapes.
    let input = "select E'a' -- c\n  '\\';x';\nselect 2;";
    assert_eq!(
        stmts(input),
        vec!["select E'a' -- c\n  '\\';x';", "select 2;"]
    );
    // Without a line break it is not a continuation: `'\'` is a standard string.
    assert_eq!(
        stmts("select E'a' '\\';select 2;"),
        vec!["select E'a' '\\';", "select 2;"]
    );
}

#[test]
fn semicolon_in_quoted_identifier() {
    assert_eq!(
        stmts(r#"select "a;""b" from "t;";select 2;"#),
        vec![r#"select "a;""b" from "t;";"#, "select 2;"]
    );
    assert_eq!(
        stmts(r#"select U&'d;0061', U&"a;b", u&'\';x;"#),
        vec![r#"select U&'d;0061', U&"a;b", u&'\';"#, "x;"]
    );
}

#[test]
fn dollar_quotes() {
    let body = "create function f() returns int language plpgsql as $$\n\
                begin\n  perform 1; perform 'x'';';\n  return 1;\nend;\n$$;";
    assert_eq!(
        stmts(&format!("{body}\nselect 2;")),
        vec![body, "select 2;"]
    );

    let tagged = "do $fn$ begin; $$ ; $$; $f$ ; $Fn$; end $fn$;";
    assert_eq!(
        stmts(&format!("{tagged}select 2;")),
        vec![tagged, "select 2;"]
    );

    let nested = "create function g() returns text as $outer$\n\
                  begin execute $inner$ select ';' ; $inner$; return $$;$$; end;\n\
                  $outer$ language plpgsql;";
    assert_eq!(
        stmts(&format!("{nested}\nselect 3;")),
        vec![nested, "select 3;"]
    );

    // Quotes inside a dollar quote are plain characters.
    assert_eq!(
        stmts("select $q$ ' \" /* -- $q$; select 2;"),
        vec!["select $q$ ' \" /* -- $q$;", "select 2;"]
    );
    // Non-ASCII tag.
    assert_eq!(
        stmts("select $é$ ; $é$; select 2;"),
        vec!["select $é$ ; $é$;", "select 2;"]
    );
}

#[test]
fn params_and_identifiers_are_not_dollar_quotes() {
    assert_eq!(
        stmts("select $1, a$b, $2 from t$$ where x = $3;select 2;"),
        vec!["select $1, a$b, $2 from t$$ where x = $3;", "select 2;"]
    );
    assert_eq!(
        stmts("select a$$b;select $1$;"),
        vec!["select a$$b;", "select $1$;"]
    );
    // A `$tag` without a closing `$` is not a dollar quote.
    assert_eq!(
        stmts("select $ab; select 2;"),
        vec!["select $ab;", "select 2;"]
    );
    // A digit cannot start a tag.
    assert_eq!(
        stmts("select $1a$;select 2;"),
        vec!["select $1a$;", "select 2;"]
    );
}

#[test]
fn comments() {
    assert_eq!(
        stmts("select 1 -- ; not the end\n, 2;select 3;"),
        vec!["select 1 -- ; not the end\n, 2;", "select 3;"]
    );
    assert_eq!(
        stmts("select /* ; /* nested ; */ still ; */ 1;select 2;"),
        vec!["select /* ; /* nested ; */ still ; */ 1;", "select 2;"]
    );
    // `--` comment ends at a bare CR too.
    assert_eq!(
        stmts("select 1 -- c\r;select 2;"),
        vec!["select 1 -- c\r;", "select 2;"]
    );
    // Quotes inside comments do not open strings.
    assert_eq!(
        stmts("select 1 /* ' \" $$ */; -- '\nselect 2;"),
        vec!["select 1 /* ' \" $$ */;", "select 2;"]
    );
    // Comments between statements are Blank.
    assert_eq!(
        chunks("select 1; /* a /* b */ c */ -- d\nselect 2;"),
        vec![
            (Sql, "select 1;"),
            (Blank, " /* a /* b */ c */ -- d\n"),
            (Sql, "select 2;"),
        ]
    );
    // `*/*` and `/**/` inside a statement.
    assert_eq!(stmts("select 2*/**/3;x;"), vec!["select 2*/**/3;", "x;"]);
}

#[test]
fn semicolon_in_parentheses() {
    let rule = "create rule r as on insert to t do also (insert into a values (1); \
                insert into b values (2));";
    assert_eq!(
        stmts(&format!("{rule}\nselect 1;")),
        vec![rule, "select 1;"]
    );
    // Unbalanced `)` does not go negative.
    assert_eq!(
        stmts("select 1);select (2;);"),
        vec!["select 1);", "select (2;);"]
    );
    // Parentheses inside strings do not count.
    assert_eq!(
        stmts("select '(';select 2;"),
        vec!["select '(';", "select 2;"]
    );
}

#[test]
fn begin_atomic_routine_body() {
    let f = "CREATE FUNCTION f(a int) RETURNS int LANGUAGE sql\n\
             BEGIN ATOMIC\n  SELECT 1;\n  SELECT CASE WHEN a > 0 THEN 1 ELSE 2 END;\n\
             END;";
    assert_eq!(stmts(&format!("{f}\nselect 2;")), vec![f, "select 2;"]);

    let p = "create or replace procedure p() begin atomic insert into t values (1); end;";
    assert_eq!(stmts(&format!("{p}select 2;")), vec![p, "select 2;"]);

    // A comment between CREATE and OR REPLACE does not matter.
    let q = "create /* x */ or replace function q() returns int begin atomic select 1; end;";
    assert_eq!(stmts(&format!("{q}select 2;")), vec![q, "select 2;"]);

    // Transaction BEGIN/END are ordinary statements.
    assert_eq!(
        stmts("begin; select 1; end;"),
        vec!["begin;", "select 1;", "end;"]
    );
    // Not a routine: CREATE TABLE with a column named begin.
    assert_eq!(
        stmts("create table t (begin int);select 2;"),
        vec!["create table t (begin int);", "select 2;"]
    );
    // A routine with a dollar-quoted body: `;` after `$$` ends it.
    assert_eq!(
        stmts("create function f() returns int as $$ begin return 1; end $$ language plpgsql;x;"),
        vec![
            "create function f() returns int as $$ begin return 1; end $$ language plpgsql;",
            "x;"
        ]
    );
}

// --- COPY -------------------------------------------------------------

#[test]
fn copy_from_stdin() {
    assert_eq!(
        chunks("COPY t (a,b) FROM stdin;\n1\t2\n3\t';\n\\.\nselect 1;\n"),
        vec![
            (Sql, "COPY t (a,b) FROM stdin;"),
            (Blank, "\n"),
            (CopyData, "1\t2\n3\t';\n\\.\n"),
            (Sql, "select 1;"),
            (Blank, "\n"),
        ]
    );
}

#[test]
fn copy_from_stdin_crlf() {
    assert_eq!(
        chunks("COPY t FROM stdin;\r\n1\r\n2\r\n\\.\r\nselect 1;\r\n"),
        vec![
            (Sql, "COPY t FROM stdin;"),
            (Blank, "\r\n"),
            (CopyData, "1\r\n2\r\n\\.\r\n"),
            (Sql, "select 1;"),
            (Blank, "\r\n"),
        ]
    );
}

#[test]
fn copy_from_stdin_csv() {
    assert_eq!(
        chunks("copy t from STDIN with (format csv);\n\"a;\",'b\n\\.\n"),
        vec![
            (Sql, "copy t from STDIN with (format csv);"),
            (Blank, "\n"),
            (CopyData, "\"a;\",'b\n\\.\n"),
        ]
    );
}

#[test]
fn copy_from_stdin_variants() {
    // Comment after the `;` on the COPY line; `\.` at EOF without newline.
    assert_eq!(
        chunks("COPY t FROM /* c */ stdin; -- data\n1\n\\."),
        vec![
            (Sql, "COPY t FROM /* c */ stdin;"),
            (Blank, " -- data\n"),
            (CopyData, "1\n\\."),
        ]
    );
    // No data rows.
    assert_eq!(
        chunks("COPY t FROM stdin;\n\\.\n"),
        vec![
            (Sql, "COPY t FROM stdin;"),
            (Blank, "\n"),
            (CopyData, "\\.\n"),
        ]
    );
    // Only a line that is exactly `\.` ends the data.
    assert_eq!(
        chunks("COPY t FROM stdin;\n\\.x\n \\.\n\\.\n"),
        vec![
            (Sql, "COPY t FROM stdin;"),
            (Blank, "\n"),
            (CopyData, "\\.x\n \\.\n\\.\n"),
        ]
    );
    // Multi-line COPY statement: data starts after the line of the `;`.
    assert_eq!(
        chunks("COPY t\n  FROM stdin;\n1\n\\.\n"),
        vec![
            (Sql, "COPY t\n  FROM stdin;"),
            (Blank, "\n"),
            (CopyData, "1\n\\.\n"),
        ]
    );
}

#[test]
fn copy_without_stdin_data() {
    assert_eq!(
        chunks("COPY t TO stdout;\nselect 1;"),
        vec![
            (Sql, "COPY t TO stdout;"),
            (Blank, "\n"),
            (Sql, "select 1;")
        ]
    );
    assert_eq!(
        stmts("COPY t FROM '/tmp/stdin';\nselect 1;"),
        vec!["COPY t FROM '/tmp/stdin';", "select 1;"]
    );
    assert_eq!(
        stmts("copy (select a from stdin) to stdout;\nselect 1;"),
        vec!["copy (select a from stdin) to stdout;", "select 1;"]
    );
    // COPY must be the first word.
    assert_eq!(
        stmts("select copy from stdin;\nselect 1;"),
        vec!["select copy from stdin;", "select 1;"]
    );
}

// --- meta-commands ----------------------------------------------------

#[test]
fn meta_commands() {
    assert_eq!(
        chunks("\\set x 1\nselect :x;\n  \\echo 'a;b'\r\n\\q"),
        vec![
            (Meta, "\\set x 1"),
            (Blank, "\n"),
            (Sql, "select :x;"),
            (Blank, "\n  "),
            (Meta, "\\echo 'a;b'"),
            (Blank, "\r\n"),
            (Meta, "\\q"),
        ]
    );
    // After a finished statement on the same line.
    assert_eq!(
        chunks("select 1; \\gset\n"),
        vec![
            (Sql, "select 1;"),
            (Blank, " "),
            (Meta, "\\gset"),
            (Blank, "\n"),
        ]
    );
}

// --- errors -----------------------------------------------------------

#[test]
fn error_unterminated_quote() {
    assert_errors(&[
        (
            "select 1;\nselect 'abc;\n",
            LexErrorKind::UnterminatedQuote,
            2,
            8,
        ),
        ("select E'a\\'", LexErrorKind::UnterminatedQuote, 1, 8),
        ("select 'é', U&'x", LexErrorKind::UnterminatedQuote, 1, 13),
        ("'", LexErrorKind::UnterminatedQuote, 1, 1),
    ]);
}

#[test]
fn error_unterminated_identifier() {
    assert_errors(&[
        (
            "select 1;\n\n  select \"a\"\"b;",
            LexErrorKind::UnterminatedIdentifier,
            3,
            10,
        ),
        ("select u&\"x", LexErrorKind::UnterminatedIdentifier, 1, 8),
    ]);
}

#[test]
fn error_unterminated_dollar_quote() {
    let dollar = |tag: &str| LexErrorKind::UnterminatedDollarQuote { tag: tag.into() };
    assert_errors(&[
        ("select 1;\n  do $fn$ begin; end $f$;", dollar("$fn$"), 2, 6),
        ("select $$x$;", dollar("$$"), 1, 8),
        // Tags are case-sensitive.
        ("select $a$ x $A$;", dollar("$a$"), 1, 8),
    ]);
}

#[test]
fn error_unterminated_comment() {
    assert_errors(&[
        ("/* /* */", LexErrorKind::UnterminatedComment, 1, 1),
        (
            "select 1;\nselect 1 /* x */ /* y",
            LexErrorKind::UnterminatedComment,
            2,
            18,
        ),
        ("select 1; /*/", LexErrorKind::UnterminatedComment, 1, 11),
    ]);
}

#[test]
fn error_unterminated_copy() {
    assert_errors(&[
        (
            "select 1;\nCOPY t FROM stdin;\n1\n2\n",
            LexErrorKind::UnterminatedCopy,
            2,
            1,
        ),
        ("COPY t FROM stdin;", LexErrorKind::UnterminatedCopy, 1, 1),
        (
            "COPY t FROM stdin; -- c",
            LexErrorKind::UnterminatedCopy,
            1,
            1,
        ),
        // No `;`: the statement runs to EOF.
        ("  COPY t FROM stdin", LexErrorKind::UnterminatedCopy, 1, 3),
        // `\.` must be alone on its line.
        (
            "COPY t FROM stdin;\n1\n \\.\n\\.  \n",
            LexErrorKind::UnterminatedCopy,
            1,
            1,
        ),
    ]);
}

#[test]
fn error_meta_command_in_statement() {
    assert_errors(&[
        (
            "select 1\n  \\gexec\n",
            LexErrorKind::MetaCommandInStatement,
            2,
            3,
        ),
        (
            "select 1;\nselect\n\\x\n;",
            LexErrorKind::MetaCommandInStatement,
            3,
            1,
        ),
    ]);
}

#[test]
fn gset_and_g_end_a_statement_with_their_line() {
    let sql = "select 1 as x \\gset p_\nselect 2\n\\g\nselect 3 \\gexec_not;";
    let chunks = split(sql).unwrap();
    let texts: Vec<&str> = chunks
        .iter()
        .filter(|c| c.kind == ChunkKind::Sql)
        .map(|c| c.text(sql))
        .collect();
    assert_eq!(
        texts,
        [
            "select 1 as x \\gset p_",
            "select 2\n\\g",
            "select 3 \\gexec_not;"
        ]
    );
    assert_eq!(send_meta_at(texts[0]), Some(14));
    assert_eq!(send_meta_at(texts[1]), Some(9));
    assert_eq!(send_meta_at(texts[2]), None);
    // Inside a string it is text.
    assert_eq!(send_meta_at("select '\\gset' \\g"), Some(15));
}

#[test]
fn error_text_after_copy_statement() {
    assert_errors(&[
        (
            "COPY t FROM stdin; 1\t2\n\\.\n",
            LexErrorKind::TextAfterCopyStatement,
            1,
            20,
        ),
        (
            "-- é\nCOPY t FROM stdin;\tselect 1;\n\\.\n",
            LexErrorKind::TextAfterCopyStatement,
            2,
            20,
        ),
        (
            "COPY t FROM stdin;/* c */\n\\.\n",
            LexErrorKind::TextAfterCopyStatement,
            1,
            19,
        ),
    ]);
}

#[test]
fn error_text_after_cr_ended_comment_on_copy_line() {
    // A `--` comment ends at a bare CR; what follows is SQL for psql.
    assert_eq!(
        err("COPY t FROM stdin; --\r'\n\\.\n"),
        (LexErrorKind::TextAfterCopyStatement, 1, 23)
    );
    assert_eq!(
        chunks("COPY t FROM stdin; -- a\r -- b\r\n\\.\n"),
        vec![
            (Sql, "COPY t FROM stdin;"),
            (Blank, " -- a\r -- b\r\n"),
            (CopyData, "\\.\n"),
        ]
    );
}

#[test]
fn error_display() {
    let e = split("select 'x").unwrap_err();
    assert_eq!(
        e.to_string(),
        "unterminated quoted string starting at line 1, column 8"
    );
    let e = split("select\n\\x").unwrap_err();
    assert_eq!(
        e.to_string(),
        "psql meta-command inside an unfinished sql statement at line 2, column 1"
    );
}

// --- positions --------------------------------------------------------

#[test]
fn chunk_line_numbers() {
    let input = "-- head\n\nselect 1;\nselect\n2;\\set a b\n\nCOPY t FROM stdin;\n1\n\\.\nx";
    let got: Vec<(ChunkKind, u32)> = split(input)
        .unwrap()
        .iter()
        .map(|c| (c.kind, c.line))
        .collect();
    assert_eq!(
        got,
        vec![
            (Blank, 1),
            (Sql, 3),
            (Blank, 3),
            (Sql, 4),
            (Meta, 5),
            (Blank, 5),
            (Sql, 7),
            (Blank, 7),
            (CopyData, 8),
            (Sql, 10),
        ]
    );
}

#[test]
fn line_col_multibyte() {
    let s = "aé\nñb";
    assert_eq!(line_col(s, 0), (1, 1));
    assert_eq!(line_col(s, 1), (1, 2));
    assert_eq!(line_col(s, 2), (1, 2)); // inside `é`
    assert_eq!(line_col(s, 3), (1, 3)); // the `\n`
    assert_eq!(line_col(s, 4), (2, 1));
    assert_eq!(line_col(s, 6), (2, 2));
    assert_eq!(line_col(s, 7), (2, 3));
    assert_eq!(line_col(s, 100), (2, 3)); // clamped
    assert_eq!(line_col("", 5), (1, 1));
    assert_eq!(line_col("🦀🦀x", 8), (1, 3));
}

#[test]
fn chunk_text_out_of_range_is_empty() {
    let c = Chunk {
        kind: Sql,
        start: 2,
        end: 10,
        line: 1,
    };
    assert_eq!(c.text("abc"), "");
    assert_eq!(Chunk { end: 3, ..c }.text("abc"), "c");
}

// --- leading_keywords -------------------------------------------------

#[test]
fn leading_keywords_basic() {
    assert_eq!(
        leading_keywords("/* c */ create index concurrently i on t (a);", 3),
        vec!["CREATE", "INDEX", "CONCURRENTLY"]
    );
    assert_eq!(
        leading_keywords("-- x\n  Alter /* y */ TABLE -- z\n t", 5),
        vec!["ALTER", "TABLE", "T"]
    );
    assert_eq!(leading_keywords("create index", 1), vec!["CREATE"]);
    assert_eq!(leading_keywords("create index", 0), Vec::<String>::new());
    assert_eq!(leading_keywords("select(1)", 3), vec!["SELECT"]);
    assert_eq!(leading_keywords("vacuum;", 3), vec!["VACUUM"]);
    assert_eq!(leading_keywords("", 3), Vec::<String>::new());
    assert_eq!(
        leading_keywords("select a$b c", 3),
        vec!["SELECT", "A$B", "C"]
    );
}

#[test]
fn leading_keywords_stops_at_non_words() {
    assert_eq!(leading_keywords("E'x' select", 3), Vec::<String>::new());
    assert_eq!(leading_keywords("select E'x' from", 3), vec!["SELECT"]);
    assert_eq!(leading_keywords("select u&\"x\" from", 3), vec!["SELECT"]);
    assert_eq!(leading_keywords("select \"x\" from", 3), vec!["SELECT"]);
    assert_eq!(leading_keywords("select 1 from", 3), vec!["SELECT"]);
    assert_eq!(leading_keywords("(select 1)", 3), Vec::<String>::new());
    assert_eq!(leading_keywords("select /* open", 3), vec!["SELECT"]);
    // `e` not followed by a quote is a word.
    assert_eq!(leading_keywords("e x", 3), vec!["E", "X"]);
}

#[test]
fn leading_words_are_borrowed_as_written_and_end_at_a_non_word() {
    let sql = "-- c\nCreate OR replace /* x */ Function f() returns int";
    assert_eq!(
        leading_words(sql).collect::<Vec<_>>(),
        ["Create", "OR", "replace", "Function", "f"]
    );
    let mut words = leading_words("select 1 from t");
    assert_eq!(words.next(), Some("select"));
    // After the `1`, nothing: not even the words that come later.
    assert_eq!(words.next(), None);
    assert_eq!(words.next(), None);
}

// --- properties -------------------------------------------------------

const FRAGMENTS: &[&str] = &[
    "'",
    "\"",
    "$$",
    "$a$",
    "$A$",
    "$1",
    "$",
    ";",
    "--",
    "/*",
    "*/",
    "\n",
    "\r\n",
    "\r",
    "\\",
    "\\.",
    "\\.\n",
    "\\set x 1",
    "COPY t FROM stdin;",
    "copy t (a) from STDIN;",
    "copy t to stdout;",
    "(",
    ")",
    "E'",
    "e'",
    "U&'",
    "U&\"",
    "''",
    "\\'",
    "begin atomic",
    "begin",
    "end",
    "case",
    "create function f()",
    "create or replace procedure p()",
    "select",
    "from",
    "stdin",
    "x",
    "a$b",
    "1",
    "1e",
    " ",
    "  ",
    "\t",
    "é",
    "ñ",
    "🦀",
    "-",
    "/",
    "*",
];

fn fragments() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(FRAGMENTS), 0..40).prop_map(|v| v.concat())
}

fn check_invariants(input: &str) -> Result<(), TestCaseError> {
    // Never panic, whatever the offsets.
    let _ = leading_keywords(input, 4);
    for off in [0, input.len() / 2, input.len(), input.len() + 3] {
        let _ = line_col(input, off);
    }
    match split(input) {
        Ok(chunks) => {
            prop_assert_eq!(chunks.is_empty(), input.is_empty());
            let mut pos = 0;
            let mut joined = String::new();
            for (n, c) in chunks.iter().enumerate() {
                prop_assert_eq!(c.start, pos, "gap/overlap at chunk {}", n);
                prop_assert!(c.end > c.start, "empty chunk {}", n);
                prop_assert!(input.is_char_boundary(c.start));
                prop_assert!(input.is_char_boundary(c.end));
                let newlines = input.as_bytes()[..c.start]
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count();
                prop_assert_eq!(c.line as usize, newlines + 1);
                let text = c.text(input);
                joined.push_str(text);
                pos = c.end;
                match c.kind {
                    Meta => {
                        prop_assert!(text.starts_with('\\'));
                        prop_assert!(!text.contains('\n'));
                    }
                    CopyData => {
                        let last = text.trim_end_matches('\n').trim_end_matches('\r');
                        prop_assert!(last == "\\." || last.ends_with("\n\\."));
                    }
                    Blank => {
                        // Blank material re-splits to itself.
                        prop_assert_eq!(
                            split(text).map(|v| v.iter().map(|c| c.kind).collect::<Vec<_>>()),
                            Ok(vec![Blank])
                        );
                    }
                    Sql => {
                        // A statement not followed by COPY data re-splits to itself.
                        let is_copy_in = chunks.get(n + 2).is_some_and(|c| c.kind == CopyData);
                        if !is_copy_in {
                            let again = split(text).map(|v| {
                                v.iter()
                                    .map(|c| (c.kind, c.start, c.end))
                                    .collect::<Vec<_>>()
                            });
                            prop_assert_eq!(again, Ok(vec![(Sql, 0, text.len())]));
                        }
                    }
                }
            }
            prop_assert_eq!(pos, input.len());
            prop_assert_eq!(joined.as_str(), input);
            for w in chunks.windows(2) {
                prop_assert!(
                    !(w[0].kind == Blank && w[1].kind == Blank),
                    "adjacent blanks"
                );
            }
        }
        Err(e) => {
            let lines: Vec<&str> = input.split('\n').collect();
            prop_assert!(e.line >= 1 && e.line as usize <= lines.len());
            let line = lines[e.line as usize - 1];
            prop_assert!(e.column >= 1 && e.column as usize <= line.chars().count() + 1);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn prop_fragments_split_is_lossless(input in fragments()) {
        check_invariants(&input)?;
    }

    #[test]
    fn prop_any_string_split_is_lossless(input in any::<String>()) {
        check_invariants(&input)?;
    }

    #[test]
    fn prop_sqlish_chars_split_is_lossless(input in "[-a-c$;'\"()/*\\\\.\n\r \téE&U]{0,60}") {
        check_invariants(&input)?;
    }
}

/// Rough throughput check; run with `cargo test --release -- --ignored --nocapture`.
#[test]
#[ignore = "throughput check, prints only"]
fn throughput() {
    let unit = "-- comment\nCREATE TABLE t (a int, b text DEFAULT 'x;y');\n\
                CREATE FUNCTION f() RETURNS int AS $$ BEGIN RETURN 1; END $$ LANGUAGE plpgsql;\n\
                COPY t (a, b) FROM stdin;\n1\tone\n2\ttwo\n\\.\n";
    let input = unit.repeat(200_000);
    let start = std::time::Instant::now();
    let n = split(&input).unwrap().len();
    let secs = start.elapsed().as_secs_f64();
    let mb = input.len() as f64 / 1e6;
    println!(
        "{n} chunks, {mb:.1} MB in {secs:.3}s = {:.1} MB/s",
        mb / secs
    );
}
