//! Converts another tool's configuration into a kubemigrate plan: today the variable
//! files of the Terraform migrations module (`.tfvars` and `.tfvars.json`), for
//! `kubemigrate import terraform-vars` (see docs/migrating-from-terraform.md).
//!
//! Pure apart from [`terraform_vars`] reading its one file: [`tfvars`] turns text into
//! values that know their line and column, [`convert`] turns the module's variables
//! into the plan's YAML text, warnings and problems. Nothing here prints; the binary
//! reports what it returns. A password in the file is checked for its type and then
//! dropped: it never reaches the plan, a warning or an error.
//!
//! # Why the HCL reader is hand-written
//!
//! The `.tfvars` reader ([`tfvars::parse_hcl`]) is a parser for HCL's constant subset,
//! not `hcl-edit`. hcl-edit 0.10 was tried on the import tests' bad inputs: an
//! unterminated string (`namespace = "ns` then a new line) is reported at the *next*
//! line's end as "expected newline or eof" (hcl-edit lets a quoted string run over the
//! line end), `a = /* x` as "invalid expression; expected `"`, `[`, …" at the comment,
//! `a = 1e999` as "expected newline or eof", a heredoc without its end marker at the
//! line after its start rather than at `<<EOF`; references, calls, operators, blocks
//! and `${…}` parse without error and would need a second pass over the tree. The
//! errors this reader gives name the place and what a .tfvars author should write
//! instead, which is what the import tests check. The JSON reader is serde_json.

use std::fmt;
use std::path::Path;

mod convert;
mod module;
mod plan_yaml;
#[cfg(test)]
mod tests;
pub mod tfvars;

pub use convert::{Converted, convert};
use tfvars::{Pos, SyntaxError};

/// A warning or problem about a variable file, at a place in it when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file, as the user named it.
    pub file: String,
    /// Where in the file, when the message is about one place.
    pub pos: Option<Pos>,
    /// What is wrong or ignored (never a password's value).
    pub message: String,
}

impl Diagnostic {
    /// A message about one place in `file`.
    pub fn at(file: &str, pos: Pos, message: String) -> Diagnostic {
        Diagnostic {
            file: file.to_string(),
            pos: Some(pos),
            message,
        }
    }
}

impl fmt::Display for Diagnostic {
    /// `FILE:LINE:COLUMN: message`, or `FILE: message`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.pos {
            Some(pos) => write!(f, "{}:{pos}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// Why a variable file gives no plan.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file cannot be read.
    #[error("{file}: cannot read")]
    Read {
        /// The file.
        file: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not UTF-8.
    #[error("{file}: not UTF-8 text (a variable file is UTF-8)")]
    NotUtf8 {
        /// The file.
        file: String,
    },
    /// The text is not a variable file.
    #[error("{file}:{error}")]
    Syntax {
        /// The file.
        file: String,
        /// Where, and what was expected.
        error: SyntaxError,
    },
    /// Values of the wrong type, or required variables not set: every problem found.
    #[error("{}", invalid_summary(file, problems))]
    Invalid {
        /// The file.
        file: String,
        /// Each problem (at least one).
        problems: Vec<Diagnostic>,
    },
}

/// The one line for [`Error::Invalid`]: the problem when there is one, else how many.
fn invalid_summary(file: &str, problems: &[Diagnostic]) -> String {
    match problems {
        [one] => one.to_string(),
        _ => format!("{} problems in {file}", problems.len()),
    }
}

/// A password variable of the module, for the note that tells what to export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Password {
    /// The environment variable the plan reads it from: `CONTROL_PLANE_DB_PASSWORD`.
    pub env: &'static str,
    /// The module's variable: `control_plane_db_password`.
    pub variable: String,
    /// Whether the file sets it (its value is not copied either way).
    pub set: bool,
}

/// The plan made from a variable file.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The plan, as YAML text with comments.
    pub yaml: String,
    /// What was ignored or not carried over.
    pub warnings: Vec<Diagnostic>,
    /// The three password variables, in the plan's target order.
    pub passwords: Vec<Password>,
}

/// Reads a variable file of the Terraform migrations module (JSON when the name ends
/// in `.json`, else HCL) and makes the plan named `plan_name`.
///
/// # Errors
///
/// [`Error::Read`] and [`Error::NotUtf8`] for the file, [`Error::Syntax`] for its
/// text, and [`Error::Invalid`] with every problem of its values.
pub fn terraform_vars(path: &Path, plan_name: &str) -> Result<Imported, Error> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| Error::Read {
        file: file.clone(),
        source,
    })?;
    let Ok(text) = String::from_utf8(bytes) else {
        return Err(Error::NotUtf8 { file });
    };
    let json = path
        .to_string_lossy()
        .to_ascii_lowercase()
        .ends_with(".json");
    let parsed = if json {
        tfvars::parse_json(&text)
    } else {
        tfvars::parse_hcl(&text)
    };
    let attrs = parsed.map_err(|error| Error::Syntax {
        file: file.clone(),
        error,
    })?;
    let converted = convert(&attrs, &file, plan_name);
    if !converted.problems.is_empty() {
        return Err(Error::Invalid {
            file,
            problems: converted.problems,
        });
    }
    let passwords = module::TARGETS
        .iter()
        .map(|target| {
            let variable = target.var("password");
            Password {
                env: target.password_env,
                set: converted.passwords_set.contains(&variable),
                variable,
            }
        })
        .collect();
    Ok(Imported {
        yaml: converted.yaml,
        warnings: converted.warnings,
        passwords,
    })
}

/// A plan name that is not a DNS-1123 label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "not a DNS-1123 label: at most 63 lowercase letters, digits and -, \
     starting and ending with a letter or digit"
)]
pub struct InvalidPlanName;

/// Checks a plan name (`metadata.name`): a DNS-1123 label.
///
/// # Errors
///
/// [`InvalidPlanName`] when `name` is not one.
pub fn check_plan_name(name: &str) -> Result<(), InvalidPlanName> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok { Ok(()) } else { Err(InvalidPlanName) }
}
