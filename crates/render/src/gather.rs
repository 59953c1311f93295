//! What the plan points at, read once: credentials from the environment, the
//! files of `localDir` targets. The only I/O of rendering.

use std::collections::BTreeMap;
use std::path::Path;

use kubemigrate_plan::{Credential, Diagnostic, FieldPath, LoadedPlan};

use crate::*;

/// A credential after [`gather`]: a value for the plan's Secret, or a key of an
/// existing Secret.
#[derive(Clone, PartialEq, Eq)]
pub enum Resolved {
    /// Goes into the plan's Secret (a placeholder when redacted).
    Value(String),
    /// Read from an existing Secret.
    Existing {
        /// The Secret.
        name: String,
        /// The key.
        key: String,
    },
}

impl std::fmt::Debug for Resolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Resolved::Value(_) => f.write_str("Value(***)"),
            Resolved::Existing { name, key } => write!(f, "Existing({name}/{key})"),
        }
    }
}

/// A file of a `localDir` target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalFile {
    /// Its key in the ConfigMap.
    pub key: String,
    /// Its path below the directory, with `/`.
    pub path: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// What the plan points at, read.
#[derive(Debug, Clone, Default)]
pub struct Gathered {
    /// Per target (same order as the plan): user and password.
    pub credentials: Vec<(Resolved, Resolved)>,
    /// Per target: the files of its `localDir`, if it has one.
    pub local_files: Vec<Option<Vec<LocalFile>>>,
}

/// Reads the credentials and `localDir` files of the plan's enabled targets.
/// `env` looks up environment variables. With `redact`, no credential is read:
/// each becomes a placeholder that says where it would come from.
///
/// # Errors
/// Every credential that cannot be read (variable unset, file missing) and every
/// `localDir` that cannot be read or does not fit in a ConfigMap, located in the plan.
pub fn gather(
    loaded: &LoadedPlan,
    env: &dyn Fn(&str) -> Option<String>,
    redact: bool,
) -> Result<Gathered, Vec<Diagnostic>> {
    let mut errors = Vec::new();
    let mut out = Gathered::default();
    for (i, t) in loaded.plan.spec.targets.iter().enumerate() {
        let tp = FieldPath::of(&["spec", "targets"]).index(i);
        let db = tp.key("database");
        let mut one = |c: &Credential, field: &str| -> Resolved {
            if !t.enabled {
                return Resolved::Value(String::new());
            }
            match resolve(loaded, c, env, redact) {
                Ok(r) => r,
                Err(message) => {
                    let path = match c {
                        Credential::FromEnv(_) => db.key(field).key("fromEnv"),
                        Credential::FromFile(_) => db.key(field).key("fromFile"),
                        _ => db.key(field),
                    };
                    errors.push(loaded.error_at(path, message));
                    Resolved::Value(String::new())
                }
            }
        };
        let user = one(&t.database.user, "user");
        let password = one(&t.database.password, "password");
        out.credentials.push((user, password));
        let files = match (&t.sql, t.enabled) {
            (Some(sql), true) => sql.local_dir.as_ref().and_then(|dir| {
                let path = tp.key("sql").key("localDir");
                // The same rule as in the plan: files stay in the plan's directory
                // unless the target opts out.
                let root = (!sql.allow_outside_plan_dir).then(|| loaded.plan_dir());
                let native = sql.layout == kubemigrate_plan::Layout::Native;
                match read_local_dir(&loaded.resolve_path(dir), root.as_deref(), native) {
                    Ok(files) => Some(files),
                    Err(message) => {
                        errors.push(loaded.error_at(path, message));
                        None
                    }
                }
            }),
            _ => None,
        };
        out.local_files.push(files);
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

pub(crate) fn resolve(
    loaded: &LoadedPlan,
    c: &Credential,
    env: &dyn Fn(&str) -> Option<String>,
    redact: bool,
) -> Result<Resolved, String> {
    Ok(match c {
        Credential::ExistingSecret { name, key } => Resolved::Existing {
            name: name.clone(),
            key: key.clone(),
        },
        Credential::Literal(_) if redact => {
            Resolved::Value("<redacted: written in the plan>".into())
        }
        Credential::Literal(v) => Resolved::Value(v.clone()),
        Credential::FromEnv(var) if redact => {
            Resolved::Value(format!("<redacted: from environment variable {var}>"))
        }
        Credential::FromEnv(var) => match env(var) {
            Some(v) => Resolved::Value(v),
            None => return Err(format!("the environment variable {var} is not set")),
        },
        Credential::FromFile(p) if redact => {
            Resolved::Value(format!("<redacted: from file {}>", p.display()))
        }
        Credential::FromFile(p) => {
            let full = loaded.resolve_path(p);
            match std::fs::read_to_string(&full) {
                Ok(mut v) => {
                    if v.ends_with('\n') {
                        v.pop();
                        if v.ends_with('\r') {
                            v.pop();
                        }
                    }
                    Resolved::Value(v)
                }
                Err(e) => return Err(format!("cannot read {}: {e}", full.display())),
            }
        }
    })
}

/// Reads every regular file below `dir` (hidden files and directories skipped) as
/// ConfigMap entries, and checks that they fit in one ConfigMap. Symbolic links are
/// followed; with `root`, every file and directory must resolve to a path inside
/// `root` (the plan's directory), as the SQL engine's includes must stay inside the
/// migration directory.
///
/// # Errors
/// The directory cannot be read, a file or directory is outside `root`, a symbolic
/// link loops back to a directory being read, two paths map to the same key, or the
/// files are more than 1 MiB in all (the message gives the size).
///
/// With `native`, the directory must hold a `*.sql` file directly; else (another
/// layout, whose files may sit in subfolders) anywhere below it.
pub fn read_local_dir(
    dir: &Path,
    root: Option<&Path>,
    native: bool,
) -> Result<Vec<LocalFile>, String> {
    let mut files = Vec::new();
    let mut walker = Walker {
        root,
        open: Vec::new(),
    };
    walker.walk(dir, "", &mut files)?;
    files.sort_by(|a, b| a.path.cmp(&b.path));
    if !files
        .iter()
        .any(|f| (!native || !f.path.contains('/')) && f.path.ends_with(".sql"))
    {
        return Err(format!("{} holds no *.sql file", dir.display()));
    }
    let mut keys: BTreeMap<&str, &str> = BTreeMap::new();
    for f in &files {
        if let Some(other) = keys.insert(&f.key, &f.path) {
            return Err(format!(
                "{other} and {} would have the same ConfigMap key {:?}; rename one",
                f.path, f.key
            ));
        }
    }
    let size: usize = files.iter().map(|f| f.key.len() + f.bytes.len()).sum();
    if size > CONFIG_MAP_LIMIT {
        return Err(format!(
            "{} holds {size} bytes in {} files, more than a ConfigMap holds ({CONFIG_MAP_LIMIT} bytes, 1 MiB); \
             ship the files in an image instead (sql.image)",
            dir.display(),
            files.len()
        ));
    }
    Ok(files)
}

/// The walk of a `localDir`: where files must stay, and the directories being read
/// (resolved), to stop at a symbolic link that loops back.
pub(crate) struct Walker<'a> {
    pub(crate) root: Option<&'a Path>,
    pub(crate) open: Vec<std::path::PathBuf>,
}

impl Walker<'_> {
    pub(crate) fn walk(
        &mut self,
        dir: &Path,
        prefix: &str,
        out: &mut Vec<LocalFile>,
    ) -> Result<(), String> {
        let real = dir
            .canonicalize()
            .map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
        if self.open.contains(&real) {
            return Err(format!(
                "{} is a symbolic link back to {}, which is being read (a loop)",
                dir.display(),
                real.display()
            ));
        }
        self.open.push(real);
        let result = self.entries(dir, prefix, out);
        self.open.pop();
        result
    }

    pub(crate) fn entries(
        &mut self,
        dir: &Path,
        prefix: &str,
        out: &mut Vec<LocalFile>,
    ) -> Result<(), String> {
        let entries =
            std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let path = entry.path();
            let rel = format!("{prefix}{name}");
            if let Some(root) = self.root {
                let real = path
                    .canonicalize()
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                if !real.starts_with(root) {
                    return Err(format!(
                        "{} leads to {}, outside the plan's directory {}; copy the file in, or set \
                         `allowOutsidePlanDir: true` in this target's `sql`",
                        path.display(),
                        real.display(),
                        root.display()
                    ));
                }
            }
            // Follows symbolic links, as the ConfigMap would hold the target's bytes.
            let meta = std::fs::metadata(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            if meta.is_dir() {
                self.walk(&path, &format!("{rel}/"), out)?;
            } else if meta.is_file() {
                let bytes = std::fs::read(&path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                let key: String = rel
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                            c
                        } else {
                            '_'
                        }
                    })
                    .collect();
                out.push(LocalFile {
                    key,
                    path: rel,
                    bytes,
                });
            }
        }
        Ok(())
    }
}
