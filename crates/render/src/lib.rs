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

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Affinity, ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kubemigrate_plan::{DatabaseSource, Diagnostic, FieldPath, LoadedPlan, Plan};

mod gather;
mod job;
mod rbac;
pub mod yaml;

pub use gather::*;
use job::*;
pub use rbac::rbac;

use kubemigrate_contract::k8s;

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
