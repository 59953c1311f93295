//! From the module's variables to a plan: each value converted to its variable's
//! type as Terraform would, every place a problem is found kept for its message.

use crate::Diagnostic;
use crate::module::{RESOURCE_GROUPS, RESOURCE_NAMES, TARGETS, Ty, VARIABLES};
use crate::plan_yaml::render;
use crate::tfvars::{Attribute, Key, Kind, Pos, Value};

/// A variable's value, converted to its type.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Setting {
    /// A string (numbers and bools converted).
    Text(String),
    /// A port number.
    Port(u16),
    /// A bool.
    Flag(bool),
    /// A map of strings: each key (and where it is) and its value.
    Labels(Vec<(Key, String)>),
    /// `[requests, limits]` × `[cpu, memory]`; `None` keeps the default.
    Resources([[Option<String>; 2]; 2]),
    /// A password was given (its value is dropped at once).
    Secret,
}

/// What [`convert`] makes of a variable file.
#[derive(Debug, Default)]
pub struct Converted {
    /// The plan, as YAML text (empty when there are problems).
    pub yaml: String,
    /// Warnings: what is ignored or not carried over.
    pub warnings: Vec<Diagnostic>,
    /// Errors; the plan is not made when there is one.
    pub problems: Vec<Diagnostic>,
    /// The password variables the file sets.
    pub passwords_set: Vec<String>,
}

/// Converts the module's variables into a plan named `plan_name`. `file` names the
/// file in messages. Never shows a password.
pub fn convert(attrs: &[Attribute], file: &str, plan_name: &str) -> Converted {
    let mut out = Converted::default();
    let mut settings: Vec<(&'static str, Setting)> = Vec::new();
    for attr in attrs {
        let at = |pos: Pos, message: String| Diagnostic::at(file, pos, message);
        let Some(&(name, ty)) = VARIABLES.iter().find(|(n, _)| *n == attr.name) else {
            let hint = match suggest(&attr.name, VARIABLES.iter().map(|(n, _)| *n)) {
                Some(s) => format!(" (did you mean {s}?)"),
                None if attr.name == "source" => {
                    " (it is an argument of the module block)".to_string()
                }
                None => String::new(),
            };
            out.warnings.push(at(
                attr.pos,
                format!(
                    "{} is not a variable of the migrations module; ignored{hint}",
                    attr.name
                ),
            ));
            continue;
        };
        let mut warnings = Vec::new();
        match setting(ty, &attr.value, &mut warnings) {
            Ok(Some(s)) => {
                if name == "postgres_wait_image" {
                    out.warnings.push(at(
                        attr.pos,
                        "postgres_wait_image has no equivalent and is ignored: \
                         kubemigrate's runner image (spec.runnerImage) waits for the database"
                            .to_string(),
                    ));
                }
                if s == Setting::Secret {
                    out.passwords_set.push(name.to_string());
                }
                settings.push((name, s));
            }
            Ok(None) => {}
            Err((pos, message)) => out.problems.push(at(pos, format!("{name}: {message}"))),
        }
        out.warnings.extend(
            warnings
                .into_iter()
                .map(|(pos, message)| at(pos, format!("{name}: {message}"))),
        );
    }
    let get = |name: &str| settings.iter().find(|(n, _)| *n == name).map(|(_, s)| s);
    let mut missing = Vec::new();
    for target in &TARGETS {
        for field in ["host", "user"] {
            let var = target.var(field);
            match get(&var) {
                None => missing.push(var),
                Some(Setting::Text(t)) if t.trim().is_empty() => {
                    out.problems.push(Diagnostic {
                        file: file.to_string(),
                        pos: attrs.iter().find(|a| a.name == var).map(|a| a.value.pos),
                        message: format!("{var}: must not be empty"),
                    });
                }
                Some(_) => {}
            }
        }
    }
    if !missing.is_empty() {
        out.problems.push(Diagnostic {
            file: file.to_string(),
            pos: None,
            message: format!(
                "missing required variable{} (the module has no default): {}",
                if missing.len() == 1 { "" } else { "s" },
                missing.join(", ")
            ),
        });
    }
    if out.problems.is_empty() {
        out.yaml = render(&settings, plan_name, file, &mut out.warnings);
    }
    out
}

/// The closest module variable name, when it is close enough to be a likely typo.
pub(crate) fn suggest<'a>(
    name: &str,
    candidates: impl Iterator<Item = &'a str>,
) -> Option<&'a str> {
    let candidates: Vec<&'a str> = candidates.collect();
    kubemigrate_plan::did_you_mean(name, &candidates)
}

type Problem = (Pos, String);

/// Converts a value to a variable's type, as Terraform would. `Ok(None)` for null
/// (the variable is treated as not set).
fn setting(ty: Ty, value: &Value, warnings: &mut Vec<Problem>) -> Result<Option<Setting>, Problem> {
    if value.kind == Kind::Null {
        return Ok(None);
    }
    let setting = match ty {
        Ty::Text => Setting::Text(text(value)?),
        Ty::Secret => {
            // Checked for its type only; the value is dropped here and never shown.
            match &value.kind {
                Kind::String(_) | Kind::Number(_) | Kind::Bool(_) => Setting::Secret,
                other => {
                    return Err((
                        value.pos,
                        format!("expected a string, found {}", other.describe()),
                    ));
                }
            }
        }
        Ty::Port => Setting::Port(port(value)?),
        Ty::Flag => Setting::Flag(match &value.kind {
            Kind::Bool(b) => *b,
            Kind::String(s) if s == "true" => true,
            Kind::String(s) if s == "false" => false,
            _ => {
                return Err((
                    value.pos,
                    format!("expected true or false, found {}", found(&value.kind)),
                ));
            }
        }),
        Ty::Labels => {
            let Kind::Object(items) = &value.kind else {
                return Err((
                    value.pos,
                    format!(
                        "expected a map of strings ({{ key = \"value\" }}), found {}",
                        found(&value.kind)
                    ),
                ));
            };
            let mut labels = Vec::new();
            for (key, v) in items {
                labels.push((key.clone(), text(v)?));
            }
            Setting::Labels(labels)
        }
        Ty::Resources => Setting::Resources(resources(value, warnings)?),
    };
    Ok(Some(setting))
}

/// A value for a message: the kind, and a short quote of a string or number.
fn found(kind: &Kind) -> String {
    match kind {
        Kind::String(s) => {
            let short: String = s.chars().take(40).collect();
            let more = if short.len() < s.len() { "…" } else { "" };
            format!("the string {short:?}{more}")
        }
        Kind::Number(n) => format!("the number {n}"),
        Kind::Bool(b) => format!("{b}"),
        other => other.describe().to_string(),
    }
}

fn text(value: &Value) -> Result<String, Problem> {
    match &value.kind {
        Kind::String(s) => Ok(s.clone()),
        Kind::Number(n) => Ok(format!("{n}")),
        Kind::Bool(b) => Ok(format!("{b}")),
        other => Err((
            value.pos,
            format!("expected a string, found {}", other.describe()),
        )),
    }
}

fn port(value: &Value) -> Result<u16, Problem> {
    let n = match &value.kind {
        Kind::Number(n) => Some(*n),
        Kind::String(s) => s.parse::<f64>().ok(),
        _ => None,
    };
    match n {
        Some(n) if n.fract() == 0.0 && (1.0..=65535.0).contains(&n) => Ok(n as u16),
        _ => Err((
            value.pos,
            format!(
                "expected a port number (1 to 65535), found {}",
                found(&value.kind)
            ),
        )),
    }
}

fn resources(
    value: &Value,
    warnings: &mut Vec<Problem>,
) -> Result<[[Option<String>; 2]; 2], Problem> {
    let expected = "expected {requests = {cpu = \"…\", memory = \"…\"}, limits = {…}}";
    let Kind::Object(groups) = &value.kind else {
        return Err((
            value.pos,
            format!("{expected}, found {}", found(&value.kind)),
        ));
    };
    let mut out: [[Option<String>; 2]; 2] = Default::default();
    for (group, v) in groups {
        let Some(g) = RESOURCE_GROUPS.iter().position(|n| *n == group.name) else {
            let hint = suggest(&group.name, RESOURCE_GROUPS.iter().copied())
                .map_or_else(String::new, |s| format!(" (did you mean {s}?)"));
            warnings.push((
                group.pos,
                format!("{} is not requests or limits; ignored{hint}", group.name),
            ));
            continue;
        };
        let items = match &v.kind {
            Kind::Null => continue,
            Kind::Object(items) => items,
            other => {
                return Err((
                    v.pos,
                    format!(
                        "{}: expected {{cpu = \"…\", memory = \"…\"}}, found {}",
                        group.name,
                        found(other)
                    ),
                ));
            }
        };
        for (key, v) in items {
            let Some(r) = RESOURCE_NAMES.iter().position(|n| *n == key.name) else {
                let hint = suggest(&key.name, RESOURCE_NAMES.iter().copied())
                    .map_or_else(String::new, |s| format!(" (did you mean {s}?)"));
                warnings.push((
                    key.pos,
                    format!(
                        "{}.{} is not cpu or memory; ignored{hint}",
                        group.name, key.name
                    ),
                ));
                continue;
            };
            if v.kind != Kind::Null {
                let t = text(v)
                    .map_err(|(pos, m)| (pos, format!("{}.{}: {m}", group.name, key.name)))?;
                out[g][r] = Some(t);
            }
        }
    }
    Ok(out)
}
