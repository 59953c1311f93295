//! The backslash meta-commands a migration may use: `\set`, `\unset`, `\echo`,
//! `\i`/`\ir` (includes), `\copy … FROM`, `\restrict`/`\unrestrict`, and the
//! arguments they take, split and interpolated as psql does.

use super::reader::Reader;
use super::variables::valid_name;
use super::{BLOCK, Item, Location, MAX_STATEMENT, OpenError, Script, ScriptError, open_regular};

impl Script {
    /// Runs a meta-command of the file: `\echo` and `\copy` give an [`Item`], the
    /// others change the script's state. In an inactive branch only the conditionals
    /// count (and a `\copy … FROM stdin`'s data is skipped).
    pub(super) fn meta(&mut self, text: &str, at: &Location) -> Result<Option<Item>, ScriptError> {
        let err = |message: String| at.error(message);
        let (command, rest) = match text.find(|c: char| c.is_whitespace()) {
            Some(p) => (&text[..p], text[p..].trim()),
            None => (text, ""),
        };
        // Conditionals are followed even in inactive branches.
        match command {
            "\\if" | "\\elif" | "\\else" | "\\endif" => {
                return self.conditional(command, rest, at).map(|()| None);
            }
            _ => {}
        }
        if !self.active() {
            if command.eq_ignore_ascii_case("\\copy") && copy_source_is_stdin(rest) {
                // Its data follows in this file: skip it, as for a skipped COPY.
                if let Some(reader) = self.stack.last_mut() {
                    reader.start_copy_meta(at.line);
                }
                self.skipping_copy = true;
                while self.copy_block()?.is_some() {}
            }
            return Ok(None);
        }
        match command {
            "\\set" => {
                let args = self.meta_args(rest, at)?;
                match args.split_first() {
                    None => {
                        return Err(err(
                            "\\set without a name: listing variables is not supported".into(),
                        ));
                    }
                    Some((name, values)) => {
                        if !valid_name(name) {
                            return Err(err(format!(
                                "\\set: {name:?} is not a valid variable name"
                            )));
                        }
                        let value = values.concat();
                        if value.len() > MAX_STATEMENT {
                            return Err(err(format!(
                                "\\set {name}: a value longer than {} MiB",
                                MAX_STATEMENT >> 20
                            )));
                        }
                        self.vars.set(name.clone(), value);
                    }
                }
                Ok(None)
            }
            "\\unset" => {
                let args = self.meta_args(rest, at)?;
                match args.as_slice() {
                    [name] => {
                        self.vars.unset(name);
                        Ok(None)
                    }
                    _ => Err(err("\\unset takes one variable name".into())),
                }
            }
            "\\echo" => {
                let args = self.meta_args(rest, at)?;
                Ok(Some(Item::Echo(args.join(" "))))
            }
            "\\i" | "\\include" | "\\ir" | "\\include_relative" => {
                let args = self.meta_args(rest, at)?;
                let [file] = args.as_slice() else {
                    return Err(err(format!("{command} takes one file name")));
                };
                let relative = matches!(command, "\\ir" | "\\include_relative");
                self.include(file, relative, at)?;
                Ok(None)
            }
            "\\copy" => self.copy_meta(rest, at).map(Some),
            "\\restrict" | "\\unrestrict" => Ok(None),
            "\\g" | "\\gset" => Err(err(format!(
                "{command} after a statement that already ended with ;: write the query without the ; (SELECT … {command})"
            ))),
            other => Err(err(format!(
                "psql meta-command {other} is not supported in migrations (supported: \\set, \\unset, \\echo, \\i, \\ir, \\include, \\include_relative, \\if, \\elif, \\else, \\endif, \\copy … from, \\restrict, \\unrestrict)"
            ))),
        }
    }

    /// Splits meta-command arguments as psql does: whitespace-separated, '…' quoted
    /// (with '' and backslash escapes), "…" kept as written, :var interpolated.
    pub(super) fn meta_args(&self, rest: &str, at: &Location) -> Result<Vec<String>, ScriptError> {
        let err = |message: String| at.error(message);
        let mut args = Vec::new();
        let mut chars = rest.chars().peekable();
        loop {
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
            let Some(&c) = chars.peek() else { break };
            let mut arg = String::new();
            if c == '\'' {
                chars.next();
                loop {
                    match chars.next() {
                        None => {
                            return Err(err("unterminated quoted string in meta-command".into()));
                        }
                        Some('\'') if chars.peek() == Some(&'\'') => {
                            chars.next();
                            arg.push('\'');
                        }
                        Some('\'') => break,
                        Some('\\') => match chars.next() {
                            Some('n') => arg.push('\n'),
                            Some('t') => arg.push('\t'),
                            Some(o) => arg.push(o),
                            None => {
                                return Err(err(
                                    "unterminated quoted string in meta-command".into()
                                ));
                            }
                        },
                        Some(o) => arg.push(o),
                    }
                }
            } else if c == ':' && {
                // A variable only when a name (or a quote) follows: `1 :2` and `a : b` stay.
                let mut ahead = chars.clone();
                ahead.next();
                ahead
                    .peek()
                    .is_some_and(|&n| n.is_alphabetic() || n == '_' || n == '\'' || n == '"')
            } {
                chars.next();
                let quote = match chars.peek() {
                    Some('\'') | Some('"') => chars.next(),
                    _ => None,
                };
                let mut name = String::new();
                while let Some(&n) = chars.peek() {
                    if n.is_ascii_alphanumeric() || n == '_' {
                        name.push(n);
                        chars.next();
                    } else {
                        break;
                    }
                }
                if let Some(q) = quote
                    && chars.next() != Some(q)
                {
                    return Err(err(format!("bad variable reference :{q}{name}")));
                }
                let value = match self.vars.get(&name) {
                    Some(v) => v,
                    // Without a database, what a \gset sets is unknown.
                    None if self.summarizing && self.gset_seen => "true",
                    None => return Err(err(format!("variable :{name} is not set"))),
                };
                arg.push_str(value);
            } else {
                while let Some(&n) = chars.peek() {
                    if n.is_whitespace() {
                        break;
                    }
                    arg.push(n);
                    chars.next();
                }
            }
            args.push(arg);
        }
        Ok(args)
    }

    /// `\i FILE` (relative to the migration directory) or, with `relative`, `\ir FILE`
    /// (relative to the including file): reads it next, if it stays inside the
    /// include root and is not already being read.
    fn include(&mut self, file: &str, relative: bool, at: &Location) -> Result<(), ScriptError> {
        let err = |message: String| at.error(message);
        let base = if relative {
            self.stack.last().map(|r| r.dir.clone()).unwrap_or_default()
        } else {
            self.base.clone()
        };
        let path = base.join(file);
        let canonical = path
            .canonicalize()
            .map_err(|e| err(format!("cannot include {file}: {e}")))?;
        if !canonical.starts_with(&self.root) {
            let what = if self.root == self.base {
                "the migration directory"
            } else {
                "the include root"
            };
            return Err(err(format!(
                "cannot include {file}: it is outside {what} {}",
                self.root.display()
            )));
        }
        for r in &self.stack {
            if r.path.canonicalize().is_ok_and(|p| p == canonical) {
                return Err(err(format!("include cycle: {file} is already being read")));
            }
        }
        if self.stack.len() >= 32 {
            return Err(err("includes nested more than 32 deep".into()));
        }
        let block = self.stack.last().map_or(BLOCK, |r| r.block);
        let reader = Reader::open(&path, block)
            .map_err(|e| err(format!("cannot include {file}: {}", e.message)))?;
        self.stack.push(reader);
        Ok(())
    }

    /// `\copy table [(cols)] FROM 'file'|stdin [WITH …]`: becomes `COPY … FROM STDIN`
    /// with the data read from the file (relative to the migration's directory) or
    /// from the lines that follow.
    fn copy_meta(&mut self, rest: &str, at: &Location) -> Result<Item, ScriptError> {
        let err = |message: String| at.error(message);
        let lower = rest.to_ascii_lowercase();
        let from = find_word(&lower, "from").ok_or_else(|| {
            if find_word(&lower, "to").is_some() {
                err("\\copy … TO is not supported in migrations".into())
            } else {
                err("\\copy: expected \\copy table FROM 'file'".into())
            }
        })?;
        let target = rest[..from].trim();
        let after = rest[from + 4..].trim_start();
        let (source, options) = if let Some(q) = after.strip_prefix('\'') {
            let end = q
                .find('\'')
                .ok_or_else(|| err("\\copy: unterminated file name".into()))?;
            (q[..end].to_string(), &q[end + 1..])
        } else {
            let end = after.find(char::is_whitespace).unwrap_or(after.len());
            (after[..end].to_string(), &after[end..])
        };
        let statement = format!("COPY {target} FROM STDIN {}", options.trim());
        self.statements += 1;
        self.skipping_copy = true;
        let Some(reader) = self.stack.last_mut() else {
            return Err(err("\\copy outside a file".into()));
        };
        match source.to_ascii_lowercase().as_str() {
            "stdin" => {
                // The data follows in this file, as for COPY … FROM stdin.
                reader.start_copy_meta(at.line);
            }
            "pstdin" | "program" => {
                return Err(err(format!(
                    "\\copy … FROM {source} is not supported in migrations"
                )));
            }
            _ => {
                let path = reader.dir.join(&source);
                let canonical = path
                    .canonicalize()
                    .map_err(|e| err(format!("\\copy: cannot read {source}: {e}")))?;
                if !canonical.starts_with(&self.root) {
                    return Err(err(format!(
                        "\\copy: {source} is outside the migration directory"
                    )));
                }
                let file = open_regular(&canonical).map_err(|e| match e {
                    OpenError::Io(e) => err(format!("\\copy: cannot read {source}: {e}")),
                    other => err(format!("\\copy: {source} {other}")),
                })?;
                reader.copy_file = Some(file);
            }
        }
        Ok(Item::Copy {
            text: statement,
            at: at.clone(),
        })
    }
}

/// Whether `\copy …` reads its data from the lines that follow (`FROM stdin`).
fn copy_source_is_stdin(rest: &str) -> bool {
    let lower = rest.to_ascii_lowercase();
    find_word(&lower, "from").is_some_and(|p| {
        lower[p + 4..]
            .split_whitespace()
            .next()
            .is_some_and(|w| w == "stdin")
    })
}

fn find_word(haystack: &str, word: &str) -> Option<usize> {
    let bytes = haystack.as_bytes();
    let mut from = 0;
    while let Some(p) = haystack[from..].find(word) {
        let s = from + p;
        let e = s + word.len();
        let before = s == 0 || bytes[s - 1].is_ascii_whitespace() || bytes[s - 1] == b')';
        let after = e == bytes.len() || bytes[e].is_ascii_whitespace() || bytes[e] == b'\'';
        if before && after {
            return Some(s);
        }
        from = e;
    }
    None
}
