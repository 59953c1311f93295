//! Statement assembly: a statement of an active branch made ready to send (ended
//! by `;`, `\g` or `\gset`, its variables interpolated, its size checked) and
//! whether it controls the transaction.

use super::reader::{count_lines, statement_too_long};
use super::variables::{interpolate_changes, valid_name};
use super::{Item, Location, MAX_STATEMENT, Script, ScriptError};
use crate::lexer::{self, ChunkKind};

/// The `\g` or `\gset [PREFIX]` that ends a statement: `None` for `\g` (send it,
/// as `;` does), the prefix for `\gset`.
fn send_meta(meta: &str, at: &Location) -> Result<Option<String>, ScriptError> {
    let mut words = meta.split_whitespace();
    let command = words.next().unwrap_or("");
    let args: Vec<&str> = words.collect();
    match (command, args.as_slice()) {
        ("\\g", []) => Ok(None),
        ("\\g", _) => Err(at.error(
            "\\g with a file or options is not supported in migrations (end the statement with ; or \\g alone)",
        )),
        ("\\gset", []) => Ok(Some(String::new())),
        ("\\gset", [prefix]) if valid_name(prefix) => Ok(Some((*prefix).to_string())),
        ("\\gset", _) => Err(at.error(
            "\\gset takes at most one argument, a prefix of letters, digits and _",
        )),
        _ => Err(at.error(format!("unexpected {command}"))),
    }
}

/// Keywords that make a statement top-level transaction control.
pub(crate) fn is_transaction_control(text: &str) -> bool {
    let kw = lexer::leading_keywords(text, 2);
    match kw.first().map(String::as_str) {
        Some("BEGIN") => kw.get(1).is_none_or(|k| k != "ATOMIC"),
        Some("START") => kw.get(1).is_some_and(|k| k == "TRANSACTION"),
        Some("COMMIT" | "END" | "ROLLBACK" | "ABORT") => true,
        _ => false,
    }
}

/// Whether a statement, as it will be sent, holds top-level transaction control.
/// An interpolated statement may hold several statements (a variable's value may
/// have a `;`): each counts.
fn sends_transaction_control(sent: &str, interpolated: bool) -> bool {
    if !interpolated {
        return is_transaction_control(sent);
    }
    match lexer::split(sent) {
        Ok(chunks) => chunks
            .iter()
            .filter(|c| c.kind == ChunkKind::Sql)
            .any(|c| is_transaction_control(c.text(sent))),
        // Text the lexer cannot split is sent as one statement, and the server
        // rejects it; its first word still decides.
        Err(_) => is_transaction_control(sent),
    }
}

impl Script {
    /// A statement of an active branch, made ready to send: a `\g` or `\gset`
    /// that ends it taken off, its variables interpolated, its size checked, and
    /// counted (with whether it controls the transaction). `copy_follows`: it is a
    /// `COPY … FROM stdin` whose data follows.
    pub(super) fn statement(
        &mut self,
        text: String,
        at: Location,
        copy_follows: bool,
    ) -> Result<Item, ScriptError> {
        self.statements += 1;
        let (text, gset) = match lexer::send_meta_at(&text) {
            Some(p) => {
                let gset = send_meta(&text[p..], &at)?;
                self.gset_seen |= gset.is_some();
                (text[..p].trim_end().to_string(), gset)
            }
            None => (text, None),
        };
        let mut interpolated = interpolate_changes(&text, &self.vars);
        // Without a database, what a \gset sets is unknown: any value will do.
        let mut guesses = 0;
        while let Err((_, name)) = &interpolated
            && self.summarizing
            && self.gset_seen
            && guesses < 10_000
        {
            self.vars.set(name.clone(), "true");
            guesses += 1;
            interpolated = interpolate_changes(&text, &self.vars);
        }
        let changed = interpolated.map_err(|(offset, name)| {
            let line = at.line + count_lines(&text.as_bytes()[..offset]);
            ScriptError::at_line(
                &at.path,
                line,
                format!("variable :{name} is not set (\\set it, or pass --set {name}=VALUE)"),
            )
        })?;
        // As written, the text is sent as it is; else the original is kept, for
        // positions.
        let (sent, edits, original) = match changed {
            Some((sent, edits)) => (sent, edits, Some(text)),
            None => (text, Vec::new(), None),
        };
        if sent.len() > MAX_STATEMENT {
            return Err(at.error(statement_too_long(
                "after its variables are set; split it, or use shorter values",
            )));
        }
        // Decided on the statement as it will be sent: a variable may hold
        // a COMMIT, or several statements with one among them.
        if sends_transaction_control(&sent, !edits.is_empty()) {
            self.controls_transaction = true;
        }
        if copy_follows {
            self.skipping_copy = true;
            return Ok(Item::Copy { text: sent, at });
        }
        Ok(Item::Sql {
            text: sent,
            at,
            edits,
            original,
            gset,
        })
    }
}
