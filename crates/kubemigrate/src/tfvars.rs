//! A reader for Terraform variable files: the `.tfvars` subset of HCL, and `.tfvars.json`.
//!
//! A `.tfvars` file is a list of `name = value` lines. A value is a constant: a string
//! (quoted or a heredoc), a number, `true`, `false`, `null`, a list `[a, b]` or an object
//! `{ k = v }`. References (`var.x`), function calls, operators and `${…}` interpolation
//! are not allowed, as in Terraform. Every value keeps the line and column where it
//! starts, so an error about it can point there. Parsing is pure: text in, values out.

use std::fmt;

/// How deeply lists and objects may nest.
const MAX_DEPTH: usize = 100;

/// Where something starts in the file: 1-based line and column (the column counts characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    /// The line, from 1.
    pub line: usize,
    /// The column, from 1, in characters.
    pub column: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// A value and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    /// Where the value starts.
    pub pos: Pos,
    /// The value.
    pub kind: Kind,
}

/// The kinds of value a variable file holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number.
    Number(f64),
    /// A string, with its escapes resolved.
    String(String),
    /// A list (HCL tuple) `[a, b]`.
    List(Vec<Value>),
    /// An object or map `{ k = v }`, in the file's order.
    Object(Vec<(Key, Value)>),
}

impl Kind {
    /// What the value is, for messages: "a string", "a list", … Never shows the value.
    pub fn describe(&self) -> &'static str {
        match self {
            Kind::Null => "null",
            Kind::Bool(_) => "a bool",
            Kind::Number(_) => "a number",
            Kind::String(_) => "a string",
            Kind::List(_) => "a list",
            Kind::Object(_) => "an object",
        }
    }
}

/// The key of an object item, and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    /// The key's text.
    pub name: String,
    /// Where the key starts.
    pub pos: Pos,
}

/// One `name = value` line of the file.
#[derive(Debug, Clone, PartialEq)]
pub struct Attribute {
    /// The variable's name.
    pub name: String,
    /// Where the name starts.
    pub pos: Pos,
    /// Its value.
    pub value: Value,
}

/// A file that cannot be read as a variable file: where, and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// Where the problem is.
    pub pos: Pos,
    /// What is wrong, and what was expected.
    pub message: String,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.pos, self.message)
    }
}

impl std::error::Error for SyntaxError {}

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

/// Reads a `.tfvars.json` file: one JSON object whose properties are the variables.
///
/// serde_json checks the syntax; the values are then read with their positions. A
/// property named `//` is a comment, as in Terraform. Strings are templates, as in
/// Terraform: `$${` stands for `${`, and an interpolation `${…}` is an error.
///
/// # Errors
///
/// A [`SyntaxError`] for invalid JSON, a document that is not an object, a property
/// set twice, or an interpolation in a string.
pub fn parse_json(text: &str) -> Result<Vec<Attribute>, SyntaxError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(text) {
        let full = e.to_string();
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        let message = full.strip_suffix(&suffix).unwrap_or(&full).to_string();
        return Err(SyntaxError {
            pos: Pos {
                line: e.line().max(1),
                column: e.column().max(1),
            },
            message: format!("invalid JSON: {message}"),
        });
    }
    let mut p = Parser::new(text);
    p.skip_json_space();
    let start = p.pos();
    if p.peek() != Some('{') {
        return Err(p.error(
            start,
            "a .tfvars.json file holds one JSON object: {\"name\": value, …}".to_string(),
        ));
    }
    let value = p.json_value(0)?;
    let Kind::Object(items) = value.kind else {
        return Err(p.error(start, "expected a JSON object".to_string()));
    };
    Ok(items
        .into_iter()
        .filter(|(k, _)| k.name != "//")
        .map(|(k, value)| Attribute {
            name: k.name,
            pos: k.pos,
            value,
        })
        .collect())
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

    fn skip_json_space(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t' | '\n' | '\r')) {
            self.bump();
        }
    }

    /// A JSON value from text serde_json has already accepted.
    fn json_value(&mut self, depth: usize) -> Result<Value, SyntaxError> {
        self.skip_json_space();
        let pos = self.pos();
        if depth > MAX_DEPTH {
            return Err(self.error(
                pos,
                format!("arrays and objects nest more than {MAX_DEPTH} deep"),
            ));
        }
        let kind = match self.peek() {
            Some('"') => Kind::String(self.json_string(true)?),
            Some('[') => {
                self.bump();
                let mut items = Vec::new();
                loop {
                    self.skip_json_space();
                    match self.peek() {
                        Some(']') => {
                            self.bump();
                            break;
                        }
                        Some(',') => {
                            self.bump();
                        }
                        _ => items.push(self.json_value(depth + 1)?),
                    }
                }
                Kind::List(items)
            }
            Some('{') => {
                self.bump();
                let mut items: Vec<(Key, Value)> = Vec::new();
                loop {
                    self.skip_json_space();
                    let key_pos = self.pos();
                    match self.peek() {
                        Some('}') => {
                            self.bump();
                            break;
                        }
                        Some(',') => {
                            self.bump();
                        }
                        Some('"') => {
                            let name = self.json_string(false)?;
                            self.skip_json_space();
                            if self.bump() != Some(':') {
                                return Err(self.error(self.pos(), "expected :".to_string()));
                            }
                            let value = self.json_value(depth + 1)?;
                            if let Some((first, _)) = items.iter().find(|(k, _)| k.name == name) {
                                return Err(self.error(
                                    key_pos,
                                    format!(
                                        "\"{name}\" is set twice in this object (first at {})",
                                        first.pos
                                    ),
                                ));
                            }
                            items.push((Key { name, pos: key_pos }, value));
                        }
                        other => {
                            return Err(self.error(
                                key_pos,
                                format!("expected a property name, found {}", show_opt(other)),
                            ));
                        }
                    }
                }
                Kind::Object(items)
            }
            Some('t') if self.rest().starts_with("true") => {
                self.skip_chars(4);
                Kind::Bool(true)
            }
            Some('f') if self.rest().starts_with("false") => {
                self.skip_chars(5);
                Kind::Bool(false)
            }
            Some('n') if self.rest().starts_with("null") => {
                self.skip_chars(4);
                Kind::Null
            }
            Some(c) if c == '-' || c.is_ascii_digit() => self.number()?,
            other => {
                return Err(self.error(
                    pos,
                    format!("expected a JSON value, found {}", show_opt(other)),
                ));
            }
        };
        Ok(Value { pos, kind })
    }

    fn skip_chars(&mut self, n: usize) {
        for _ in 0..n {
            self.bump();
        }
    }

    /// A JSON string, decoded by serde_json; a value string is then read as a template.
    fn json_string(&mut self, template: bool) -> Result<String, SyntaxError> {
        let pos = self.pos();
        let start = self.at;
        self.bump();
        loop {
            match self.bump() {
                None => return Err(self.error(pos, "unterminated string".to_string())),
                Some('\\') => {
                    self.bump();
                }
                Some('"') => break,
                Some(_) => {}
            }
        }
        let raw = self.text.get(start..self.at).unwrap_or("");
        let decoded: String = serde_json::from_str(raw)
            .map_err(|e| self.error(pos, format!("invalid JSON string: {e}")))?;
        if !template {
            return Ok(decoded);
        }
        // Escapes change lengths, so the string's start is the best position to give.
        untemplate(&decoded).map_err(|(_, c)| template_error(c, pos))
    }
}

/// Resolves `$${` and `%%{` in template text; an interpolation `${` or directive `%{`
/// is an error, returned as its character offset and its first character.
fn untemplate(text: &str) -> Result<String, (usize, char)> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        if c == '$' || c == '%' {
            let next = chars.get(i + 1).copied();
            let after = chars.get(i + 2).copied();
            if next == Some(c) && after == Some('{') {
                out.push(c);
                out.push('{');
                i += 3;
                continue;
            }
            if next == Some('{') {
                return Err((i, c));
            }
        }
        out.push(c);
        i += 1;
    }
    Ok(out)
}

fn template_error(c: char, pos: Pos) -> SyntaxError {
    let message = if c == '$' {
        "interpolation ${…} is not allowed in a .tfvars file (write the value itself, or $${ for a literal ${)"
    } else {
        "template directive %{…} is not allowed in a .tfvars file (write %%{ for a literal %{)"
    };
    SyntaxError {
        pos,
        message: message.to_string(),
    }
}

#[cfg(test)]
mod tests {
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
            err("a = <<EOF x\nEOF\n")
                .starts_with("1:10: expected a new line after the heredoc marker")
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
        assert!(
            err("a = [1 2]").starts_with("1:8: expected , or ] in the list that starts at 1:5")
        );
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
                include_str!("../../../examples/terraform/basic.tfvars"),
                false,
            ),
            (
                include_str!("../../../examples/terraform/basic.tfvars.json"),
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
}
