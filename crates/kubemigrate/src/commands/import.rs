//! `kubemigrate import terraform-vars`: the plan equivalent to a `.tfvars` file of the
//! Terraform migrations module.
//!
//! The conversion is a pure function ([`convert`]) from the file's variables to the
//! plan's YAML text, warnings and problems; [`run`] reads the file and prints.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::exit::{CommandResult, Exit, Failure};
use crate::output::Reporter;
use crate::tfvars::{self, Attribute, Kind, Pos, Value};

/// Convert another tool's configuration into a kubemigrate plan.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    // The help text is the doc comment of TerraformVarsArgs (a doc comment here would
    // replace it), as for the other commands.
    TerraformVars(TerraformVarsArgs),
}

impl Command {
    /// The command's name in messages and JSON.
    pub fn name(&self) -> &'static str {
        match self {
            Command::TerraformVars(_) => "import terraform-vars",
        }
    }
}

/// Print the plan equivalent to a .tfvars file of the Terraform migrations module.
///
/// Reads the module's variables (control_plane_db_host, supabase_migration_image,
/// migration_resources, …) from a .tfvars file, or from a .tfvars.json file when the
/// name ends in .json, and prints a MigrationPlan with three targets: control-plane,
/// supabase and components-v2. Every variable the file does not set gets the module's
/// default, written out in the plan. Passwords are never copied: the plan reads them
/// from CONTROL_PLANE_DB_PASSWORD, SUPABASE_DB_PASSWORD and COMPONENTS_V2_DB_PASSWORD.
/// Unknown variables are warnings; a value of the wrong type, or a host or user the
/// module requires but the file does not set, is an error (exit 2).
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  kubemigrate import terraform-vars prod.tfvars > plan.yaml
  kubemigrate import terraform-vars prod.tfvars.json --name ananta-prod --write plan.yaml
  See docs/migrating-from-terraform.md.")]
pub struct TerraformVarsArgs {
    /// The variable file: HCL (.tfvars), or JSON when the name ends in .json.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// The plan's name (metadata.name): a DNS-1123 label.
    #[arg(long, default_value = "ananta", value_parser = parse_plan_name, value_name = "NAME")]
    name: String,
    /// Write the plan to this file instead of stdout. An existing file is kept unless --force.
    #[arg(long, short = 'w', value_name = "PLAN")]
    write: Option<PathBuf>,
    /// With --write: replace the file if it exists.
    #[arg(long, requires = "write")]
    force: bool,
}

fn parse_plan_name(name: &str) -> Result<String, String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(name.to_string())
    } else {
        Err(
            "not a DNS-1123 label: at most 63 lowercase letters, digits and -, \
             starting and ending with a letter or digit"
                .to_string(),
        )
    }
}

/// Runs an import command.
pub fn run(command: Command, reporter: Reporter) -> CommandResult {
    match command {
        Command::TerraformVars(args) => terraform_vars(args, reporter),
    }
}

fn terraform_vars(args: TerraformVarsArgs, reporter: Reporter) -> CommandResult {
    let usage = |message: String| Failure::new(Exit::Usage, anyhow::anyhow!(message));
    if reporter.json() {
        return Err(usage(
            "import terraform-vars prints a YAML plan; -o json is not supported".to_string(),
        ));
    }
    let label = args.file.display().to_string();
    let bytes =
        std::fs::read(&args.file).map_err(|e| usage(format!("{label}: cannot read: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|_| {
        usage(format!(
            "{label}: not UTF-8 text (a variable file is UTF-8)"
        ))
    })?;
    let json = args
        .file
        .to_string_lossy()
        .to_ascii_lowercase()
        .ends_with(".json");
    let parsed = if json {
        tfvars::parse_json(&text)
    } else {
        tfvars::parse_hcl(&text)
    };
    let attrs = parsed.map_err(|e| usage(format!("{label}:{e}")))?;
    let converted = convert(&attrs, &label, &args.name);
    for warning in &converted.warnings {
        reporter.warn(warning);
    }
    if !converted.problems.is_empty() {
        let mut problems = converted.problems;
        let error = if problems.len() == 1 {
            problems.remove(0)
        } else {
            format!("{} problems in {label}", problems.len())
        };
        return Err(Failure {
            exit: Exit::Usage,
            error: anyhow::anyhow!(error),
            detail: problems,
        });
    }
    match &args.write {
        None => {
            let mut out = std::io::stdout().lock();
            // A closed stdout (`| head`) must not turn into a panic.
            let _ = out.write_all(converted.yaml.as_bytes());
            let _ = out.flush();
        }
        Some(path) => {
            write_plan(path, &converted.yaml, args.force)?;
            reporter.line(&format!("wrote the plan to {}", path.display()));
        }
    }
    let mut err = std::io::stderr().lock();
    let _ = writeln!(
        err,
        "note: the plan reads the database passwords from the environment; export them before `kubemigrate render`:"
    );
    for target in &TARGETS {
        let var = target.var("password");
        let how = if converted.passwords_set.contains(&var) {
            format!("set in {label}; its value is not copied")
        } else {
            format!("not set in {label}")
        };
        let _ = writeln!(
            err,
            "  {:<27}the value of {var} ({how})",
            target.password_env
        );
    }
    Ok(Exit::Ok)
}

fn write_plan(path: &Path, yaml: &str, force: bool) -> Result<(), Failure> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Failure::new(
                Exit::Usage,
                anyhow::anyhow!(
                    "{}: the file exists; pass --force to replace it",
                    path.display()
                ),
            )
        } else {
            Failure::new(
                Exit::Internal,
                anyhow::anyhow!("{}: cannot write: {e}", path.display()),
            )
        }
    })?;
    file.write_all(yaml.as_bytes()).map_err(|e| {
        Failure::new(
            Exit::Internal,
            anyhow::anyhow!("{}: cannot write: {e}", path.display()),
        )
    })
}

/// The type of a module variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    /// `string`; numbers and bools convert, as in Terraform.
    Text,
    /// `number`, a TCP port; a string holding a number converts.
    Port,
    /// `bool`; "true" and "false" convert.
    Flag,
    /// `map(string)`.
    Labels,
    /// `migration_resources`: `{requests = {cpu, memory}, limits = {cpu, memory}}`.
    Resources,
    /// A password: a string, never copied and never shown.
    Secret,
}

/// The module's variables (its README's Inputs table, and `migration_resources`).
const VARIABLES: &[(&str, Ty)] = &[
    ("namespace", Ty::Text),
    ("service_account_name", Ty::Text),
    ("run_control_plane_migrations", Ty::Flag),
    ("run_supabase_migrations", Ty::Flag),
    ("run_components_v2_migrations", Ty::Flag),
    ("control_plane_db_host", Ty::Text),
    ("control_plane_db_port", Ty::Port),
    ("control_plane_db_name", Ty::Text),
    ("control_plane_db_schema", Ty::Text),
    ("control_plane_db_user", Ty::Text),
    ("control_plane_db_password", Ty::Secret),
    ("supabase_db_host", Ty::Text),
    ("supabase_db_port", Ty::Port),
    ("supabase_db_name", Ty::Text),
    ("supabase_db_user", Ty::Text),
    ("supabase_db_password", Ty::Secret),
    ("components_v2_db_host", Ty::Text),
    ("components_v2_db_port", Ty::Port),
    ("components_v2_db_name", Ty::Text),
    ("components_v2_db_user", Ty::Text),
    ("components_v2_db_password", Ty::Secret),
    ("control_plane_migration_image", Ty::Text),
    ("supabase_migration_image", Ty::Text),
    ("components_v2_migration_image", Ty::Text),
    ("postgres_wait_image", Ty::Text),
    ("migration_timeout", Ty::Text),
    ("wait_for_completion", Ty::Flag),
    ("labels", Ty::Labels),
    ("migration_resources", Ty::Resources),
];

/// One of the module's three Jobs, and the plan target it becomes.
struct Target {
    /// The target's name; the Job is `<name>-migrations-<suffix>`, as the module's.
    name: &'static str,
    /// The prefix of its variables: `control_plane` in `control_plane_db_host`.
    prefix: &'static str,
    /// The environment variable the plan reads its password from.
    password_env: &'static str,
    port: u16,
    database: &'static str,
    image: &'static str,
}

impl Target {
    fn var(&self, field: &str) -> String {
        match field {
            "run" => format!("run_{}_migrations", self.prefix),
            "image" => format!("{}_migration_image", self.prefix),
            other => format!("{}_db_{other}", self.prefix),
        }
    }
}

const TARGETS: [Target; 3] = [
    Target {
        name: "control-plane",
        prefix: "control_plane",
        password_env: "CONTROL_PLANE_DB_PASSWORD",
        port: 5432,
        database: "arc_saas",
        image: "ananta/tenant-management-service:latest",
    },
    Target {
        name: "supabase",
        prefix: "supabase",
        password_env: "SUPABASE_DB_PASSWORD",
        port: 27432,
        database: "postgres",
        image: "postgres:15-alpine",
    },
    Target {
        name: "components-v2",
        prefix: "components_v2",
        password_env: "COMPONENTS_V2_DB_PASSWORD",
        port: 27010,
        database: "components_v2",
        image: "postgres:15-alpine",
    },
];

/// The module's default resources: `[requests, limits]` × `[cpu, memory]`.
const DEFAULT_RESOURCES: [[&str; 2]; 2] = [["100m", "128Mi"], ["500m", "512Mi"]];
const RESOURCE_GROUPS: [&str; 2] = ["requests", "limits"];
const RESOURCE_NAMES: [&str; 2] = ["cpu", "memory"];

/// A variable's value, converted to its type.
#[derive(Debug, Clone, PartialEq)]
enum Setting {
    Text(String),
    Port(u16),
    Flag(bool),
    Labels(Vec<(String, String)>),
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
    /// Warnings, each `FILE:LINE:COLUMN: message`.
    pub warnings: Vec<String>,
    /// Errors, each `FILE:LINE:COLUMN: message` (or `FILE: message`); the plan is
    /// not made when there is one.
    pub problems: Vec<String>,
    /// The password variables the file sets.
    pub passwords_set: Vec<String>,
}

/// Converts the module's variables into a plan named `plan_name`. `file` names the
/// file in messages. Never shows a password.
pub fn convert(attrs: &[Attribute], file: &str, plan_name: &str) -> Converted {
    let mut out = Converted::default();
    let mut settings: Vec<(&'static str, Setting)> = Vec::new();
    for attr in attrs {
        let at = |pos: Pos| format!("{file}:{pos}");
        let Some(&(name, ty)) = VARIABLES.iter().find(|(n, _)| *n == attr.name) else {
            let hint = match suggest(&attr.name, VARIABLES.iter().map(|(n, _)| *n)) {
                Some(s) => format!(" (did you mean {s}?)"),
                None if attr.name == "source" => {
                    " (it is an argument of the module block)".to_string()
                }
                None => String::new(),
            };
            out.warnings.push(format!(
                "{}: {} is not a variable of the migrations module; ignored{hint}",
                at(attr.pos),
                attr.name
            ));
            continue;
        };
        let mut warnings = Vec::new();
        match setting(ty, &attr.value, &mut warnings) {
            Ok(Some(s)) => {
                if name == "postgres_wait_image" {
                    out.warnings.push(format!(
                        "{}: postgres_wait_image has no equivalent and is ignored: \
                         kubemigrate's runner image (spec.runnerImage) waits for the database",
                        at(attr.pos)
                    ));
                }
                if s == Setting::Secret {
                    out.passwords_set.push(name.to_string());
                }
                settings.push((name, s));
            }
            Ok(None) => {}
            Err((pos, message)) => out.problems.push(format!("{}: {name}: {message}", at(pos))),
        }
        out.warnings.extend(
            warnings
                .into_iter()
                .map(|(pos, message)| format!("{}: {name}: {message}", at(pos))),
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
                    let pos = attrs
                        .iter()
                        .find(|a| a.name == var)
                        .map_or_else(String::new, |a| format!(":{}", a.value.pos));
                    out.problems
                        .push(format!("{file}{pos}: {var}: must not be empty"));
                }
                Some(_) => {}
            }
        }
    }
    if !missing.is_empty() {
        out.problems.push(format!(
            "{file}: missing required variable{} (the module has no default): {}",
            if missing.len() == 1 { "" } else { "s" },
            missing.join(", ")
        ));
    }
    if out.problems.is_empty() {
        out.yaml = render(&settings, plan_name, &mut out.warnings);
    }
    out
}

/// The closest module variable name, when it is close enough to be a likely typo.
fn suggest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
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
                labels.push((key.name.clone(), text(v)?));
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

/// YAML text, line by line.
struct Yaml(String);

impl Yaml {
    fn line(&mut self, indent: usize, text: &str) {
        self.0.push_str(&" ".repeat(indent));
        self.0.push_str(text);
        self.0.push('\n');
    }

    /// `key: value`, with `# note` when there is one.
    fn field(&mut self, indent: usize, key: &str, value: &str, note: Option<&str>) {
        match note {
            Some(n) => self.line(indent, &format!("{key}: {value}  # {n}")),
            None => self.line(indent, &format!("{key}: {value}")),
        }
    }
}

/// A YAML scalar for any text: plain when that cannot be misread, else double-quoted.
fn scalar(s: &str) -> String {
    if plain_is_safe(s) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}') => {
                out.push_str(&format!("\\u{:04X}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Whether text can be a plain scalar and still read back as the same string (in
/// YAML 1.1 and 1.2): a conservative set of characters, no leading indicator, and
/// nothing that reads as a bool, null or number.
fn plain_is_safe(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    if !(first.is_ascii_alphanumeric() || first == '_' || first == '/') || s.ends_with(':') {
        return false;
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "._/:@-".contains(c))
    {
        return false;
    }
    const WORDS: [&str; 9] = ["true", "false", "yes", "no", "on", "off", "y", "n", "null"];
    if WORDS.contains(&s.to_ascii_lowercase().as_str()) {
        return false;
    }
    if first.is_ascii_digit() {
        // Only quantities like 10m, 128Mi, 1.5Gi: digits, an optional fraction, letters.
        let unit = s.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.');
        let number = &s[..s.len() - unit.len()];
        return !unit.is_empty()
            && unit.chars().all(|c| c.is_ascii_alphabetic())
            && number.matches('.').count() <= 1
            && !number.ends_with('.');
    }
    true
}

/// The plan's YAML text; what is not carried over is added to `warnings`.
fn render(
    settings: &[(&'static str, Setting)],
    plan_name: &str,
    warnings: &mut Vec<String>,
) -> String {
    let get = |name: &str| settings.iter().find(|(n, _)| *n == name).map(|(_, s)| s);
    // The text of a string variable, and a note when it is the module's default.
    let text_or = |name: &str, default: &str| -> (String, Option<String>) {
        match get(name) {
            Some(Setting::Text(t)) => (scalar(t), None),
            _ => (scalar(default), Some(format!("{name}: module default"))),
        }
    };
    let flag_or = |name: &str, default: bool| -> (String, Option<String>) {
        match get(name) {
            Some(Setting::Flag(b)) => (b.to_string(), None),
            _ => (default.to_string(), Some(format!("{name}: module default"))),
        }
    };
    let mut y = Yaml(String::new());
    for line in [
        "# A kubemigrate plan made by `kubemigrate import terraform-vars` from the",
        "# variables of the Terraform migrations module. Each variable the file did not",
        "# set has the module's default, marked \"module default\". Check the plan with",
        "# `kubemigrate validate -f plan.yaml`; see its Kubernetes objects with",
        "# `kubemigrate render -f plan.yaml`.",
        "apiVersion: kubemigrate.io/v1alpha1",
        "kind: MigrationPlan",
        "metadata:",
    ] {
        y.line(0, line);
    }
    y.field(2, "name", &scalar(plan_name), None);
    let (v, n) = text_or("namespace", "default");
    y.field(2, "namespace", &v, n.as_deref());
    y.line(0, "spec:");
    let (v, n) = text_or("service_account_name", "default");
    y.field(2, "serviceAccountName", &v, n.as_deref());
    y.line(
        2,
        "# kubemigrate labels every object app.kubernetes.io/component: migrations (so",
    );
    y.line(
        2,
        "# `kubectl get jobs -l app.kubernetes.io/component=migrations` still finds the Jobs)",
    );
    y.line(
        2,
        "# and sets sidecar.istio.io/inject: \"false\" on the pods, as the module did.",
    );
    let user_labels = match get("labels") {
        Some(Setting::Labels(l)) => l.as_slice(),
        _ => &[],
    };
    let mut kept = Vec::new();
    for (k, v) in user_labels {
        if let Some(prefix) = kubemigrate_plan::validate::RESERVED_LABEL_PREFIXES
            .iter()
            .find(|p| k.starts_with(*p))
        {
            warnings.push(format!(
                "labels: {k} is not copied: kubemigrate sets the {prefix} labels itself"
            ));
        } else {
            kept.push((k, v));
        }
    }
    if !kept.is_empty() {
        y.line(2, "labels:");
        for (k, v) in kept {
            y.field(4, &scalar(k), &scalar(v), None);
        }
    }
    y.line(
        2,
        "# runnerImage is left to its default, kubemigrate/kubemigrate:<this version>. It waits",
    );
    y.line(
        2,
        "# for each database, as the module's init container with postgres_wait_image did.",
    );
    let given = match get("migration_resources") {
        Some(Setting::Resources(r)) => r.clone(),
        _ => Default::default(),
    };
    y.line(2, "resources:");
    for (g, group) in RESOURCE_GROUPS.iter().enumerate() {
        y.line(4, &format!("{group}:"));
        for (r, resource) in RESOURCE_NAMES.iter().enumerate() {
            match &given[g][r] {
                Some(v) => y.field(6, resource, &scalar(v), None),
                None => y.field(
                    6,
                    resource,
                    DEFAULT_RESOURCES[g][r],
                    Some("migration_resources: module default"),
                ),
            }
        }
    }
    y.field(
        2,
        "backoffLimit",
        "3",
        Some("the module's Jobs: 3 attempts"),
    );
    y.field(
        2,
        "ttlSecondsAfterFinished",
        "300",
        Some("the module's Jobs are deleted 5 minutes after they finish"),
    );
    let (v, n) = text_or("migration_timeout", "10m");
    y.field(2, "timeout", &v, n.as_deref());
    let (v, n) = flag_or("wait_for_completion", true);
    y.field(2, "wait", &v, n.as_deref());
    y.line(2, "targets:");
    for target in &TARGETS {
        y.field(2, "  - name", target.name, None);
        let (v, n) = flag_or(&target.var("run"), true);
        y.field(6, "enabled", &v, n.as_deref());
        y.line(6, "database:");
        // Hosts and users are required: convert reports a missing one, so they are set.
        let required = |field: &str| match get(&target.var(field)) {
            Some(Setting::Text(t)) => scalar(t),
            _ => String::new(),
        };
        y.field(8, "host", &required("host"), None);
        let port_var = target.var("port");
        match get(&port_var) {
            Some(Setting::Port(p)) => y.field(8, "port", &p.to_string(), None),
            _ => y.field(
                8,
                "port",
                &target.port.to_string(),
                Some(&format!("{port_var}: module default")),
            ),
        }
        let (v, n) = text_or(&target.var("name"), target.database);
        y.field(8, "name", &v, n.as_deref());
        if target.prefix == "control_plane" {
            let (v, n) = text_or("control_plane_db_schema", "tenant_management");
            y.field(8, "schema", &v, n.as_deref());
        }
        y.field(8, "user", &required("user"), None);
        y.line(
            8,
            &format!(
                "# Never copied from the .tfvars: export {} (the value of",
                target.password_env
            ),
        );
        y.line(
            8,
            &format!(
                "# {}) before `kubemigrate render`, or use existingSecret.",
                target.var("password")
            ),
        );
        y.line(
            8,
            &format!("password: {{fromEnv: {}}}", target.password_env),
        );
        let (image, note) = text_or(&target.var("image"), target.image);
        if target.prefix == "control_plane" {
            y.line(6, "command:");
            y.field(8, "image", &image, note.as_deref());
            y.line(8, "command: [npm, run, migrate]");
            y.line(
                6,
                "# npm writes to its cache; the module did not make the root filesystem read-only.",
            );
            y.line(6, "securityContext:");
            y.line(8, "readOnlyRootFilesystem: false");
        } else {
            y.line(6, "sql:");
            y.field(8, "image", &image, note.as_deref());
            y.line(8, "dir: /migrations");
            y.line(
                8,
                "# psql runs every /migrations/*.sql file in name order on every run, as the",
            );
            y.line(
                8,
                "# module's Job did. engine: native gives a history table (each file runs",
            );
            y.line(8, "# once), checksums and a migration lock instead.");
            y.line(8, "engine: psql");
        }
    }
    y.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str) -> Converted {
        convert(&tfvars::parse_hcl(text).unwrap(), "t.tfvars", "ananta")
    }

    const REQUIRED: &str = "control_plane_db_host = \"a\"\ncontrol_plane_db_user = \"u\"\n\
        supabase_db_host = \"b\"\nsupabase_db_user = \"u\"\n\
        components_v2_db_host = \"c\"\ncomponents_v2_db_user = \"u\"\n";

    #[test]
    fn plain_scalars_only_when_they_read_back_as_strings() {
        for plain in [
            "default",
            "postgres:15-alpine",
            "ananta/tenant-management-service:1.0.0",
            "10m",
            "128Mi",
            "1.5Gi",
            "/migrations",
            "app.kubernetes.io/name",
            "img@sha256:abc",
        ] {
            assert_eq!(scalar(plain), plain);
        }
        for (text, quoted) in [
            ("", "\"\""),
            ("true", "\"true\""),
            ("No", "\"No\""),
            ("null", "\"null\""),
            ("5432", "\"5432\""),
            ("1e3", "\"1e3\""),
            ("0x1F", "\"0x1F\""),
            ("1.0.0", "\"1.0.0\""),
            ("1h30m", "\"1h30m\""),
            ("12:30", "\"12:30\""),
            ("-x", "\"-x\""),
            ("a b", "\"a b\""),
            ("a: b", "\"a: b\""),
            ("a #b", "\"a #b\""),
            ("end:", "\"end:\""),
            ("*ref", "\"*ref\""),
            ("say \"hi\"\\", "\"say \\\"hi\\\"\\\\\""),
            ("two\nlines\t\u{7}", "\"two\\nlines\\t\\u0007\""),
            ("ünï", "\"ünï\""),
        ] {
            assert_eq!(scalar(text), quoted, "{text:?}");
        }
    }

    #[test]
    fn suggestions() {
        let names = || VARIABLES.iter().map(|(n, _)| *n);
        assert_eq!(
            suggest("control_plane_db_hots", names()),
            Some("control_plane_db_host")
        );
        assert_eq!(
            suggest("supabase_password", names()),
            Some("supabase_db_password")
        );
        assert_eq!(suggest("namspace", names()), Some("namespace"));
        assert_eq!(suggest("replicas", names()), None);
    }

    #[test]
    fn terraform_conversions() {
        let c = run(&format!(
            "{REQUIRED}control_plane_db_port = \"6543\"\nwait_for_completion = \"false\"\n\
             namespace = 7\nlabels = {{ team = \"db\", tier = 1 }}\n"
        ));
        assert!(c.problems.is_empty(), "{:?}", c.problems);
        assert!(c.yaml.contains("        port: 6543\n"), "{}", c.yaml);
        assert!(c.yaml.contains("  wait: false\n"));
        assert!(c.yaml.contains("  namespace: \"7\"\n"));
        assert!(c.yaml.contains("    team: db\n    tier: \"1\"\n"));
    }

    #[test]
    fn type_errors_name_the_place_and_never_show_a_password() {
        let c = run(&format!(
            "{REQUIRED}control_plane_db_port = \"abc\"\nsupabase_db_port = 70000\n\
             run_supabase_migrations = \"yes\"\ncontrol_plane_db_password = [\"hunter2\"]\n\
             labels = [\"a\"]\nnamespace = {{}}\n"
        ));
        assert_eq!(
            c.problems,
            vec![
                "t.tfvars:7:25: control_plane_db_port: expected a port number (1 to 65535), found the string \"abc\"",
                "t.tfvars:8:20: supabase_db_port: expected a port number (1 to 65535), found the number 70000",
                "t.tfvars:9:27: run_supabase_migrations: expected true or false, found the string \"yes\"",
                "t.tfvars:10:29: control_plane_db_password: expected a string, found a list",
                "t.tfvars:11:10: labels: expected a map of strings ({ key = \"value\" }), found a list",
                "t.tfvars:12:13: namespace: expected a string, found an object",
            ]
        );
        assert!(c.yaml.is_empty());
    }

    #[test]
    fn missing_and_empty_required_variables() {
        let c = run("supabase_db_host = \"\"\nsupabase_db_user = \"u\"\n");
        assert_eq!(
            c.problems,
            vec![
                "t.tfvars:1:20: supabase_db_host: must not be empty",
                "t.tfvars: missing required variables (the module has no default): \
                 control_plane_db_host, control_plane_db_user, components_v2_db_host, components_v2_db_user",
            ]
        );
    }

    #[test]
    fn null_means_not_set() {
        let c = run(&format!(
            "{REQUIRED}control_plane_db_port = null\nlabels = null\n"
        ));
        assert!(c.problems.is_empty());
        assert!(
            c.yaml
                .contains("port: 5432  # control_plane_db_port: module default")
        );
    }

    #[test]
    fn resources_partial_and_misspelled() {
        let c = run(&format!(
            "{REQUIRED}migration_resources = {{\n  limits = {{ memory = \"1Gi\", cpus = 2 }}\n  limit = {{}}\n}}\n"
        ));
        assert!(c.problems.is_empty(), "{:?}", c.problems);
        assert!(
            c.yaml.contains(
                "    limits:\n      cpu: 500m  # migration_resources: module default\n      memory: 1Gi\n"
            ),
            "{}",
            c.yaml
        );
        assert_eq!(
            c.warnings,
            vec![
                "t.tfvars:8:30: migration_resources: limits.cpus is not cpu or memory; ignored (did you mean cpu?)",
                "t.tfvars:9:3: migration_resources: limit is not requests or limits; ignored (did you mean limits?)",
            ]
        );
        let c = run(&format!(
            "{REQUIRED}migration_resources = {{ limits = \"1Gi\" }}\n"
        ));
        assert_eq!(
            c.problems,
            vec![
                "t.tfvars:7:34: migration_resources: limits: expected {cpu = \"…\", memory = \"…\"}, found the string \"1Gi\""
            ]
        );
    }

    #[test]
    fn labels_that_need_quotes_are_quoted() {
        let c = run(&format!(
            "{REQUIRED}labels = {{ \"a: b\" = \"x #y\", \"team.example.com/role\" = \"db\" }}\n"
        ));
        assert!(
            c.yaml
                .contains("  labels:\n    \"a: b\": \"x #y\"\n    team.example.com/role: db\n"),
            "{}",
            c.yaml
        );
    }

    #[test]
    fn plan_names() {
        assert!(parse_plan_name("ananta-prod").is_ok());
        for bad in ["", "-a", "a-", "Ananta", "a_b", &"a".repeat(64)] {
            assert!(parse_plan_name(bad).is_err(), "{bad}");
        }
    }
}
