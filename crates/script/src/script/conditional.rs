//! `\if`, `\elif`, `\else` and `\endif`: which branches of a file are active, on
//! a variable or a literal boolean read as psql reads it.

use super::{Location, Script, ScriptError};

impl Script {
    /// Whether every open `\if` branch, in this file and the files including it,
    /// is active.
    pub(super) fn active(&self) -> bool {
        self.stack
            .iter()
            .all(|r| r.conds.iter().all(|&(_, active, _)| active))
    }

    /// Follows `\if`, `\elif`, `\else` or `\endif` (`command`, with its argument
    /// `rest`); the boolean is read only where it can decide a branch.
    pub(super) fn conditional(
        &mut self,
        command: &str,
        rest: &str,
        at: &Location,
    ) -> Result<(), ScriptError> {
        let err = |message: String| at.error(message);
        let outer_active = {
            let Some(reader) = self.stack.last() else {
                return Ok(());
            };
            let depth = reader.conds.len();
            let others = self.stack[..self.stack.len() - 1]
                .iter()
                .all(|r| r.conds.iter().all(|&(_, a, _)| a));
            others
                && reader.conds[..if command == "\\if" {
                    depth
                } else {
                    depth.saturating_sub(1)
                }]
                    .iter()
                    .all(|&(_, a, _)| a)
        };
        let value = |this: &Self| -> Result<bool, ScriptError> {
            let args = this.meta_args(rest, at)?;
            let [word] = args.as_slice() else {
                return Err(err(format!(
                    "{command} takes one boolean: true/false, on/off, yes/no, 1/0"
                )));
            };
            parse_bool(word).ok_or_else(|| {
                err(format!(
                    "{command}: {word:?} is not a boolean (true/false, on/off, yes/no, 1/0)"
                ))
            })
        };
        match command {
            "\\if" => {
                let v = if outer_active { value(self)? } else { false };
                if let Some(r) = self.stack.last_mut() {
                    r.conds.push((v, v, at.line));
                    r.else_seen.push(false);
                }
            }
            "\\elif" => {
                let Some(&(taken, _, line)) = self.stack.last().and_then(|r| r.conds.last()) else {
                    return Err(err("\\elif without \\if".into()));
                };
                if self
                    .stack
                    .last()
                    .is_some_and(|r| r.else_seen.last() == Some(&true))
                {
                    return Err(err("\\elif after \\else".into()));
                }
                let v = if outer_active && !taken {
                    value(self)?
                } else {
                    false
                };
                if let Some(c) = self.stack.last_mut().and_then(|r| r.conds.last_mut()) {
                    *c = (taken || v, v, line);
                }
            }
            "\\else" => {
                let Some(reader) = self.stack.last_mut() else {
                    return Ok(());
                };
                if reader.else_seen.last() == Some(&true) {
                    return Err(err("\\else after \\else".into()));
                }
                let Some(c) = reader.conds.last_mut() else {
                    return Err(err("\\else without \\if".into()));
                };
                *c = (true, !c.0, c.2);
                if let Some(e) = reader.else_seen.last_mut() {
                    *e = true;
                }
            }
            _ => {
                let Some(reader) = self.stack.last_mut() else {
                    return Ok(());
                };
                if reader.conds.pop().is_none() {
                    return Err(err("\\endif without \\if".into()));
                }
                reader.else_seen.pop();
            }
        }
        Ok(())
    }
}

/// psql's booleans: true/false, on/off, yes/no, 1/0 (unique prefixes too).
pub fn parse_bool(word: &str) -> Option<bool> {
    let w = word.to_ascii_lowercase();
    if w.is_empty() {
        return None;
    }
    let is = |full: &str| full.starts_with(&w);
    if w == "1" || is("true") || is("yes") || (w.len() >= 2 && is("on")) {
        Some(true)
    } else if w == "0" || is("false") || is("no") || (w.len() >= 2 && is("off")) {
        Some(false)
    } else {
        None
    }
}
