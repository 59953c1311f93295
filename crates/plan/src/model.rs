//! The plan file's model: what `plan.yaml` may say. Field names are the YAML's
//! (camelCase); defaults are the Terraform module's.
//!
//! Every struct refuses unknown fields. Choices between shapes are made by explicit
//! fields (`sql` or `command`) or a hand-written visitor ([`Credential`]), never by
//! serde's `untagged`/`flatten`, whose errors cannot say what was wrong.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::values::{Duration, Name, Quantity};

/// The API version this build reads.
pub const API_VERSION: &str = "kubemigrate.io/v1alpha1";
/// The kind of a plan.
pub const KIND: &str = "MigrationPlan";

/// `apiVersion`: only `kubemigrate.io/v1alpha1` exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum ApiVersion {
    /// `kubemigrate.io/v1alpha1`.
    #[serde(rename = "kubemigrate.io/v1alpha1")]
    V1alpha1,
}

/// `kind`: only `MigrationPlan` exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum Kind {
    /// A migration plan.
    MigrationPlan,
}

/// A migration plan: where each database is, what migrates it, and how its Jobs run.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Plan {
    /// Always `kubemigrate.io/v1alpha1`.
    pub api_version: ApiVersion,
    /// Always `MigrationPlan`.
    pub kind: Kind,
    /// The plan's name and namespace.
    pub metadata: Metadata,
    /// What to migrate and how.
    pub spec: Spec,
}

/// The plan's name and namespace.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    /// The plan's name (a DNS-1123 label); it prefixes the ConfigMap and Secret names.
    pub name: Name,
    /// The namespace of every object (default `default`).
    #[serde(default = "default_namespace")]
    pub namespace: Name,
}

fn default_namespace() -> Name {
    Name::trusted("default")
}

/// How the Jobs run, and the targets.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Spec {
    /// The service account of the Jobs' pods (default `default`). Its token is not mounted.
    #[serde(default = "default_service_account")]
    pub service_account_name: String,
    /// Labels added to every object.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Annotations added to the Jobs and their pod templates.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// The image holding the static kubemigrate binary (default
    /// `kubemigrate/kubemigrate:<version>`). Its init containers wait for the
    /// database and copy the binary into the migration container.
    #[serde(default)]
    pub runner_image: Option<String>,
    /// Pull secrets for every image.
    #[serde(default)]
    pub image_pull_secrets: Vec<LocalObjectReference>,
    /// CPU and memory for every container (module defaults: requests 100m/128Mi,
    /// limits 500m/512Mi). A target's `resources` override these field by field.
    #[serde(default)]
    pub resources: Resources,
    /// The user and filesystem of every container; a target's `securityContext`
    /// overrides it field by field.
    #[serde(default)]
    pub security_context: SecurityContext,
    /// Pod failures a Job tolerates before it fails (default 3).
    #[serde(default = "default_backoff_limit")]
    pub backoff_limit: u32,
    /// Seconds a finished Job (and its pods and logs) is kept (default 300).
    #[serde(default = "default_ttl")]
    pub ttl_seconds_after_finished: u32,
    /// How long a Job may run in all, retries included (default `10m`): its
    /// `activeDeadlineSeconds`.
    #[serde(default = "default_timeout")]
    pub timeout: Duration,
    /// Whether `apply` waits for the Jobs (default true).
    #[serde(default = "default_true")]
    pub wait: bool,
    /// Node labels the pods must match.
    #[serde(default)]
    pub node_selector: BTreeMap<String, String>,
    /// Taints the pods tolerate.
    #[serde(default)]
    pub tolerations: Vec<Toleration>,
    /// A core/v1 `Affinity`, as in a pod spec; checked against the Kubernetes types
    /// when the plan is rendered.
    #[serde(default)]
    pub affinity: Option<serde_json::Value>,
    /// The lint policy of every SQL target (a target's `lint` overrides it rule by
    /// rule): `validate`, `render` and `apply` lint the files they can read and stop
    /// on denied rules.
    #[serde(default)]
    pub lint: Option<LintPolicy>,
    /// The databases to migrate.
    pub targets: Vec<Target>,
}

fn default_service_account() -> String {
    "default".into()
}
fn default_backoff_limit() -> u32 {
    3
}
fn default_ttl() -> u32 {
    300
}
fn default_timeout() -> Duration {
    Duration::trusted("10m", std::time::Duration::from_secs(600))
}
fn default_true() -> bool {
    true
}

/// A reference to a Secret by name (`imagePullSecrets`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalObjectReference {
    /// The Secret's name.
    pub name: String,
}

/// CPU and memory requests and limits.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Resources {
    /// What the scheduler reserves.
    #[serde(default)]
    pub requests: ResourceList,
    /// The most a container may use; over the memory limit it is OOM-killed.
    #[serde(default)]
    pub limits: ResourceList,
}

impl Resources {
    /// The module's defaults: requests cpu 100m, memory 128Mi; limits cpu 500m,
    /// memory 512Mi.
    pub fn module_defaults() -> Resources {
        let q = |text: &'static str, value: f64| Some(Quantity::trusted(text, value));
        Resources {
            requests: ResourceList {
                cpu: q("100m", 0.1),
                memory: q("128Mi", 128.0 * 1024.0 * 1024.0),
                ephemeral_storage: None,
            },
            limits: ResourceList {
                cpu: q("500m", 0.5),
                memory: q("512Mi", 512.0 * 1024.0 * 1024.0),
                ephemeral_storage: None,
            },
        }
    }

    /// `self` with every amount `over` sets replaced.
    pub fn overridden_by(&self, over: &Resources) -> Resources {
        Resources {
            requests: self.requests.overridden_by(&over.requests),
            limits: self.limits.overridden_by(&over.limits),
        }
    }
}

impl ResourceList {
    fn overridden_by(&self, over: &ResourceList) -> ResourceList {
        ResourceList {
            cpu: over.cpu.clone().or_else(|| self.cpu.clone()),
            memory: over.memory.clone().or_else(|| self.memory.clone()),
            ephemeral_storage: over
                .ephemeral_storage
                .clone()
                .or_else(|| self.ephemeral_storage.clone()),
        }
    }
}

impl SecurityContext {
    /// `self` with every field `over` sets replaced.
    pub fn overridden_by(&self, over: &SecurityContext) -> SecurityContext {
        SecurityContext {
            run_as_user: over.run_as_user.or(self.run_as_user),
            run_as_group: over.run_as_group.or(self.run_as_group),
            fs_group: over.fs_group.or(self.fs_group),
            read_only_root_filesystem: over
                .read_only_root_filesystem
                .or(self.read_only_root_filesystem),
        }
    }
}

impl Target {
    /// Whether `run-migrations` is kubemigrate's own SQL engine, so its exit codes
    /// mean what docs/exit-codes.md says (a command's or psql's codes are their own).
    pub fn runs_native_engine(&self) -> bool {
        self.sql
            .as_ref()
            .is_some_and(|s| s.engine == Engine::Native)
    }
}

impl Plan {
    /// The resources of `target`'s containers: the module's defaults, then the
    /// plan's, then the target's.
    pub fn resources_for(&self, target: &Target) -> Resources {
        let plan = Resources::module_defaults().overridden_by(&self.spec.resources);
        match &target.resources {
            Some(r) => plan.overridden_by(r),
            None => plan,
        }
    }

    /// The security context of `target`'s containers: the plan's, then the target's.
    pub fn security_for(&self, target: &Target) -> SecurityContext {
        match &target.security_context {
            Some(s) => self.spec.security_context.overridden_by(s),
            None => self.spec.security_context.clone(),
        }
    }
}

/// Amounts per resource.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceList {
    /// CPU, in cores (`500m`, `1`).
    #[serde(default)]
    pub cpu: Option<Quantity>,
    /// Memory, in bytes (`256Mi`, `1Gi`).
    #[serde(default)]
    pub memory: Option<Quantity>,
    /// Local ephemeral storage (`1Gi`).
    #[serde(default, rename = "ephemeral-storage")]
    pub ephemeral_storage: Option<Quantity>,
}

/// The user and filesystem of the containers. Everything else the Pod Security
/// Standard "restricted" asks for (no privilege escalation, all capabilities
/// dropped, the RuntimeDefault seccomp profile, non-root) is always set.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecurityContext {
    /// The numeric user id (default 1000; 0 is refused).
    #[serde(default)]
    pub run_as_user: Option<u32>,
    /// The numeric group id (default 1000).
    #[serde(default)]
    pub run_as_group: Option<u32>,
    /// The group that owns mounted volumes (unset by default).
    #[serde(default)]
    pub fs_group: Option<u32>,
    /// Mount the image's filesystem read-only (default true; `/tmp` is always a
    /// writable emptyDir). Set false for an image that must write elsewhere.
    #[serde(default)]
    pub read_only_root_filesystem: Option<bool>,
}

/// A taint the pods tolerate, as in a pod spec.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Toleration {
    /// The taint key; empty with `operator: Exists` tolerates everything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// `Equal` (default) or `Exists`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<TolerationOperator>,
    /// The taint value, with `Equal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// `NoSchedule`, `PreferNoSchedule` or `NoExecute`; empty matches all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<TaintEffect>,
    /// With `NoExecute`: how long the pod stays once the taint appears.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toleration_seconds: Option<i64>,
}

/// How a toleration matches a taint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum TolerationOperator {
    /// Key and value equal.
    Equal,
    /// The key exists.
    Exists,
}

/// A taint's effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum TaintEffect {
    /// New pods are not scheduled.
    NoSchedule,
    /// New pods are avoided.
    PreferNoSchedule,
    /// Running pods are evicted.
    NoExecute,
}

/// One database and what migrates it.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Target {
    /// The target's name (a DNS-1123 label); the Job is `<name>-migrations-<suffix>`.
    pub name: Name,
    /// Whether it runs (default true).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Targets that must succeed before this one starts.
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// The database (with `databases`: the server and credentials of every database
    /// of the list, and in `name` the one the init container waits for and
    /// `databases.query` runs in).
    pub database: Database,
    /// Many databases migrated alike, one per tenant (docs/fan-out.md): a list of
    /// names, a query, or a key of a ConfigMap or Secret holding the names; the
    /// Job becomes an Indexed Job, one index per shard. SQL targets of the native
    /// engine, and command targets (the command runs once per database, with that
    /// database's variables).
    #[serde(default)]
    pub databases: Option<Databases>,
    /// SQL files, run by kubemigrate's engine (or by psql). Exactly one of `sql` and
    /// `command`.
    #[serde(default)]
    pub sql: Option<Sql>,
    /// A migration command (such as `npm run migrate`), run under the migration lock.
    /// Exactly one of `sql` and `command`.
    #[serde(default)]
    pub command: Option<Command>,
    /// Overrides of the plan's `securityContext`, field by field.
    #[serde(default)]
    pub security_context: Option<SecurityContext>,
    /// Overrides of the plan's `resources`, field by field.
    #[serde(default)]
    pub resources: Option<Resources>,
    /// Overrides of the plan's `lint` policy for this SQL target, rule by rule.
    #[serde(default)]
    pub lint: Option<LintPolicy>,
}

/// Many databases on the target's server, migrated alike (`databases`).
///
/// In YAML, a list of database names (`databases: [tenant_1, tenant_2]`), or a
/// mapping with exactly one of `list`, `query`, `fromConfigMap`, `fromSecret`,
/// `urlsFromSecret`, and the settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Databases {
    /// Where the names come from.
    pub source: DatabaseSource,
    /// How many databases are migrated at once: the Job's `parallelism` (default 4).
    pub concurrency: u32,
    /// What a failed database does to the others (default `continue`).
    pub on_failure: OnFailure,
    /// How many indexes (pods) the Job has, each migrating its share of the
    /// databases one by one (default: one per listed database, or `concurrency` for
    /// a query or a key, whose names are known only when the pods run).
    pub shards: Option<u32>,
    /// Whether the plan wrote the shorthand (`databases: [...]`), so that a
    /// finding about a name points at `databases[i]`, not `databases.list[i]`.
    pub shorthand: bool,
}

/// Where the names of a target's databases come from.
#[derive(Debug, Clone, PartialEq)]
pub enum DatabaseSource {
    /// Written in the plan.
    List(Vec<String>),
    /// A query run in `database.name` by each pod: one column (the name), or
    /// columns named `name` and optionally `host` and `port`.
    Query(String),
    /// A key of a ConfigMap already in the namespace: one name a line.
    ConfigMap(ObjectKeyRef),
    /// A key of a Secret already in the namespace: one name a line.
    Secret(ObjectKeyRef),
    /// A key of a Secret already in the namespace: one connection URL a line, each
    /// with its own user and password (`postgres://tenant_1:…@db:5432/tenant_1`).
    SecretUrls(ObjectKeyRef),
}

/// A key of a ConfigMap or Secret.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ObjectKeyRef {
    /// The object's name.
    pub name: String,
    /// The key.
    pub key: String,
}

/// What a failed database does to the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// The other databases still migrate (default).
    #[default]
    Continue,
    /// No database starts after a failure; those running finish.
    Stop,
}

/// The mapping form of `databases`.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DatabasesFields {
    /// Database names on the target's server. Exactly one of `list`, `query`,
    /// `fromConfigMap`, `fromSecret`, `urlsFromSecret`.
    #[serde(default)]
    list: Option<Vec<String>>,
    /// A query run in `database.name` (e.g. `SELECT datname FROM pg_database WHERE
    /// datname LIKE 'tenant_%'`): one column, the name; or columns named `name`
    /// and optionally `host` and `port` (rows of a tenants table).
    #[serde(default)]
    query: Option<String>,
    /// A key of a ConfigMap in the namespace holding the names, one a line.
    #[serde(default)]
    from_config_map: Option<ObjectKeyRef>,
    /// A key of a Secret in the namespace holding the names, one a line.
    #[serde(default)]
    from_secret: Option<ObjectKeyRef>,
    /// A key of a Secret in the namespace holding one connection URL a line, each
    /// with its own credentials (`postgres://tenant_1:…@db:5432/tenant_1`): for
    /// databases that each have their own user and password.
    #[serde(default)]
    urls_from_secret: Option<ObjectKeyRef>,
    /// How many databases are migrated at once (default 4).
    #[serde(default = "default_concurrency")]
    concurrency: u32,
    /// `continue` (default): the other databases still migrate; `stop`: none
    /// starts after a failure.
    #[serde(default)]
    on_failure: OnFailure,
    /// The Job's indexes (pods), each migrating its share one by one (default: one
    /// per listed database; `concurrency` for a query or a key).
    #[serde(default)]
    shards: Option<u32>,
}

fn default_concurrency() -> u32 {
    4
}

const DATABASES_SOURCES: &str =
    "give exactly one of list, query, fromConfigMap, fromSecret, urlsFromSecret";

impl<'de> Deserialize<'de> for Databases {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DatabasesVisitor)
    }
}

struct DatabasesVisitor;

impl<'de> Visitor<'de> for DatabasesVisitor {
    type Value = Databases;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of database names, or a mapping with one of list, query, fromConfigMap, fromSecret, urlsFromSecret")
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<Databases, A::Error> {
        let list = Vec::<String>::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
        Ok(Databases {
            source: DatabaseSource::List(list),
            concurrency: default_concurrency(),
            on_failure: OnFailure::Continue,
            shards: None,
            shorthand: true,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Databases, A::Error> {
        let f = DatabasesFields::deserialize(de::value::MapAccessDeserializer::new(map))?;
        let mut sources = Vec::new();
        if let Some(l) = f.list {
            sources.push(DatabaseSource::List(l));
        }
        if let Some(q) = f.query {
            sources.push(DatabaseSource::Query(q));
        }
        if let Some(r) = f.from_config_map {
            sources.push(DatabaseSource::ConfigMap(r));
        }
        if let Some(r) = f.from_secret {
            sources.push(DatabaseSource::Secret(r));
        }
        if let Some(r) = f.urls_from_secret {
            sources.push(DatabaseSource::SecretUrls(r));
        }
        if sources.len() != 1 {
            return Err(de::Error::custom(DATABASES_SOURCES));
        }
        Ok(Databases {
            // Just checked: exactly one.
            source: sources.remove(0),
            concurrency: f.concurrency,
            on_failure: f.on_failure,
            shards: f.shards,
            shorthand: false,
        })
    }
}

impl JsonSchema for Databases {
    fn schema_name() -> Cow<'static, str> {
        "Databases".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let fields = generator.subschema_for::<DatabasesFields>();
        json_schema!({
            "description": "Many databases migrated alike: a list of names, or a mapping with exactly one of list, query, fromConfigMap, fromSecret, urlsFromSecret, and concurrency, onFailure, shards.",
            "oneOf": [
                {"type": "array", "items": {"type": "string"}, "description": "Database names on the target's server."},
                fields
            ]
        })
    }
}

impl Databases {
    /// How many indexes the Job has: `shards`, else one per listed database, else
    /// `concurrency`.
    pub fn shard_count(&self) -> u32 {
        match (&self.shards, &self.source) {
            (Some(n), _) => *n,
            (None, DatabaseSource::List(l)) => u32::try_from(l.len()).unwrap_or(u32::MAX).max(1),
            (None, _) => self.concurrency.max(1),
        }
    }
}

/// A lint policy: the level of each rule (over the defaults of `kubemigrate sql
/// lint --list-rules`) and the PostgreSQL version the files run on.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LintPolicy {
    /// Rule id → `deny`, `warn` or `off`, e.g. `{ban-drop-column: warn}`.
    #[serde(default)]
    pub rules: BTreeMap<String, LintLevel>,
    /// The PostgreSQL version the migrations run on (`16`, `15.4`); some rules
    /// depend on it (default 15).
    #[serde(default)]
    pub postgres_version: Option<String>,
}

/// How a lint rule's findings count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LintLevel {
    /// Reported, and stops `validate`, `render`, `apply` and `sql lint` (exit 11).
    Deny,
    /// Reported only.
    Warn,
    /// Not checked.
    Off,
}

impl LintLevel {
    /// `deny`, `warn` or `off`.
    pub fn as_str(self) -> &'static str {
        match self {
            LintLevel::Deny => "deny",
            LintLevel::Warn => "warn",
            LintLevel::Off => "off",
        }
    }
}

/// Where the database is and who connects.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Database {
    /// Host name or IP address (`DB_HOST`).
    pub host: String,
    /// Port (`DB_PORT`, default 5432).
    #[serde(default = "default_port")]
    pub port: u16,
    /// The database name (`DB_DATABASE`).
    pub name: String,
    /// The application's schema (`DB_SCHEMA`), passed to commands.
    #[serde(default)]
    pub schema: Option<String>,
    /// libpq's sslmode (`PGSSLMODE`; default prefer).
    #[serde(default)]
    pub ssl_mode: Option<SslMode>,
    /// The user (`DB_USER`).
    pub user: Credential,
    /// The password (`DB_PASSWORD`).
    pub password: Credential,
}

fn default_port() -> u16 {
    5432
}

pub use kubemigrate_contract::SslMode;

/// Where a user name or password comes from.
///
/// In YAML, a plain string (a literal) or a mapping with exactly one of `value`,
/// `fromEnv`, `fromFile`, `existingSecret`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// Written in the plan (allowed; a literal password is warned about).
    Literal(String),
    /// Read from this environment variable when the plan is rendered or applied.
    FromEnv(String),
    /// Read from this file (relative to the plan's directory), one trailing newline
    /// removed, when the plan is rendered or applied.
    FromFile(PathBuf),
    /// A key of a Secret already in the namespace.
    ExistingSecret {
        /// The Secret's name.
        name: String,
        /// The key.
        key: String,
    },
}

const CREDENTIAL_FIELDS: &[&str] = &["value", "fromEnv", "fromFile", "existingSecret"];

impl<'de> Deserialize<'de> for Credential {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(CredentialVisitor)
    }
}

struct CredentialVisitor;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretKeyRef {
    name: String,
    key: String,
}

impl<'de> Visitor<'de> for CredentialVisitor {
    type Value = Credential;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, or one of {value: …}, {fromEnv: VAR}, {fromFile: PATH}, {existingSecret: {name, key}}")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Credential, E> {
        Ok(Credential::Literal(v.to_string()))
    }

    // An unquoted number or boolean would not keep its text (`007` reads as 7):
    // refuse it, without repeating the value (it may be a password).
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Credential, E> {
        Err(unquoted())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Credential, E> {
        Err(unquoted())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Credential, E> {
        Err(unquoted())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Credential, E> {
        Err(unquoted())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Credential, A::Error> {
        let mut found: Option<Credential> = None;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            let value = match key.as_ref() {
                "value" => Credential::Literal(map.next_value()?),
                "fromEnv" => Credential::FromEnv(map.next_value()?),
                "fromFile" => Credential::FromFile(map.next_value()?),
                "existingSecret" => {
                    let r: SecretKeyRef = map.next_value()?;
                    Credential::ExistingSecret {
                        name: r.name,
                        key: r.key,
                    }
                }
                other => return Err(de::Error::unknown_field(other, CREDENTIAL_FIELDS)),
            };
            if found.is_some() {
                return Err(de::Error::custom(format_args!(
                    "`{key}` is a second source; give exactly one of value, fromEnv, fromFile, existingSecret"
                )));
            }
            found = Some(value);
        }
        found.ok_or_else(|| {
            de::Error::custom("give exactly one of value, fromEnv, fromFile, existingSecret")
        })
    }
}

fn unquoted<E: de::Error>() -> E {
    E::custom(
        "write this value in quotes: YAML reads an unquoted number or boolean as another \
         type (007 would become 7)",
    )
}

impl JsonSchema for Credential {
    fn schema_name() -> Cow<'static, str> {
        "Credential".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A literal string, or exactly one of value, fromEnv, fromFile, existingSecret.",
            "oneOf": [
                {"type": "string"},
                {"type": "object", "additionalProperties": false, "required": ["value"],
                 "properties": {"value": {"type": "string", "description": "A literal."}}},
                {"type": "object", "additionalProperties": false, "required": ["fromEnv"],
                 "properties": {"fromEnv": {"type": "string", "description": "An environment variable of the kubemigrate process."}}},
                {"type": "object", "additionalProperties": false, "required": ["fromFile"],
                 "properties": {"fromFile": {"type": "string", "description": "A file, relative to the plan's directory."}}},
                {"type": "object", "additionalProperties": false, "required": ["existingSecret"],
                 "properties": {"existingSecret": {"type": "object", "additionalProperties": false,
                    "required": ["name", "key"],
                    "properties": {"name": {"type": "string"}, "key": {"type": "string"}}}}}
            ]
        })
    }
}

/// SQL files: in the target's image, or shipped from the plan's directory.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Sql {
    /// An image that holds the files. Exactly one of `image` and `localDir`.
    #[serde(default)]
    pub image: Option<String>,
    /// The files' directory in the image (default `/migrations`).
    #[serde(default)]
    pub dir: Option<String>,
    /// A directory next to the plan whose files are shipped in a ConfigMap (at most
    /// 1 MiB in all). Exactly one of `image` and `localDir`.
    #[serde(default)]
    pub local_dir: Option<PathBuf>,
    /// `native` (default): kubemigrate's engine, with history, checksums and the lock.
    /// `psql`: the Terraform module's loop running `psql -f` on each file (the image
    /// must have psql).
    #[serde(default)]
    pub engine: Engine,
    /// Allow `localDir`, or a file in it reached through a symbolic link, to be
    /// outside the plan's directory (default false: such files are refused, so a link
    /// to `/etc/passwd` never ends up in the ConfigMap).
    #[serde(default)]
    pub allow_outside_plan_dir: bool,
    /// PostgreSQL's `lock_timeout` for the files' statements (`5s`): a statement
    /// that waits longer for a lock fails instead of queueing every later query
    /// behind it. A file that sets its own wins.
    #[serde(default)]
    pub lock_timeout: Option<Duration>,
    /// PostgreSQL's `statement_timeout` for the files' statements.
    #[serde(default)]
    pub statement_timeout: Option<Duration>,
    /// How many times a transactional file that met `lockTimeout` is rolled back
    /// and run again, 1 s, 2 s, 4 s… apart (native engine; default 0).
    #[serde(default)]
    pub lock_retries: u32,
    /// How the files are named, ordered and split: `native` (default), or another
    /// tool's layout (`flyway`, `golang-migrate`, `dbmate`, `goose`, `sqlx`,
    /// `diesel`, `postgres-migrations`, `supabase`), read by the native engine as
    /// `sql migrate --layout` reads it.
    #[serde(default)]
    pub layout: Layout,
}

/// How a target's SQL files are named, ordered and split (see docs/adopting.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// kubemigrate's own: the `*.sql` files of the directory in byte-wise order.
    #[default]
    Native,
    /// Flyway: `V<version>__<desc>.sql`, `R__<desc>.sql`.
    Flyway,
    /// golang-migrate: `<version>_<title>.up.sql`.
    GolangMigrate,
    /// dbmate: `-- migrate:up` / `-- migrate:down` sections.
    Dbmate,
    /// goose: `-- +goose Up` / `-- +goose Down`.
    Goose,
    /// sqlx: `<version>_<desc>.sql` or `.up.sql`.
    Sqlx,
    /// diesel: `<version>_<name>/up.sql` folders.
    Diesel,
    /// postgres-migrations: `<id>-<name>.sql`.
    PostgresMigrations,
    /// Supabase: `supabase/migrations/<timestamp>_<name>.sql`.
    Supabase,
}

impl Layout {
    /// The name `sql migrate --layout` takes.
    pub fn name(self) -> &'static str {
        match self {
            Layout::Native => "native",
            Layout::Flyway => "flyway",
            Layout::GolangMigrate => "golang-migrate",
            Layout::Dbmate => "dbmate",
            Layout::Goose => "goose",
            Layout::Sqlx => "sqlx",
            Layout::Diesel => "diesel",
            Layout::PostgresMigrations => "postgres-migrations",
            Layout::Supabase => "supabase",
        }
    }
}

/// What runs the SQL files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// kubemigrate's engine.
    #[default]
    Native,
    /// psql, file by file, as the Terraform module did.
    Psql,
}

/// A migration command, run with `kubemigrate exec --lock`.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Command {
    /// The application's image.
    pub image: String,
    /// The command, e.g. `[npm, run, migrate]`.
    pub command: Vec<String>,
    /// Arguments after the command.
    #[serde(default)]
    pub args: Vec<String>,
    /// More environment variables (`DB_*`, `PG*`, `NODE_ENV` are set by kubemigrate).
    #[serde(default)]
    pub env: Vec<EnvVar>,
}

/// An environment variable.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvVar {
    /// The name.
    pub name: String,
    /// The value.
    #[serde(default)]
    pub value: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let d = Resources::module_defaults();
        for (q, text) in [
            (&d.requests.cpu, "100m"),
            (&d.requests.memory, "128Mi"),
            (&d.limits.cpu, "500m"),
            (&d.limits.memory, "512Mi"),
        ] {
            assert_eq!(q.as_ref().unwrap(), &Quantity::parse(text).unwrap());
        }
        assert_eq!(Name::new("default").unwrap(), default_namespace());
        assert_eq!(Duration::parse("10m").unwrap(), default_timeout());
    }
}
