//! One file's lint: its statements as they will be sent, combined into the text
//! squawk parses (wrapped in `BEGIN`/`COMMIT` when the engine wraps the file), and
//! each finding mapped back to the file, line and column as written.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use kubemigrate_sql::script::{Edit, Item, Location, Variables, unmap_offset};
use kubemigrate_sql::source::{Migration, SourceError};
use squawk_linter::{Linter, Version};
use squawk_syntax::SourceFile;
use squawk_syntax::ast::{self, AstNode};

use crate::*;
/// A statement as it will be sent, and where it is in the text given to squawk.
pub(crate) struct Sent {
    /// Offset in the combined text.
    pub(crate) start: usize,
    /// Length as sent.
    pub(crate) len: usize,
    pub(crate) at: Location,
    pub(crate) edits: Vec<Edit>,
    /// As written, when interpolation changed it.
    pub(crate) original: Option<String>,
}

/// The policy turned into what each file's lint needs.
pub(crate) struct Prepared<'p> {
    pub(crate) policy: &'p Policy,
    /// Every squawk rule enabled is one of the defaults, none of which looks at
    /// data statements (INSERT, UPDATE, DELETE, COPY, GRANT, DO, …).
    pub(crate) skip_data_statements: bool,
    pub(crate) squawk_rules: Vec<squawk_linter::Rule>,
    pub(crate) version: Version,
}

impl<'p> Prepared<'p> {
    pub(crate) fn new(policy: &'p Policy) -> Result<Self, LintError> {
        let squawk_rules: Vec<squawk_linter::Rule> = rules::catalogue()
            .iter()
            .filter(|r| policy.level(r.id) != Level::Off)
            .filter_map(|r| rules::squawk_rule(r.id))
            .collect();
        let version = match policy.postgres_version() {
            Some(v) => parse_version(v)?,
            None => Version::default(),
        };
        let skip_data_statements = squawk_rules.iter().all(|r| {
            rules::catalogue()
                .iter()
                .any(|info| info.default != Level::Off && info.id == rules::squawk_id(*r))
        });
        Ok(Prepared {
            policy,
            skip_data_statements,
            squawk_rules,
            version,
        })
    }

    /// Lints `m`, a file of the directory whose canonical path is `root` (see
    /// [`kubemigrate_sql::script::canonical_root`]).
    pub(crate) fn lint_file(
        &self,
        root: &Path,
        m: &Migration,
        vars: &Variables,
    ) -> Result<FileLint, LintError> {
        let mode = TxMode::of(m);
        // Only the lines that run (a dbmate or goose file's up part).
        // Read once: the statements from it, and its lint-ignore comments below.
        let (bytes, mut script) = m.read_in(root, vars)?;
        let mut text = String::new();
        let mut sent: Vec<Sent> = Vec::new();
        let mut sent_bytes = 0;
        // Whether squawk's require-lock-timeout is settled for the rest of the file:
        // it is off, or squawk has met a `SET lock_timeout` or a statement it
        // reports the rule on (it reports it once per file, at the first).
        let mut lock_timeout_settled = self.policy.level(rules::REQUIRE_LOCK_TIMEOUT) == Level::Off;
        // A routine is left out only where no ignore comment could be meant for it.
        let ignore_comments =
            memchr::memmem::find(&bytes, ignore::DIRECTIVE_PREFIX.as_bytes()).is_some();
        if mode == TxMode::Transaction {
            // What the engine sends around the file's statements.
            text.push_str("BEGIN;\n");
        }
        while let Some(item) = script.next_item()? {
            let (body, at, edits, original) = match item {
                Item::Sql {
                    text,
                    at,
                    edits,
                    original,
                    ..
                } => (text, at, edits, original),
                Item::Copy { text, at } => (text, at, Vec::new(), None),
                Item::Echo(_) => continue,
            };
            let start = text.len();
            sent_bytes += body.len();
            // A statement no enabled rule can fire on is not parsed (squawk's
            // parse is most of the lint's time); a statement a variable built may
            // hold several, so it is always parsed.
            let head = if edits.is_empty() {
                Head::of(&body)
            } else {
                Head::Other
            };
            let skip = self.skip_data_statements
                && match head {
                    Head::Data => true,
                    // Of the default rules only require-lock-timeout looks at a
                    // CREATE FUNCTION or PROCEDURE (as at any DDL), and once it is
                    // settled it cannot fire on one: the statement, often the
                    // largest of its file, is not parsed.
                    Head::Routine => lock_timeout_settled && !ignore_comments && at.path == m.path,
                    Head::SettlesLockTimeout | Head::Other => false,
                };
            if head == Head::SettlesLockTimeout {
                lock_timeout_settled = true;
            }
            if !skip {
                text.push_str(&body);
                if !body.trim_end().ends_with(';') {
                    text.push(';');
                }
                text.push('\n');
            }
            sent.push(Sent {
                start,
                len: if skip { 0 } else { body.len() },
                at,
                edits,
                original,
            });
        }
        // A file the read only hashed is lexed here for the first time: one with
        // nothing to run is refused as the read refuses it.
        if m.deferred && script.finish().written == 0 {
            return Err(SourceError::Empty {
                path: m.path.clone(),
            }
            .into());
        }
        let statements = sent.len();
        if mode == TxMode::Transaction {
            text.push_str("COMMIT;\n");
        }
        let mut raw = Vec::new();
        let parse = SourceFile::parse(&text);
        // Syntax errors: one finding per statement.
        let mut bad_statements = HashSet::new();
        for e in parse.errors() {
            let offset = usize::from(e.range().start());
            let i = statement_at(&sent, offset);
            if bad_statements.insert(i) {
                raw.push((
                    rules::SYNTAX_ERROR,
                    offset,
                    format!("squawk: {}", e.message()),
                    String::new(),
                ));
            }
        }
        if !self.squawk_rules.is_empty() {
            let mut linter = Linter::from(self.squawk_rules.iter().copied());
            linter.settings.pg_version = self.version;
            // The file's real transaction is in the text (the BEGIN and COMMIT
            // around a transactional file, or the file's own).
            linter.settings.assume_in_transaction = false;
            for v in linter.lint(&parse, &text) {
                raw.push((
                    rules::squawk_id(v.code),
                    usize::from(v.text_range.start()),
                    v.message,
                    v.help.unwrap_or_default(),
                ));
            }
        }
        if mode == TxMode::Transaction
            && self.policy.level(rules::NO_TRANSACTION_REQUIRED) != Level::Off
        {
            for stmt in parse.tree().stmts() {
                if let Some(what) = needs_no_transaction(&stmt) {
                    let offset = usize::from(stmt.syntax().text_range().start());
                    raw.push((
                        rules::NO_TRANSACTION_REQUIRED,
                        offset,
                        format!("{what} cannot run inside a transaction block"),
                        String::new(),
                    ));
                }
            }
        }
        let mut ignores = ignore::Ignores::read(&sent_locations(&sent), (&m.path, &bytes))?;
        let mut findings = Vec::new();
        let mut ignored = 0;
        for (rule, offset, message, help) in raw {
            let level = self.policy.level(rule);
            if level == Level::Off {
                continue;
            }
            let i = statement_at(&sent, offset);
            let Some(s) = sent.get(i) else { continue };
            if ignores.silences(&s.at.path, s.at.line, rule) {
                ignored += 1;
                continue;
            }
            let within = offset.saturating_sub(s.start).min(s.len);
            let (line, column, line_text) = locate(s, &text, within);
            let info = rules::rule(rule);
            let (why, safe) = match info {
                Some(r) if !r.why.is_empty() => (r.why.to_string(), r.safe.to_string()),
                _ => (message.clone(), help),
            };
            findings.push(Finding {
                version: m.version.to_string(),
                file: s.at.path.clone(),
                line,
                column,
                rule,
                level,
                message,
                why,
                safe,
                statement: i + 1,
                line_text,
            });
        }
        let unused_level = self.policy.level(rules::UNUSED_IGNORE);
        if unused_level != Level::Off {
            // An ignore of rules this policy turns off is not unused: another
            // policy (`sql lint` with the defaults, another target) may need it.
            for u in ignores
                .unused()
                .filter(|u| u.rules.iter().any(|r| self.policy.level(r) != Level::Off))
            {
                findings.push(Finding {
                    version: m.version.to_string(),
                    file: u.path.clone(),
                    line: u.line,
                    column: u.column,
                    rule: rules::UNUSED_IGNORE,
                    level: unused_level,
                    message: format!("`{}` silenced nothing", u.rules.join(",")),
                    why: rules::rule(rules::UNUSED_IGNORE)
                        .map(|r| r.why.to_string())
                        .unwrap_or_default(),
                    safe: rules::rule(rules::UNUSED_IGNORE)
                        .map(|r| r.safe.to_string())
                        .unwrap_or_default(),
                    statement: 0,
                    line_text: u.line_text.clone(),
                });
            }
        }
        findings.sort_by(|a, b| {
            (a.statement == 0, &a.file, a.line, a.column, a.rule).cmp(&(
                b.statement == 0,
                &b.file,
                b.line,
                b.column,
                b.rule,
            ))
        });
        findings.dedup_by(|a, b| {
            a.rule == b.rule && a.file == b.file && a.line == b.line && a.column == b.column
        });
        Ok(FileLint {
            version: m.version.to_string(),
            path: m.path.clone(),
            mode,
            statements,
            findings,
            ignored,
            bytes: sent_bytes,
        })
    }
}

/// What in `stmt` PostgreSQL refuses inside a transaction block, if anything.
pub(crate) fn needs_no_transaction(stmt: &ast::Stmt) -> Option<&'static str> {
    match stmt {
        ast::Stmt::DropIndex(d) if d.concurrently_token().is_some() => {
            Some("DROP INDEX CONCURRENTLY")
        }
        ast::Stmt::Reindex(r) if r.is_concurrently() => Some("REINDEX CONCURRENTLY"),
        ast::Stmt::Vacuum(_) => Some("VACUUM"),
        ast::Stmt::CreateDatabase(_) => Some("CREATE DATABASE"),
        ast::Stmt::DropDatabase(_) => Some("DROP DATABASE"),
        ast::Stmt::AlterSystem(_) => Some("ALTER SYSTEM"),
        _ => None,
    }
}

/// The index of the statement that holds `offset` of the combined text (the first
/// for the `BEGIN` before them, the last for the `COMMIT` after).
pub(crate) fn statement_at(sent: &[Sent], offset: usize) -> usize {
    let i = sent
        .partition_point(|s| s.start <= offset)
        .saturating_sub(1);
    // A statement left out of the text (len 0) holds no offset: the one before it does.
    (0..=i)
        .rev()
        .find(|&j| sent.get(j).is_some_and(|s| s.len > 0))
        .unwrap_or(i)
}

/// What a statement's first words tell the lint, when every rule on is a default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Head {
    /// It only reads or writes rows, or grants: none of the rules on by default
    /// looks at it (squawk's `possibly_slow_stmt` leaves it out too). `SELECT`
    /// is not one (`SELECT … INTO` creates a table), nor is `WITH`.
    Data,
    /// `CREATE [OR REPLACE] FUNCTION` or `PROCEDURE`: of the default rules, only
    /// `require-lock-timeout` looks at it.
    Routine,
    /// After it, squawk's `require-lock-timeout` is settled for the file: `SET
    /// [SESSION | LOCAL] lock_timeout`, or a statement the rule is reported on
    /// when no timeout was set (`ALTER TABLE`, `CREATE [UNIQUE] INDEX`, `DROP
    /// TABLE`, `DROP INDEX`).
    SettlesLockTimeout,
    /// Anything else.
    Other,
}

impl Head {
    /// The head of `text`, a statement as sent.
    pub(crate) fn of(text: &str) -> Head {
        let mut words = kubemigrate_sql::lexer::leading_words(text);
        let Some(first) = words.next() else {
            return Head::Other;
        };
        let is = |word: Option<&str>, keyword: &str| {
            word.is_some_and(|w| w.eq_ignore_ascii_case(keyword))
        };
        const DATA: [&str; 10] = [
            "INSERT", "UPDATE", "DELETE", "MERGE", "COPY", "GRANT", "DO", "CALL", "NOTIFY",
            "VALUES",
        ];
        if DATA.iter().any(|k| first.eq_ignore_ascii_case(k)) {
            return Head::Data;
        }
        let second = words.next();
        if first.eq_ignore_ascii_case("SET") {
            let second = if is(second, "SESSION") || is(second, "LOCAL") {
                words.next()
            } else {
                second
            };
            if is(second, "lock_timeout") {
                return Head::SettlesLockTimeout;
            }
        } else if first.eq_ignore_ascii_case("ALTER") {
            if is(second, "TABLE") {
                return Head::SettlesLockTimeout;
            }
        } else if first.eq_ignore_ascii_case("DROP") {
            if is(second, "TABLE") || is(second, "INDEX") {
                return Head::SettlesLockTimeout;
            }
        } else if first.eq_ignore_ascii_case("CREATE") {
            let second = if is(second, "OR") && is(words.next(), "REPLACE") {
                words.next()
            } else {
                second
            };
            if is(second, "FUNCTION") || is(second, "PROCEDURE") {
                return Head::Routine;
            }
            if is(second, "INDEX") || (is(second, "UNIQUE") && is(words.next(), "INDEX")) {
                return Head::SettlesLockTimeout;
            }
        }
        Head::Other
    }
}

/// Each statement's file and first line, for placing ignore comments.
pub(crate) fn sent_locations(sent: &[Sent]) -> HashMap<PathBuf, Vec<u32>> {
    let mut by_file: HashMap<PathBuf, Vec<u32>> = HashMap::new();
    for s in sent {
        by_file
            .entry(s.at.path.clone())
            .or_default()
            .push(s.at.line);
    }
    by_file
}

/// Line, column and the line's text of byte `offset` of a statement as sent,
/// mapped back through interpolation to the file as written. `combined` is the
/// text given to squawk.
pub(crate) fn locate(s: &Sent, combined: &str, offset: usize) -> (u32, u32, String) {
    let as_sent = combined.get(s.start..s.start + s.len).unwrap_or("");
    let (written, offset) = match &s.original {
        Some(original) => (
            original.as_str(),
            unmap_offset(&s.edits, offset).min(original.len()),
        ),
        None => (as_sent, offset.min(as_sent.len())),
    };
    let offset = (0..=offset)
        .rev()
        .find(|&o| written.is_char_boundary(o))
        .unwrap_or(0);
    position(&s.at, written, offset)
}

/// Line, column and line text of `offset` in `written`, a statement that starts at `at`.
pub(crate) fn position(at: &Location, written: &str, offset: usize) -> (u32, u32, String) {
    let before = &written[..offset];
    let newlines = before.matches('\n').count();
    let line_start = before.rfind('\n').map_or(0, |p| p + 1);
    let rest = written[line_start..].split('\n').next().unwrap_or("");
    let (column, line_text) = if newlines == 0 {
        (
            at.column as usize + before.chars().count(),
            format!("{}{rest}", at.prefix),
        )
    } else {
        (before[line_start..].chars().count() + 1, rest.to_string())
    };
    (
        at.line
            .saturating_add(u32::try_from(newlines).unwrap_or(u32::MAX)),
        u32::try_from(column).unwrap_or(u32::MAX),
        line_text.trim_end_matches('\r').to_string(),
    )
}
