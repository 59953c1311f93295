//! A reader for Terraform variable files: the `.tfvars` subset of HCL, and `.tfvars.json`.
//!
//! A `.tfvars` file is a list of `name = value` lines. A value is a constant: a string
//! (quoted or a heredoc), a number, `true`, `false`, `null`, a list `[a, b]` or an object
//! `{ k = v }`. References (`var.x`), function calls, operators and `${…}` interpolation
//! are not allowed, as in Terraform. Every value keeps the line and column where it
//! starts, so an error about it can point there. Parsing is pure: text in, values out.

mod hcl;
mod json;
#[cfg(test)]
mod tests;

pub use hcl::parse_hcl;
pub use json::parse_json;

/// How deeply lists and objects may nest.
pub(crate) const MAX_DEPTH: usize = 100;

/// Where something starts in the file: 1-based line and column (the column counts
/// characters), as in the plan's own YAML reader.
pub use kubemigrate_plan::Pos;

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
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{pos}: {message}")]
pub struct SyntaxError {
    /// Where the problem is.
    pub pos: Pos,
    /// What is wrong, and what was expected.
    pub message: String,
}

/// Resolves `$${` and `%%{` in template text; an interpolation `${` or directive `%{`
/// is an error, returned as its character offset and its first character.
pub(crate) fn untemplate(text: &str) -> Result<String, (usize, char)> {
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

pub(crate) fn template_error(c: char, pos: Pos) -> SyntaxError {
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
