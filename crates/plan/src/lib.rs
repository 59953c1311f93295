//! The kubemigrate plan file (`plan.yaml`): its model, its loading with errors that
//! name the file, line, column and field, its whole-plan validation, and its JSON
//! Schema.
//!
//! ```
//! let text = "apiVersion: kubemigrate.io/v1alpha1
//! kind: MigrationPlan
//! metadata: {name: shop}
//! spec:
//!   targets:
//!     - name: orders
//!       database: {host: db, name: orders, user: app, password: {fromEnv: DB_PASSWORD}}
//!       sql: {image: shop/orders-migrations:1.0}
//! ";
//! let loaded = kubemigrate_plan::parse(text, "plan.yaml".as_ref()).unwrap();
//! assert_eq!(loaded.plan.spec.targets[0].name.as_str(), "orders");
//! assert_eq!(loaded.plan.metadata.namespace.as_str(), "default");
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

mod de;
pub mod model;
pub mod path;
mod suggest;
pub mod validate;
pub mod values;
pub mod yaml;

pub use model::*;
pub use path::{FieldPath, Segment};
pub use suggest::did_you_mean;
pub use values::{DurationError, format_duration, parse_duration};
pub use yaml::Pos;

/// A message about one place in a plan file.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    /// The plan file, as given.
    pub file: PathBuf,
    /// The line and column.
    pub pos: Pos,
    /// The field.
    pub path: FieldPath,
    /// What is wrong, as a lowercase fragment.
    pub message: String,
    /// `true` for a warning.
    pub warning: bool,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.file.display(), self.pos)?;
        if self.warning {
            f.write_str("warning: ")?;
        }
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Why a plan could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The file could not be read.
    #[error("cannot read the plan {}", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a valid plan; every error found, in file order.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Diagnostic>),
}

/// A plan as loaded: the model, where it came from, and its YAML tree so later
/// checks (rendering) can point at lines too.
#[derive(Debug, Clone)]
pub struct LoadedPlan {
    /// The plan.
    pub plan: Plan,
    /// The file, as given.
    pub file: PathBuf,
    /// The directory that relative paths (`localDir`, `fromFile`) start from.
    pub base_dir: PathBuf,
    /// Warnings (the plan is usable).
    pub warnings: Vec<Diagnostic>,
    root: yaml::Node,
}

impl LoadedPlan {
    /// The line and column of the value at `path`, or of its nearest written parent
    /// (a missing field is reported where its mapping starts).
    pub fn locate(&self, path: &FieldPath) -> Pos {
        let mut node = &self.root;
        for seg in path.segments() {
            let next = match seg {
                Segment::Key(k) => node.get(k),
                Segment::Index(i) => node.item(*i),
            };
            match next {
                Some(n) => node = n,
                None => break,
            }
        }
        node.pos
    }

    /// A diagnostic (error) at `path`.
    pub fn error_at(&self, path: FieldPath, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            file: self.file.clone(),
            pos: self.locate(&path),
            path,
            message: message.into(),
            warning: false,
        }
    }

    /// The plan's directory with its symbolic links resolved: the directory that
    /// `localDir` files must stay in (unless `sql.allowOutsidePlanDir`).
    pub fn plan_dir(&self) -> PathBuf {
        self.base_dir
            .canonicalize()
            .unwrap_or_else(|_| self.base_dir.clone())
    }

    /// Why `path` (symbolic links followed) is outside the plan's directory, or
    /// `None` when it is inside. The same rule as the SQL engine's for `\i` and
    /// `\copy`: the resolved path must start with the resolved directory. `written`
    /// is how the plan names it, for the message.
    pub fn outside_plan_dir(&self, written: &Path, path: &Path) -> Option<String> {
        let root = self.plan_dir();
        match path.canonicalize() {
            Ok(real) if real.starts_with(&root) => None,
            Ok(real) => Some(format!(
                "{}{} is outside the plan's directory {}; keep the files next to the plan, \
                 or set `allowOutsidePlanDir: true` in this target's `sql`",
                written.display(),
                if real.as_path() == written {
                    String::new()
                } else {
                    format!(" (that is {})", real.display())
                },
                root.display()
            )),
            Err(e) => Some(format!("cannot read {}: {e}", path.display())),
        }
    }

    /// `path` resolved against the plan's directory.
    pub fn resolve_path(&self, path: &Path) -> PathBuf {
        self.base_dir
            .join(path)
            .components()
            .filter(|c| !matches!(c, std::path::Component::CurDir))
            .collect()
    }
}

/// Reads and checks the plan at `file` (`-` reads standard input).
///
/// # Errors
/// [`PlanError::Read`] if the file cannot be read; [`PlanError::Invalid`] with every
/// problem found otherwise.
pub fn load(file: &Path) -> Result<LoadedPlan, PlanError> {
    let read = |f: &Path| -> std::io::Result<String> {
        if f == Path::new("-") {
            std::io::read_to_string(std::io::stdin())
        } else {
            std::fs::read_to_string(f)
        }
    };
    let text = read(file).map_err(|source| PlanError::Read {
        file: file.to_path_buf(),
        source,
    })?;
    parse(&text, file)
}

/// Checks the plan in `text`, read from `file` (used in messages and as the base of
/// relative paths).
///
/// # Errors
/// [`PlanError::Invalid`] with every problem found: a YAML or type error stops at
/// the first; whole-plan checks report them all.
pub fn parse(text: &str, file: &Path) -> Result<LoadedPlan, PlanError> {
    let at = |pos: Pos, path: FieldPath, message: String| {
        PlanError::Invalid(vec![Diagnostic {
            file: file.to_path_buf(),
            pos,
            path,
            message,
            warning: false,
        }])
    };
    let root = match yaml::parse(text) {
        Ok(Some(root)) => root,
        Ok(None) => {
            return Err(at(
                Pos { line: 1, column: 1 },
                FieldPath::root(),
                "the plan is empty; it starts with `apiVersion: kubemigrate.io/v1alpha1` and `kind: MigrationPlan`".into(),
            ));
        }
        Err(e) => {
            return Err(at(
                e.pos,
                FieldPath::root(),
                format!("invalid YAML: {}", e.message),
            ));
        }
    };
    // Say what the document is before complaining about its fields.
    if let Some(kind) = root.get("kind")
        && kind.key_text() != KIND
        && matches!(kind.kind, yaml::NodeKind::Scalar { .. })
    {
        return Err(at(
            kind.pos,
            FieldPath::of(&["kind"]),
            format!("this is a {:?}, not a {KIND}", kind.key_text()),
        ));
    }
    let plan: Plan = de::from_node(&root, FieldPath::root()).map_err(|e| {
        at(
            e.pos.unwrap_or(root.pos),
            e.path.unwrap_or_default(),
            e.message,
        )
    })?;
    let base_dir = match file.parent() {
        Some(p) if file != Path::new("-") && !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut loaded = LoadedPlan {
        plan,
        file: file.to_path_buf(),
        base_dir,
        warnings: Vec::new(),
        root,
    };
    let mut errors = Vec::new();
    for finding in validate::validate(&loaded.plan) {
        let d = Diagnostic {
            warning: finding.warning,
            ..loaded.error_at(finding.path, finding.message)
        };
        if d.warning {
            loaded.warnings.push(d);
        } else {
            errors.push(d);
        }
    }
    for (i, t) in loaded.plan.spec.targets.iter().enumerate() {
        if let Some(sql) = &t.sql
            && let Some(dir) = &sql.local_dir
            && sql.image.is_none()
        {
            let full = loaded.resolve_path(dir);
            let path = FieldPath::of(&["spec", "targets"])
                .index(i)
                .key("sql")
                .key("localDir");
            if !full.is_dir() {
                errors
                    .push(loaded.error_at(path, format!("{} is not a directory", full.display())));
            } else if !sql.allow_outside_plan_dir
                && let Some(message) = loaded.outside_plan_dir(dir, &full)
            {
                errors.push(loaded.error_at(path, message));
            }
        }
    }
    if errors.is_empty() {
        Ok(loaded)
    } else {
        errors.sort_by_key(|d| (d.pos.line, d.pos.column));
        Err(PlanError::Invalid(errors))
    }
}

/// The plan's JSON Schema (draft 2020-12), for editors and CI linters.
pub fn json_schema() -> serde_json::Value {
    let mut schema = schemars::schema_for!(Plan);
    schema.insert(
        "$id".into(),
        "https://kubemigrate.io/schemas/v1alpha1/plan.json".into(),
    );
    schema.insert(
        "title".into(),
        "kubemigrate MigrationPlan (kubemigrate.io/v1alpha1)".into(),
    );
    schema.to_value()
}
