//! Renders a kubemigrate plan into the Kubernetes objects that run it: a ConfigMap
//! of connection settings, a Secret of credentials, a ConfigMap of SQL files per
//! `localDir` target, and one batch/v1 Job per enabled target.
//!
//! Two steps: [`gather`] reads what the plan points at (environment variables,
//! files, `localDir` directories) and is the only I/O; [`build`] is a pure function
//! of the plan and what was gathered. `kubemigrate render` prints the result;
//! `kubemigrate apply` (a later issue) sends the same objects to the API server.
//!
//! # Caveats
//! Secret values live in [`Gathered`] and in the Secret object only. With
//! `redact`, [`gather`] never reads them and the Secret holds placeholders.

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::api::batch::v1::{
    Job, JobSpec, PodFailurePolicy, PodFailurePolicyOnExitCodesRequirement,
    PodFailurePolicyOnPodConditionsPattern, PodFailurePolicyRule,
};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, ConfigMap, ConfigMapKeySelector, ConfigMapVolumeSource, Container,
    EmptyDirVolumeSource, EnvVar, EnvVarSource, KeyToPath, LocalObjectReference,
    PodSecurityContext, PodSpec, PodTemplateSpec, ResourceRequirements, SeccompProfile, Secret,
    SecretKeySelector, SecurityContext, Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kubemigrate_plan::{
    Credential, DatabaseSource, Diagnostic, Engine, FieldPath, LoadedPlan, Plan, Resources, Target,
};

pub mod yaml;

use kubemigrate_contract::{env, exit, k8s};

/// Where the runner image keeps the kubemigrate binary.
pub const RUNNER_BINARY: &str = "/kubemigrate";
/// Where the migration container finds the copied binary.
pub const COPIED_BINARY: &str = "/kubemigrate/kubemigrate";
/// Longest the init container waits for the database (or the plan's timeout if
/// shorter).
pub const MAX_DATABASE_WAIT_SECS: u64 = 300;
/// Most bytes a ConfigMap holds.
pub const CONFIG_MAP_LIMIT: usize = 1024 * 1024;
/// The default user and group id of the containers.
pub const DEFAULT_UID: i64 = 1000;

/// Hook annotations for a chart or an Argo CD application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hooks {
    /// Helm `pre-install,pre-upgrade` hooks.
    Helm,
    /// Argo CD `PreSync` hooks.
    ArgoCd,
}

/// How to render.
#[derive(Debug, Clone)]
pub struct Options {
    /// The suffix of the Job names (a DNS-1123 label).
    pub run_id: String,
    /// Hook annotations to add.
    pub hooks: Option<Hooks>,
    /// The runner image when the plan names none.
    pub default_runner_image: String,
}

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

fn resolve(
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
struct Walker<'a> {
    root: Option<&'a Path>,
    open: Vec<std::path::PathBuf>,
}

impl Walker<'_> {
    fn walk(&mut self, dir: &Path, prefix: &str, out: &mut Vec<LocalFile>) -> Result<(), String> {
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

    fn entries(
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

/// One target's Job, with what `apply` needs to order it.
#[derive(Debug, Clone)]
pub struct TargetJob {
    /// The target's name.
    pub target: String,
    /// The targets it waits for.
    pub depends_on: Vec<String>,
    /// The Job.
    pub job: Job,
}

/// The objects of one run of a plan, in the order they must be created.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// `<plan>-migration-config`: hosts, ports, database names, schemas.
    pub config_map: ConfigMap,
    /// `<plan>-migration-db-credentials`: users and passwords not taken from an
    /// existing Secret (none if every credential is).
    pub secret: Option<Secret>,
    /// `<plan>-<target>-sql`: the files of each `localDir` target.
    pub sql_config_maps: Vec<ConfigMap>,
    /// One Job per enabled target, in plan order.
    pub jobs: Vec<TargetJob>,
}

impl Rendered {
    /// Every object as JSON, in creation order.
    pub fn to_values(&self) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        let mut push = |v: Result<serde_json::Value, serde_json::Error>| {
            // k8s-openapi types always serialize (plain data, string keys).
            if let Ok(v) = v {
                out.push(v);
            }
        };
        push(serde_json::to_value(&self.config_map));
        if let Some(s) = &self.secret {
            push(serde_json::to_value(s));
        }
        for cm in &self.sql_config_maps {
            push(serde_json::to_value(cm));
        }
        for j in &self.jobs {
            push(serde_json::to_value(&j.job));
        }
        out
    }

    /// Every object as one YAML stream.
    pub fn to_yaml(&self) -> String {
        yaml::to_yaml_stream(&self.to_values())
    }
}

/// The key prefix of a target in the ConfigMap and Secret: `control-plane` →
/// `CONTROL_PLANE`.
pub fn key_prefix(target: &str) -> String {
    target.replace('-', "_").to_ascii_uppercase()
}

/// The name of the plan's ConfigMap.
pub fn config_map_name(plan: &Plan) -> String {
    format!("{}-migration-config", plan.metadata.name)
}

/// The name of the plan's Secret.
pub fn secret_name(plan: &Plan) -> String {
    format!("{}-migration-db-credentials", plan.metadata.name)
}

/// The name of a target's Job for a run.
pub fn job_name(target: &str, run_id: &str) -> String {
    format!("{target}-migrations-{run_id}")
}

/// The labels on every object of the plan.
pub fn plan_labels(plan: &Plan) -> BTreeMap<String, String> {
    let mut l = plan.spec.labels.clone();
    let name = plan.metadata.name.to_string();
    l.insert(k8s::PART_OF.into(), name.clone());
    l.insert(k8s::MANAGED_BY.into(), k8s::MANAGER.into());
    l.insert(k8s::COMPONENT.into(), k8s::COMPONENT_VALUE.into());
    l.insert(k8s::PLAN.into(), name);
    l
}

/// Builds the objects from the plan and what [`gather`] read.
///
/// # Errors
/// A Job name longer than 63 characters (a long target name with a long run id), or
/// an `affinity` that is not a Kubernetes Affinity (wrong type, unknown field).
pub fn build(
    loaded: &LoadedPlan,
    gathered: &Gathered,
    options: &Options,
) -> Result<Rendered, Vec<Diagnostic>> {
    let plan = &loaded.plan;
    let mut errors = Vec::new();
    let affinity = match &plan.spec.affinity {
        None => None,
        Some(v) => match check_affinity(v) {
            Ok(a) => Some(a),
            Err((path, message)) => {
                let mut full = FieldPath::of(&["spec", "affinity"]);
                for seg in path.segments() {
                    full = match seg {
                        kubemigrate_plan::Segment::Key(k) => full.key(k),
                        kubemigrate_plan::Segment::Index(i) => full.index(*i),
                    };
                }
                errors.push(loaded.error_at(full, message));
                None
            }
        },
    };
    let ns = plan.metadata.namespace.to_string();
    let labels = plan_labels(plan);
    let hook = |weight: &str, is_job: bool| -> BTreeMap<String, String> {
        let mut a = BTreeMap::new();
        match options.hooks {
            None => {}
            Some(Hooks::Helm) => {
                a.insert("helm.sh/hook".into(), "pre-install,pre-upgrade".into());
                a.insert("helm.sh/hook-weight".into(), weight.into());
                a.insert(
                    "helm.sh/hook-delete-policy".into(),
                    "before-hook-creation".into(),
                );
            }
            Some(Hooks::ArgoCd) => {
                a.insert("argocd.argoproj.io/hook".into(), "PreSync".into());
                a.insert("argocd.argoproj.io/sync-wave".into(), weight.into());
                a.insert(
                    "argocd.argoproj.io/hook-delete-policy".into(),
                    "BeforeHookCreation".into(),
                );
            }
        }
        if is_job {
            a.extend(plan.spec.annotations.clone());
        }
        a
    };
    let meta = |name: String, annotations: BTreeMap<String, String>| ObjectMeta {
        name: Some(name),
        namespace: Some(ns.clone()),
        labels: Some(labels.clone()),
        annotations: (!annotations.is_empty()).then_some(annotations),
        ..Default::default()
    };

    // Connection settings and credentials of the enabled targets.
    let mut config = BTreeMap::new();
    let mut secret = BTreeMap::new();
    for (t, (user, password)) in plan.spec.targets.iter().zip(&gathered.credentials) {
        if !t.enabled {
            continue;
        }
        let k = key_prefix(t.name.as_str());
        let db = &t.database;
        config.insert(format!("{k}_DB_HOST"), db.host.clone());
        config.insert(format!("{k}_DB_PORT"), db.port.to_string());
        config.insert(format!("{k}_DB_DATABASE"), db.name.clone());
        if let Some(schema) = &db.schema {
            config.insert(format!("{k}_DB_SCHEMA"), schema.clone());
        }
        if let Some(mode) = db.ssl_mode {
            config.insert(format!("{k}_DB_SSLMODE"), mode.as_str().to_string());
        }
        if let Some(kubemigrate_plan::Databases {
            source: DatabaseSource::List(names),
            ..
        }) = &t.databases
        {
            config.insert(format!("{k}_DATABASES"), names.join("\n"));
        }
        if let Resolved::Value(v) = user {
            secret.insert(format!("{k}_DB_USER"), v.clone());
        }
        if let Resolved::Value(v) = password {
            secret.insert(format!("{k}_DB_PASSWORD"), v.clone());
        }
    }
    let config_map = ConfigMap {
        metadata: meta(config_map_name(plan), hook("-5", false)),
        data: Some(config),
        ..Default::default()
    };
    let secret = (!secret.is_empty()).then(|| Secret {
        metadata: meta(secret_name(plan), hook("-5", false)),
        type_: Some("Opaque".into()),
        string_data: Some(secret),
        ..Default::default()
    });

    let mut sql_config_maps = Vec::new();
    let mut jobs = Vec::new();
    for (i, t) in plan.spec.targets.iter().enumerate() {
        if !t.enabled {
            continue;
        }
        let files = gathered.local_files.get(i).and_then(Option::as_ref);
        let sql_cm_name = format!("{}-{}-sql", plan.metadata.name, t.name);
        if let Some(files) = files {
            let mut data = BTreeMap::new();
            let mut binary = BTreeMap::new();
            for f in files {
                match std::str::from_utf8(&f.bytes) {
                    Ok(text) => {
                        data.insert(f.key.clone(), text.to_string());
                    }
                    Err(_) => {
                        binary.insert(f.key.clone(), k8s_openapi::ByteString(f.bytes.clone()));
                    }
                }
            }
            sql_config_maps.push(ConfigMap {
                metadata: meta(sql_cm_name.clone(), hook("-5", false)),
                data: (!data.is_empty()).then_some(data),
                binary_data: (!binary.is_empty()).then_some(binary),
                ..Default::default()
            });
        }
        let name = job_name(t.name.as_str(), &options.run_id);
        if name.len() > 63 {
            errors.push(loaded.error_at(
                FieldPath::of(&["spec", "targets"]).index(i).key("name"),
                format!(
                    "the Job name {name:?} is {} characters, more than 63; use a shorter target name or --run-id",
                    name.len()
                ),
            ));
            continue;
        }
        let job = JobBuilder {
            plan,
            target: t,
            name,
            options,
            labels: &labels,
            affinity: affinity.clone(),
            files,
            sql_cm_name,
            credentials: gathered.credentials.get(i),
        }
        .build(meta, &hook);
        jobs.push(TargetJob {
            target: t.name.to_string(),
            depends_on: t.depends_on.clone(),
            job,
        });
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Rendered {
        config_map,
        secret,
        sql_config_maps,
        jobs,
    })
}

/// Converts the plan's affinity to the Kubernetes type, refusing unknown fields
/// (which serde would drop silently) with their path below `affinity`.
fn check_affinity(v: &serde_json::Value) -> Result<Affinity, (FieldPath, String)> {
    let a: Affinity = serde_json::from_value(v.clone())
        .map_err(|e| (FieldPath::root(), format!("not a Kubernetes Affinity: {e}")))?;
    let back = serde_json::to_value(&a).unwrap_or_default();
    if let Some(path) = first_unknown(v, &back, FieldPath::root()) {
        let field = match path.segments().last() {
            Some(kubemigrate_plan::Segment::Key(k)) => k.clone(),
            _ => String::new(),
        };
        return Err((path, format!("unknown field `{field}` in an Affinity")));
    }
    Ok(a)
}

fn first_unknown(
    orig: &serde_json::Value,
    back: &serde_json::Value,
    path: FieldPath,
) -> Option<FieldPath> {
    use serde_json::Value;
    match (orig, back) {
        (Value::Object(o), Value::Object(b)) => {
            for (k, v) in o {
                match b.get(k) {
                    None if !v.is_null() => return Some(path.key(k)),
                    None => {}
                    Some(bv) => {
                        if let Some(p) = first_unknown(v, bv, path.key(k)) {
                            return Some(p);
                        }
                    }
                }
            }
            None
        }
        (Value::Array(o), Value::Array(b)) => o
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(i, (ov, bv))| first_unknown(ov, bv, path.index(i))),
        _ => None,
    }
}

struct JobBuilder<'a> {
    plan: &'a Plan,
    target: &'a Target,
    name: String,
    options: &'a Options,
    labels: &'a BTreeMap<String, String>,
    affinity: Option<Affinity>,
    files: Option<&'a Vec<LocalFile>>,
    sql_cm_name: String,
    credentials: Option<&'a (Resolved, Resolved)>,
}

/// What runs in `run-migrations`.
enum Runner {
    /// The runner image itself runs kubemigrate (localDir targets).
    OwnImage,
    /// The target's image runs the copied binary.
    Copied,
    /// The target's image runs psql (engine: psql).
    Psql,
}

impl JobBuilder<'_> {
    fn build(
        self,
        meta: impl Fn(String, BTreeMap<String, String>) -> ObjectMeta,
        hook: &dyn Fn(&str, bool) -> BTreeMap<String, String>,
    ) -> Job {
        let plan = self.plan;
        let t = self.target;
        let runner_image = plan
            .spec
            .runner_image
            .clone()
            .unwrap_or_else(|| self.options.default_runner_image.clone());
        let mut labels = self.labels.clone();
        labels.insert(k8s::NAME.into(), format!("{}-migrations", t.name));
        labels.insert(k8s::INSTANCE.into(), self.name.clone());
        labels.insert(k8s::TARGET.into(), t.name.to_string());
        labels.insert(k8s::RUN_ID.into(), self.options.run_id.clone());

        let timeout = plan.spec.timeout.value();
        let deadline = timeout.as_secs_f64().ceil().max(1.0) as i64;
        let wait = timeout.as_secs().clamp(1, MAX_DATABASE_WAIT_SECS);

        let sec = plan.security_for(t);
        let uid = sec.run_as_user.map_or(DEFAULT_UID, i64::from);
        let gid = sec.run_as_group.map_or(DEFAULT_UID, i64::from);
        let container_security = SecurityContext {
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                add: None,
            }),
            read_only_root_filesystem: Some(sec.read_only_root_filesystem.unwrap_or(true)),
            run_as_non_root: Some(true),
            run_as_user: Some(uid),
            run_as_group: Some(gid),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                localhost_profile: None,
            }),
            ..Default::default()
        };
        let resources = resource_requirements(&plan.resources_for(t));

        let env = self.env();
        let tmp_mount = VolumeMount {
            name: "tmp".into(),
            mount_path: "/tmp".into(),
            ..Default::default()
        };
        let container = |name: &str, image: &str, command: Vec<String>| Container {
            name: name.into(),
            image: Some(image.into()),
            command: Some(command),
            env: Some(env.clone()),
            resources: Some(resources.clone()),
            security_context: Some(container_security.clone()),
            volume_mounts: Some(vec![tmp_mount.clone()]),
            ..Default::default()
        };
        let s = |x: &str| x.to_string();

        let mut volumes = vec![Volume {
            name: "tmp".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        }];
        // The runner's own containers never need to write outside /tmp.
        let runner_container = |name: &str, command: Vec<String>| {
            let mut c = container(name, &runner_image, command);
            if let Some(sc) = c.security_context.as_mut() {
                sc.read_only_root_filesystem = Some(true);
            }
            c
        };
        let mut init = vec![runner_container(
            k8s::WAIT_FOR_POSTGRES,
            vec![
                s(RUNNER_BINARY),
                s("wait-for-db"),
                s("--timeout"),
                format!("{wait}s"),
            ],
        )];

        let (runner, image, mut command) = match (&t.sql, &t.command) {
            (Some(sql), _) if sql.local_dir.is_some() => (
                Runner::OwnImage,
                runner_image.clone(),
                [
                    vec![
                        s(RUNNER_BINARY),
                        s("sql"),
                        s("migrate"),
                        s("--dir"),
                        s("/migrations"),
                    ],
                    timeout_flags(sql),
                ]
                .concat(),
            ),
            (Some(sql), _) if sql.engine == Engine::Psql => (
                Runner::Psql,
                sql.image.clone().unwrap_or_default(),
                psql_loop(),
            ),
            (Some(sql), _) => (
                Runner::Copied,
                sql.image.clone().unwrap_or_default(),
                [
                    vec![
                        s(COPIED_BINARY),
                        s("sql"),
                        s("migrate"),
                        s("--dir"),
                        sql.dir.clone().unwrap_or_else(|| s("/migrations")),
                    ],
                    timeout_flags(sql),
                ]
                .concat(),
            ),
            (None, Some(cmd)) => {
                let mut c = vec![s(COPIED_BINARY), s("exec"), s("--lock"), s("--")];
                c.extend(cmd.command.iter().cloned());
                c.extend(cmd.args.iter().cloned());
                (Runner::Copied, cmd.image.clone(), c)
            }
            // validate() guarantees exactly one of sql and command.
            (None, None) => (Runner::OwnImage, runner_image.clone(), vec![]),
        };
        if let Some(d) = &t.databases {
            command.extend(fanout_flags(d));
        }
        let mut main = container(k8s::RUN_MIGRATIONS, &image, Vec::new());
        if let Some(e) = self.databases_env() {
            main.env.get_or_insert_with(Vec::new).push(e);
        }
        match runner {
            Runner::Copied => {
                volumes.push(Volume {
                    name: "kubemigrate".into(),
                    empty_dir: Some(EmptyDirVolumeSource::default()),
                    ..Default::default()
                });
                let mut install = runner_container(
                    k8s::INSTALL_RUNNER,
                    vec![
                        s(RUNNER_BINARY),
                        s("install-runner"),
                        s("/runner/kubemigrate"),
                    ],
                );
                install.env = None;
                push_mount(&mut install, "kubemigrate", "/runner", false);
                init.push(install);
                push_mount(&mut main, "kubemigrate", "/kubemigrate", true);
            }
            Runner::OwnImage => {
                if let Some(files) = self.files {
                    volumes.push(Volume {
                        name: "migrations".into(),
                        config_map: Some(ConfigMapVolumeSource {
                            name: self.sql_cm_name.clone(),
                            items: Some(
                                files
                                    .iter()
                                    .map(|f| KeyToPath {
                                        key: f.key.clone(),
                                        path: f.path.clone(),
                                        mode: None,
                                    })
                                    .collect(),
                            ),
                            ..Default::default()
                        }),
                        ..Default::default()
                    });
                    push_mount(&mut main, "migrations", "/migrations", true);
                }
            }
            Runner::Psql => {
                let mut e = main.env.take().unwrap_or_default();
                for (pg, db) in [
                    (env::PGHOST, env::DB_HOST),
                    (env::PGPORT, env::DB_PORT),
                    (env::PGDATABASE, env::DB_DATABASE),
                    (env::PGUSER, env::DB_USER),
                    (env::PGPASSWORD, env::DB_PASSWORD),
                ] {
                    e.push(plain_env(pg, &format!("$({db})")));
                }
                let dir = t
                    .sql
                    .as_ref()
                    .and_then(|s| s.dir.clone())
                    .unwrap_or_else(|| s("/migrations"));
                e.push(plain_env("MIGRATIONS_DIR", &dir));
                // psql sets the timeouts from the server options libpq sends.
                if let Some(sql) = &t.sql {
                    let options: Vec<String> = [
                        ("lock_timeout", &sql.lock_timeout),
                        ("statement_timeout", &sql.statement_timeout),
                    ]
                    .iter()
                    .filter_map(|(name, d)| {
                        d.as_ref()
                            .map(|d| format!("-c {name}={}", d.value().as_millis().max(1)))
                    })
                    .collect();
                    if !options.is_empty() {
                        e.push(plain_env("PGOPTIONS", &options.join(" ")));
                    }
                }
                main.env = Some(e);
            }
        }
        if let Some(cmd) = &t.command {
            let mut e = main.env.take().unwrap_or_default();
            if !cmd.env.iter().any(|v| v.name == "NODE_ENV") {
                e.push(plain_env("NODE_ENV", "production"));
            }
            for v in &cmd.env {
                e.push(plain_env(&v.name, &v.value));
            }
            main.env = Some(e);
        }
        main.command = Some(std::mem::take(&mut command));

        let mut template_annotations = plan.spec.annotations.clone();
        template_annotations.insert("sidecar.istio.io/inject".into(), "false".into());
        let pod = PodSpec {
            service_account_name: Some(plan.spec.service_account_name.clone()),
            automount_service_account_token: Some(false),
            restart_policy: Some("Never".into()),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(uid),
                run_as_group: Some(gid),
                fs_group: sec.fs_group.map(i64::from),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".into(),
                    localhost_profile: None,
                }),
                ..Default::default()
            }),
            image_pull_secrets: (!plan.spec.image_pull_secrets.is_empty()).then(|| {
                plan.spec
                    .image_pull_secrets
                    .iter()
                    .map(|r| LocalObjectReference {
                        name: r.name.clone(),
                    })
                    .collect()
            }),
            node_selector: (!plan.spec.node_selector.is_empty())
                .then(|| plan.spec.node_selector.clone()),
            tolerations: (!plan.spec.tolerations.is_empty()).then(|| {
                plan.spec
                    .tolerations
                    .iter()
                    .map(|t| Toleration {
                        key: t.key.clone(),
                        operator: t.operator.map(|o| format!("{o:?}")),
                        value: t.value.clone(),
                        effect: t.effect.map(|e| format!("{e:?}")),
                        toleration_seconds: t.toleration_seconds,
                    })
                    .collect()
            }),
            affinity: self.affinity,
            init_containers: Some(init),
            containers: vec![main],
            volumes: Some(volumes),
            ..Default::default()
        };
        let mut rules = Vec::new();
        if t.runs_native_engine() {
            rules.push(PodFailurePolicyRule {
                action: "FailJob".into(),
                on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
                    container_name: Some(k8s::RUN_MIGRATIONS.into()),
                    operator: "In".into(),
                    values: exit::FINAL_RUNNER_CODES
                        .iter()
                        .map(|e| i32::from(e.code()))
                        .collect(),
                }),
                on_pod_conditions: None,
            });
        }
        rules.push(PodFailurePolicyRule {
            action: "FailJob".into(),
            on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
                container_name: Some(k8s::WAIT_FOR_POSTGRES.into()),
                operator: "In".into(),
                values: exit::FINAL_WAIT_CODES
                    .iter()
                    .map(|e| i32::from(e.code()))
                    .collect(),
            }),
            on_pod_conditions: None,
        });
        rules.push(PodFailurePolicyRule {
            action: "Ignore".into(),
            on_exit_codes: None,
            on_pod_conditions: Some(vec![PodFailurePolicyOnPodConditionsPattern {
                type_: "DisruptionTarget".into(),
                status: "True".into(),
            }]),
        });
        let mut job_meta = meta(self.name.clone(), hook("0", true));
        job_meta.labels = Some(labels.clone());
        let backoff = i32::try_from(plan.spec.backoff_limit).unwrap_or(i32::MAX);
        let indexed = t.databases.as_ref().map(|d| {
            let shards = i32::try_from(d.shard_count()).unwrap_or(i32::MAX);
            // A shard's retries are its own (backoffLimitPerIndex), and a final
            // code fails that index only: one bad tenant does not fail the others.
            for r in &mut rules {
                let runner_rule = r
                    .on_exit_codes
                    .as_ref()
                    .is_some_and(|c| c.container_name.as_deref() == Some(k8s::RUN_MIGRATIONS));
                if runner_rule {
                    r.action = "FailIndex".into();
                }
            }
            (
                shards,
                i32::try_from(d.concurrency).unwrap_or(i32::MAX).min(shards),
                // `stop`: the first index that fails for good fails the Job and
                // ends its running pods.
                (d.on_failure == kubemigrate_plan::OnFailure::Stop).then_some(0),
            )
        });
        Job {
            metadata: job_meta,
            spec: Some(JobSpec {
                active_deadline_seconds: Some(deadline),
                backoff_limit: if indexed.is_some() {
                    None
                } else {
                    Some(backoff)
                },
                backoff_limit_per_index: indexed.map(|_| backoff),
                completion_mode: indexed.map(|_| "Indexed".into()),
                completions: indexed.map(|(shards, _, _)| shards),
                parallelism: indexed.map(|(_, parallelism, _)| parallelism),
                max_failed_indexes: indexed.and_then(|(_, _, max)| max),
                ttl_seconds_after_finished: Some(
                    i32::try_from(plan.spec.ttl_seconds_after_finished).unwrap_or(i32::MAX),
                ),
                pod_replacement_policy: Some("Failed".into()),
                pod_failure_policy: Some(PodFailurePolicy { rules }),
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(labels),
                        annotations: Some(template_annotations),
                        ..Default::default()
                    }),
                    spec: Some(pod),
                },
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// The module's contract: DB_HOST, DB_PORT, DB_DATABASE, DB_SCHEMA from the
    /// ConfigMap; DB_USER, DB_PASSWORD from the Secret (or an existing one).
    fn env(&self) -> Vec<EnvVar> {
        let k = key_prefix(self.target.name.as_str());
        let cm = config_map_name(self.plan);
        let from_cm = |name: &str, key: String| EnvVar {
            name: name.into(),
            value: None,
            value_from: Some(EnvVarSource {
                config_map_key_ref: Some(ConfigMapKeySelector {
                    name: cm.clone(),
                    key,
                    optional: None,
                }),
                ..Default::default()
            }),
        };
        let from_secret = |name: &str, secret: String, key: String| EnvVar {
            name: name.into(),
            value: None,
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: secret,
                    key,
                    optional: None,
                }),
                ..Default::default()
            }),
        };
        let mut env = vec![
            from_cm(env::DB_HOST, format!("{k}_DB_HOST")),
            from_cm(env::DB_PORT, format!("{k}_DB_PORT")),
            from_cm(env::DB_DATABASE, format!("{k}_DB_DATABASE")),
        ];
        if self.target.database.schema.is_some() {
            env.push(from_cm(env::DB_SCHEMA, format!("{k}_DB_SCHEMA")));
        }
        if self.target.database.ssl_mode.is_some() {
            env.push(from_cm(env::PGSSLMODE, format!("{k}_DB_SSLMODE")));
        }
        let secret = secret_name(self.plan);
        let (user, password) = match self.credentials {
            Some((u, p)) => (u.clone(), p.clone()),
            None => (
                Resolved::Value(String::new()),
                Resolved::Value(String::new()),
            ),
        };
        for (var, r) in [(env::DB_USER, user), (env::DB_PASSWORD, password)] {
            env.push(match r {
                Resolved::Value(_) => from_secret(var, secret.clone(), format!("{k}_{var}")),
                Resolved::Existing { name, key } => from_secret(var, name, key),
            });
        }
        env
    }

    /// A fan-out target's names (`KUBEMIGRATE_DATABASES`, from the plan's ConfigMap
    /// or the user's object) or query (`KUBEMIGRATE_DATABASE_QUERY`), for its
    /// `run-migrations` container only.
    fn databases_env(&self) -> Option<EnvVar> {
        let d = self.target.databases.as_ref()?;
        let k = key_prefix(self.target.name.as_str());
        let from_cm = |name: String, key: String| EnvVar {
            name: env::DATABASES.into(),
            value: None,
            value_from: Some(EnvVarSource {
                config_map_key_ref: Some(ConfigMapKeySelector {
                    name,
                    key,
                    optional: None,
                }),
                ..Default::default()
            }),
        };
        Some(match &d.source {
            DatabaseSource::List(_) => {
                from_cm(config_map_name(self.plan), format!("{k}_DATABASES"))
            }
            DatabaseSource::Query(q) => plain_env(env::DATABASE_QUERY, q),
            DatabaseSource::ConfigMap(r) => from_cm(r.name.clone(), r.key.clone()),
            DatabaseSource::Secret(r) => EnvVar {
                name: env::DATABASES.into(),
                value: None,
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: r.name.clone(),
                        key: r.key.clone(),
                        optional: None,
                    }),
                    ..Default::default()
                }),
            },
        })
    }
}

/// `sql migrate`'s flags for a target's databases: the shards (each pod of the
/// Indexed Job runs the one of its `JOB_COMPLETION_INDEX`; `apply --local`, which
/// sets no index, runs them all `--concurrency` at a time) and what a failure does.
/// The names come from `KUBEMIGRATE_DATABASES` or `KUBEMIGRATE_DATABASE_QUERY`.
fn fanout_flags(d: &kubemigrate_plan::Databases) -> Vec<String> {
    let on_failure = match d.on_failure {
        kubemigrate_plan::OnFailure::Continue => "continue",
        kubemigrate_plan::OnFailure::Stop => "stop",
    };
    vec![
        "--shards".into(),
        d.shard_count().to_string(),
        "--concurrency".into(),
        d.concurrency.to_string(),
        "--on-failure".into(),
        on_failure.into(),
    ]
}

/// `sql migrate`'s flags for the target's timeouts, retries and layout.
fn timeout_flags(sql: &kubemigrate_plan::Sql) -> Vec<String> {
    let ms = |d: &kubemigrate_plan::values::Duration| format!("{}ms", d.value().as_millis().max(1));
    let mut flags = Vec::new();
    if let Some(d) = &sql.lock_timeout {
        flags.extend(["--statement-lock-timeout".to_string(), ms(d)]);
    }
    if let Some(d) = &sql.statement_timeout {
        flags.extend(["--statement-timeout".to_string(), ms(d)]);
    }
    if sql.lock_retries > 0 {
        flags.extend(["--lock-retries".to_string(), sql.lock_retries.to_string()]);
    }
    // The Job reads the files as the plan says: the same layout as `sql migrate --layout`.
    if sql.layout != kubemigrate_plan::Layout::Native {
        flags.extend(["--layout".to_string(), sql.layout.name().to_string()]);
    }
    flags
}

fn push_mount(c: &mut Container, volume: &str, path: &str, read_only: bool) {
    c.volume_mounts
        .get_or_insert_with(Vec::new)
        .push(VolumeMount {
            name: volume.into(),
            mount_path: path.into(),
            read_only: read_only.then_some(true),
            ..Default::default()
        });
}

fn plain_env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        value_from: None,
    }
}

/// The Terraform module's loop: every `*.sql` file of the directory through psql,
/// in name order, stopping at the first error.
fn psql_loop() -> Vec<String> {
    vec![
        "/bin/sh".into(),
        "-c".into(),
        "set -eu\n\
         found=0\n\
         for f in \"$MIGRATIONS_DIR\"/*.sql; do\n  \
           [ -e \"$f\" ] || continue\n  \
           found=1\n  \
           echo \"Running migration: $f\"\n  \
           psql -X -v ON_ERROR_STOP=1 -f \"$f\"\n\
         done\n\
         [ \"$found\" = 1 ] || { echo \"no *.sql files in $MIGRATIONS_DIR\" >&2; exit 2; }\n\
         echo \"All migrations completed\"\n"
            .into(),
    ]
}

fn resource_requirements(r: &Resources) -> ResourceRequirements {
    let list = |l: &kubemigrate_plan::ResourceList| {
        let mut m = BTreeMap::new();
        if let Some(q) = &l.cpu {
            m.insert("cpu".to_string(), Quantity(q.as_str().to_string()));
        }
        if let Some(q) = &l.memory {
            m.insert("memory".to_string(), Quantity(q.as_str().to_string()));
        }
        if let Some(q) = &l.ephemeral_storage {
            m.insert(
                "ephemeral-storage".to_string(),
                Quantity(q.as_str().to_string()),
            );
        }
        (!m.is_empty()).then_some(m)
    };
    ResourceRequirements {
        requests: list(&r.requests),
        limits: list(&r.limits),
        ..Default::default()
    }
}

/// The Role and RoleBinding that `kubemigrate apply`, `status`, `logs` and
/// `cleanup` need in the plan's namespace, bound to the ServiceAccount `subject`
/// of that namespace (edit the binding's subject for a user or a group).
pub fn rbac(
    plan: &Plan,
    subject: &str,
) -> (
    k8s_openapi::api::rbac::v1::Role,
    k8s_openapi::api::rbac::v1::RoleBinding,
) {
    use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
    let ns = plan.metadata.namespace.to_string();
    let name = format!("{}-kubemigrate", plan.metadata.name);
    let rule = |group: &str, resources: &[&str], verbs: &[&str]| PolicyRule {
        api_groups: Some(vec![group.to_string()]),
        resources: Some(resources.iter().map(|r| (*r).to_string()).collect()),
        verbs: verbs.iter().map(|v| (*v).to_string()).collect(),
        ..Default::default()
    };
    let meta = ObjectMeta {
        name: Some(name.clone()),
        namespace: Some(ns.clone()),
        labels: Some(plan_labels(plan)),
        ..Default::default()
    };
    let role = Role {
        metadata: meta.clone(),
        rules: Some(vec![
            // Server-side apply creates the object when it is missing.
            rule("", &["configmaps", "secrets"], &["get", "create", "patch"]),
            rule(
                "batch",
                &["jobs"],
                &["create", "get", "list", "watch", "delete"],
            ),
            rule("", &["pods"], &["get", "list", "watch"]),
            rule("", &["pods/log"], &["get"]),
            rule("", &["events"], &["get", "list", "watch"]),
        ]),
    };
    let binding = RoleBinding {
        metadata: meta,
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name,
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: subject.to_string(),
            namespace: Some(ns),
            ..Default::default()
        }]),
    };
    (role, binding)
}
