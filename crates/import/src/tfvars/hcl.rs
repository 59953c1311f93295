//! The `.tfvars` reader: a hand-written parser for the constant subset of HCL, so
//! that each error names what a .tfvars author got wrong at the place they got it
//! wrong (why this is not hcl-edit: the crate documentation, `lib.rs`).

use super::{Attribute, Key, Kind, MAX_DEPTH, Pos, SyntaxError, Value, template_error, untemplate};

/// Reads a `.tfvars` file (the HCL subset described in the module documentation).
///
/// # Errors
///
/// A [`SyntaxError`] at the first place the text is not a valid variable file, or
/// where a variable is set twice.
pub fn parse_hcl(text: &str) -> Result<Vec<Attribute>, SyntaxError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let text = text.replace("\r\n", "\n");
    let mut p = Parser::new(&text);
    let mut attrs: Vec<Attribute> = Vec::new();
    loop {
        p.skip_space(true)?;
        let Some(c) = p.peek() else { break };
        let pos = p.pos();
        if !is_ident_start(c) {
            return Err(p.error(
                pos,
                format!("expected a variable name (name = value), found {}", show(c)),
            ));
        }
        let name = p.ident();
        p.skip_space(false)?;
        match p.peek() {
            Some('=') => {
                p.bump();
            }
            Some('{' | '"') => {
                return Err(p.error(
                    pos,
                    format!(
                        "`{name}` starts a block; a .tfvars file holds only `name = value` lines \
                         (write the module's arguments at the top level, without `module \"…\" {{`)"
                    ),
                ));
            }
            Some(':') => {
                return Err(p.error(
                    p.pos(),
                    format!("expected = after {name} (`:` is for object items and JSON)"),
                ));
            }
            other => {
                return Err(p.error(
                    p.pos(),
                    format!("expected = after {name}, found {}", show_opt(other)),
                ));
            }
        }
        p.skip_space(false)?;
        let value = p.value(0)?;
        p.skip_space(false)?;
        match p.peek() {
            None | Some('\n') => {}
            Some(c) => {
                let hint = if "+-*/%<>!&|?".contains(c) {
                    " (operators and expressions are not supported: a .tfvars value is a constant)"
                } else {
                    ""
                };
                return Err(p.error(
                    p.pos(),
                    format!(
                        "expected a new line after the value of {name}, found {}{hint}",
                        show(c)
                    ),
                ));
            }
        }
        if let Some(first) = attrs.iter().find(|a| a.name == name) {
            return Err(p.error(
                pos,
                format!("{name} is set twice (first at line {})", first.pos.line),
            ));
        }
        attrs.push(Attribute { name, pos, value });
    }
    Ok(attrs)
}

fn is_ident_start(c: char) -> bool {
    c == '_' || c.is_alphabetic()
}

fn is_ident_continue(c: char) -> bool {
    c == '_' || c == '-' || c.is_alphanumeric()
}

/// A character for a message: `"x"`, or a name for invisible ones.
fn show(c: char) -> String {
    match c {
        '\n' => "the end of the line".to_string(),
        '\t' => "a tab".to_string(),
        c if c.is_control() => format!("the control character U+{:04X}", u32::from(c)),
        c => format!("`{c}`"),
    }
}

fn show_opt(c: Option<char>) -> String {
    c.map_or_else(|| "the end of the file".to_string(), show)
}

struct Parser<'a> {
    text: &'a str,
    /// Byte offset of the next character.
    at: usize,
    line: usize,
    column: usize,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Parser<'a> {
        Parser {
            text,
            at: 0,
            line: 1,
            column: 1,
        }
    }

    fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            column: self.column,
        }
    }

    fn error(&self, pos: Pos, message: String) -> SyntaxError {
        SyntaxError { pos, message }
    }

    fn rest(&self) -> &'a str {
        self.text.get(self.at..).unwrap_or("")
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn peek_second(&self) -> Option<char> {
        self.rest().chars().nth(1)
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.at += c.len_utf8();
        if c == '\n' {
            self.line += 1;
            self.column = 1;
        } else {
            self.column += 1;
        }
        Some(c)
    }

    /// Skips spaces, tabs and comments; with `newlines`, new lines too. A `#` or `//`
    /// comment ends before its new line, so the line still ends there.
    fn skip_space(&mut self, newlines: bool) -> Result<(), SyntaxError> {
        loop {
            match self.peek() {
                Some(' ' | '\t' | '\r') => {
                    self.bump();
                }
                Some('\n') if newlines => {
                    self.bump();
                }
                Some('#') => self.skip_line_comment(),
                Some('/') if self.peek_second() == Some('/') => self.skip_line_comment(),
                Some('/') if self.peek_second() == Some('*') => {
                    let start = self.pos();
                    self.bump();
                    self.bump();
                    loop {
                        match self.bump() {
                            None => {
                                return Err(self.error(
                                    start,
                                    "unterminated comment: /* has no */".to_string(),
                                ));
                            }
                            Some('*') if self.peek() == Some('/') => {
                                self.bump();
                                break;
                            }
                            Some(_) => {}
                        }
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    fn skip_line_comment(&mut self) {
        while let Some(c) = self.peek() {
            if c == '\n' {
                break;
            }
            self.bump();
        }
    }

    fn ident(&mut self) -> String {
        let mut out = String::new();
        while let Some(c) = self.peek() {
            if out.is_empty() && !is_ident_start(c) || !out.is_empty() && !is_ident_continue(c) {
                break;
            }
            out.push(c);
            self.bump();
        }
        out
    }

    fn value(&mut self, depth: usize) -> Result<Value, SyntaxError> {
        let pos = self.pos();
        if depth > MAX_DEPTH {
            return Err(self.error(
                pos,
                format!("lists and objects nest more than {MAX_DEPTH} deep"),
            ));
        }
        let kind = match self.peek() {
            Some('"') => Kind::String(self.quoted()?),
            Some('<') if self.peek_second() == Some('<') => Kind::String(self.heredoc()?),
            Some('[') => self.list(depth)?,
            Some('{') => self.object(depth)?,
            Some(c) if c == '-' || c.is_ascii_digit() => self.number()?,
            Some(c) if is_ident_start(c) => {
                let word = self.ident();
                match word.as_str() {
                    "true" => Kind::Bool(true),
                    "false" => Kind::Bool(false),
                    "null" => Kind::Null,
                    _ => return Err(self.bare_word(pos, word)),
                }
            }
            Some('(') => {
                return Err(self.error(
                    pos,
                    "expressions are not supported: a .tfvars value is a constant".to_string(),
                ));
            }
            Some('\'') => {
                return Err(self.error(
                    pos,
                    "strings use double quotes (\"…\"), not single quotes".to_string(),
                ));
            }
            other => {
                return Err(self.error(pos, format!("expected a value, found {}", show_opt(other))));
            }
        };
        Ok(Value { pos, kind })
    }

    /// The error for an unquoted word: a reference (`var.x`), a call (`file(…)`), or text
    /// that needs quotes.
    fn bare_word(&mut self, pos: Pos, mut word: String) -> SyntaxError {
        match self.peek() {
            Some('(') => self.error(
                pos,
                format!(
                    "function calls are not allowed in a .tfvars file: {word}(…) (a .tfvars value is a constant)"
                ),
            ),
            Some('.' | '[') => {
                while let Some(c) = self.peek() {
                    if c == '.' || c == '[' || c == ']' || c == '"' || is_ident_continue(c) {
                        word.push(c);
                        self.bump();
                    } else {
                        break;
                    }
                }
                self.error(
                    pos,
                    format!(
                        "references are not allowed in a .tfvars file: {word} (write the value itself)"
                    ),
                )
            }
            _ => self.error(
                pos,
                format!("unquoted word {word}: write text in double quotes (\"{word}\")"),
            ),
        }
    }

    fn number(&mut self) -> Result<Kind, SyntaxError> {
        let pos = self.pos();
        let start = self.at;
        if self.peek() == Some('-') {
            self.bump();
            if !self.peek().is_some_and(|c| c.is_ascii_digit()) {
                return Err(self.error(pos, "expected a number after -".to_string()));
            }
        }
        self.digits();
        if self.peek() == Some('.') && self.peek_second().is_some_and(|c| c.is_ascii_digit()) {
            self.bump();
            self.digits();
        }
        if matches!(self.peek(), Some('e' | 'E')) {
            let save = (self.at, self.line, self.column);
            self.bump();
            if matches!(self.peek(), Some('+' | '-')) {
                self.bump();
            }
            if self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.digits();
            } else {
                (self.at, self.line, self.column) = save;
            }
        }
        let literal = self.text.get(start..self.at).unwrap_or("");
        match literal.parse::<f64>() {
            Ok(n) if n.is_finite() => Ok(Kind::Number(n)),
            _ => Err(self.error(pos, format!("number {literal} is out of range"))),
        }
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.bump();
        }
    }

    /// A quoted string: HCL escapes, `$${` and `%%{` for literal `${` and `%{`.
    fn quoted(&mut self) -> Result<String, SyntaxError> {
        let start = self.pos();
        self.bump();
        let mut out = String::new();
        loop {
            let here = self.pos();
            match self.bump() {
                None | Some('\n') => {
                    return Err(self.error(
                        start,
                        "unterminated string: a quoted string ends on the line it starts \
                         (use a heredoc, <<EOF, for several lines)"
                            .to_string(),
                    ));
                }
                Some('"') => return Ok(out),
                Some('\\') => out.push(self.escape(here)?),
                Some(c @ ('$' | '%')) => self.template_char(c, here, &mut out)?,
                Some(c) => out.push(c),
            }
        }
    }

    /// After a `$` or `%` in a string: a literal, an escaped `${`/`%{`, or an error for
    /// an interpolation or directive.
    fn template_char(&mut self, c: char, here: Pos, out: &mut String) -> Result<(), SyntaxError> {
        if self.peek() == Some(c) && self.peek_second() == Some('{') {
            self.bump();
            self.bump();
            out.push(c);
            out.push('{');
        } else if self.peek() == Some('{') {
            return Err(template_error(c, here));
        } else {
            out.push(c);
        }
        Ok(())
    }

    fn escape(&mut self, at: Pos) -> Result<char, SyntaxError> {
        let c = self.bump();
        let ok = match c {
            Some('n') => Some('\n'),
            Some('r') => Some('\r'),
            Some('t') => Some('\t'),
            Some('"') => Some('"'),
            Some('\\') => Some('\\'),
            Some('u') => return self.unicode_escape(at, 4),
            Some('U') => return self.unicode_escape(at, 8),
            _ => None,
        };
        ok.ok_or_else(|| {
            self.error(
                at,
                format!(
                    "unknown escape \\{} in a string (escapes: \\n \\r \\t \\\" \\\\ \\uNNNN \\UNNNNNNNN)",
                    c.map_or_else(String::new, |c| c.to_string())
                ),
            )
        })
    }

    fn unicode_escape(&mut self, at: Pos, len: usize) -> Result<char, SyntaxError> {
        let mut code = 0u32;
        for _ in 0..len {
            let digit = self.peek().and_then(|c| c.to_digit(16)).ok_or_else(|| {
                self.error(
                    at,
                    format!(
                        "expected {len} hex digits after \\{}",
                        if len == 4 { 'u' } else { 'U' }
                    ),
                )
            })?;
            self.bump();
            code = code * 16 + digit;
        }
        char::from_u32(code).ok_or_else(|| {
            self.error(
                at,
                format!("\\u escape U+{code:04X} is not a Unicode scalar value"),
            )
        })
    }

    /// `<<EOF` or `<<-EOF` up to a line holding only `EOF`. `<<-` removes the smallest
    /// indentation of the non-blank lines from every line.
    fn heredoc(&mut self) -> Result<String, SyntaxError> {
        let start = self.pos();
        self.bump();
        self.bump();
        let flush = self.peek() == Some('-');
        if flush {
            self.bump();
        }
        let marker = self.ident();
        if marker.is_empty() {
            return Err(self.error(
                start,
                format!(
                    "expected a heredoc marker after <<{}, such as EOF",
                    if flush { "-" } else { "" }
                ),
            ));
        }
        if self.peek() == Some('\r') {
            self.bump();
        }
        if self.peek() != Some('\n') {
            return Err(self.error(
                self.pos(),
                format!("expected a new line after the heredoc marker {marker}"),
            ));
        }
        self.bump();
        // Each content line: its first position and its text.
        let mut lines: Vec<(Pos, String)> = Vec::new();
        loop {
            if self.peek().is_none() {
                return Err(self.error(
                    start,
                    format!("unterminated heredoc: no line holds only {marker} to end it"),
                ));
            }
            let pos = self.pos();
            let mut line = String::new();
            while let Some(c) = self.peek() {
                if c == '\n' {
                    break;
                }
                line.push(c);
                self.bump();
            }
            if line.trim() == marker {
                break;
            }
            self.bump();
            lines.push((pos, line));
        }
        let strip = if flush {
            lines
                .iter()
                .filter(|(_, l)| !l.trim().is_empty())
                .map(|(_, l)| l.chars().take_while(|c| *c == ' ' || *c == '\t').count())
                .min()
                .unwrap_or(0)
        } else {
            0
        };
        let mut out = String::new();
        for (pos, line) in lines {
            let text = untemplate(&line).map_err(|(offset, c)| {
                template_error(
                    c,
                    Pos {
                        line: pos.line,
                        column: pos.column + offset,
                    },
                )
            })?;
            let mut chars = text.chars();
            let mut skipped = 0;
            while skipped < strip && chars.clone().next().is_some_and(|c| c == ' ' || c == '\t') {
                chars.next();
                skipped += 1;
            }
            out.push_str(chars.as_str());
            out.push('\n');
        }
        Ok(out)
    }

    fn list(&mut self, depth: usize) -> Result<Kind, SyntaxError> {
        let start = self.pos();
        self.bump();
        let mut items = Vec::new();
        loop {
            self.skip_space(true)?;
            if self.peek() == Some(']') {
                self.bump();
                break;
            }
            if self.peek().is_none() {
                return Err(self.error(start, "unterminated list: [ has no ]".to_string()));
            }
            items.push(self.value(depth + 1)?);
            self.skip_space(true)?;
            match self.peek() {
                Some(',') => {
                    self.bump();
                }
                Some(']') => {
                    self.bump();
                    break;
                }
                None => {
                    return Err(self.error(start, "unterminated list: [ has no ]".to_string()));
                }
                Some(c) => {
                    return Err(self.error(
                        self.pos(),
                        format!(
                            "expected , or ] in the list that starts at {start}, found {}",
                            show(c)
                        ),
                    ));
                }
            }
        }
        Ok(Kind::List(items))
    }

    fn object(&mut self, depth: usize) -> Result<Kind, SyntaxError> {
        let start = self.pos();
        self.bump();
        let mut items: Vec<(Key, Value)> = Vec::new();
        let unterminated = |p: &Self| p.error(start, "unterminated object: { has no }".to_string());
        loop {
            self.skip_space(true)?;
            let key_pos = self.pos();
            let name = match self.peek() {
                Some('}') => {
                    self.bump();
                    break;
                }
                None => return Err(unterminated(self)),
                Some('"') => self.quoted()?,
                Some(c) if is_ident_start(c) => self.ident(),
                Some(c) => {
                    return Err(self.error(
                        key_pos,
                        format!("expected a key (name = value) or }}, found {}", show(c)),
                    ));
                }
            };
            self.skip_space(false)?;
            match self.peek() {
                Some('=' | ':') => {
                    self.bump();
                }
                Some(c @ ('.' | '/')) => {
                    return Err(self.error(
                        self.pos(),
                        format!("expected = after key {name}, found `{c}` (quote keys that hold . or /: \"{name}{c}…\")"),
                    ));
                }
                other => {
                    return Err(self.error(
                        self.pos(),
                        format!(
                            "expected = or : after key {name}, found {}",
                            show_opt(other)
                        ),
                    ));
                }
            }
            self.skip_space(false)?;
            let value = self.value(depth + 1)?;
            self.skip_space(false)?;
            match self.peek() {
                Some(',') => {
                    self.bump();
                }
                Some('\n' | '}') => {}
                None => return Err(unterminated(self)),
                Some(c) => {
                    return Err(self.error(
                        self.pos(),
                        format!(
                            "expected a comma, a new line or }} after the value of {name}, found {}",
                            show(c)
                        ),
                    ));
                }
            }
            if let Some((first, _)) = items.iter().find(|(k, _)| k.name == name) {
                return Err(self.error(
                    key_pos,
                    format!(
                        "key {name} is set twice in this object (first at {})",
                        first.pos
                    ),
                ));
            }
            items.push((Key { name, pos: key_pos }, value));
        }
        Ok(Kind::Object(items))
    }
}
