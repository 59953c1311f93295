//! The in-memory object store, its change history (what watches replay), container
//! logs and the request log.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::scenario::Scenarios;

/// The user every request is made as (the kubeconfig's token stands for it).
pub const FAKE_USER: &str = "system:serviceaccount:default:default";

/// The kinds the fake serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Kind {
    ConfigMap,
    Secret,
    Pod,
    Event,
    Job,
}

impl Kind {
    /// The kind for a group/version and a plural resource name.
    pub(crate) fn from_path(group_version: &str, plural: &str) -> Option<Self> {
        [
            Self::ConfigMap,
            Self::Secret,
            Self::Pod,
            Self::Event,
            Self::Job,
        ]
        .into_iter()
        .find(|k| k.api_version() == group_version && k.plural() == plural)
    }

    pub(crate) fn plural(self) -> &'static str {
        match self {
            Self::ConfigMap => "configmaps",
            Self::Secret => "secrets",
            Self::Pod => "pods",
            Self::Event => "events",
            Self::Job => "jobs",
        }
    }

    pub(crate) fn group(self) -> &'static str {
        match self {
            Self::Job => "batch",
            _ => "",
        }
    }

    pub(crate) fn api_version(self) -> &'static str {
        match self {
            Self::Job => "batch/v1",
            _ => "v1",
        }
    }

    pub(crate) fn kind(self) -> &'static str {
        match self {
            Self::ConfigMap => "ConfigMap",
            Self::Secret => "Secret",
            Self::Pod => "Pod",
            Self::Event => "Event",
            Self::Job => "Job",
        }
    }

    /// `jobs.batch`, `pods`: how the API server names the resource in messages.
    pub(crate) fn qualified(self) -> String {
        match self.group() {
            "" => self.plural().to_string(),
            g => format!("{}.{g}", self.plural()),
        }
    }

    /// `details` of a Status about an object of this kind.
    pub(crate) fn details(self, name: &str) -> Value {
        let mut d = json!({"name": name, "kind": self.plural()});
        if !self.group().is_empty() {
            d["group"] = json!(self.group());
        }
        d
    }
}

/// One request the server received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestRecord {
    /// `GET`, `POST`, `PATCH`, `DELETE`…
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The raw query string (empty when none).
    pub query: String,
    /// The Kubernetes verb: `get`, `list`, `watch`, `create`, `patch`, `delete`…
    /// (empty for paths that are not resources).
    pub verb: String,
}

impl RequestRecord {
    /// The decoded value of one query parameter.
    pub fn query_param(&self, name: &str) -> Option<String> {
        form_urlencoded::parse(self.query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

/// An error response: a `Status` object with a code.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

impl ApiError {
    pub(crate) fn not_found(kind: Kind, name: &str) -> Self {
        Self {
            code: 404,
            reason: "NotFound",
            message: format!("{} \"{name}\" not found", kind.qualified()),
            details: Some(kind.details(name)),
        }
    }

    pub(crate) fn already_exists(kind: Kind, name: &str) -> Self {
        Self {
            code: 409,
            reason: "AlreadyExists",
            message: format!("{} \"{name}\" already exists", kind.qualified()),
            details: Some(kind.details(name)),
        }
    }

    /// RBAC's refusal; `name` is empty for create and for collections.
    pub(crate) fn forbidden(
        kind: Kind,
        resource: &str,
        verb: &str,
        ns: Option<&str>,
        name: &str,
    ) -> Self {
        let subject = match name {
            "" => kind.qualified(),
            n => format!("{} \"{n}\"", kind.qualified()),
        };
        let scope = match ns {
            Some(ns) => format!("in the namespace \"{ns}\""),
            None => "at the cluster scope".into(),
        };
        let mut details = kind.details(name);
        if name.is_empty()
            && let Some(d) = details.as_object_mut()
        {
            d.remove("name");
        }
        Self {
            code: 403,
            reason: "Forbidden",
            message: format!(
                "{subject} is forbidden: User \"{FAKE_USER}\" cannot {verb} resource \"{resource}\" in API group \"{}\" {scope}",
                kind.group()
            ),
            details: Some(details),
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self {
            code: 400,
            reason: "BadRequest",
            message: message.into(),
            details: None,
        }
    }

    pub(crate) fn invalid(kind: Kind, name: &str, cause: &str) -> Self {
        Self {
            code: 422,
            reason: "Invalid",
            message: match kind.group() {
                "" => format!("{} \"{name}\" is invalid: {cause}", kind.kind()),
                g => format!("{}.{g} \"{name}\" is invalid: {cause}", kind.kind()),
            },
            details: Some(kind.details(name)),
        }
    }

    pub(crate) fn not_found_path() -> Self {
        Self {
            code: 404,
            reason: "NotFound",
            message: "the server could not find the requested resource".into(),
            details: Some(json!({})),
        }
    }

    pub(crate) fn method_not_allowed() -> Self {
        Self {
            code: 405,
            reason: "MethodNotAllowed",
            message: "the server does not allow this method on the requested resource".into(),
            details: Some(json!({})),
        }
    }

    pub(crate) fn unsupported_media_type(content_type: &str) -> Self {
        Self {
            code: 415,
            reason: "UnsupportedMediaType",
            message: format!(
                "the body of the request was in an unknown format - accepted media types include: application/apply-patch+yaml (the fake also got {content_type:?})"
            ),
            details: None,
        }
    }

    pub(crate) fn unauthorized() -> Self {
        Self {
            code: 401,
            reason: "Unauthorized",
            message: "Unauthorized".into(),
            details: None,
        }
    }

    /// The `Status` object.
    pub(crate) fn to_json(&self) -> Value {
        let mut v = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            v["details"] = d.clone();
        }
        v
    }
}

/// The current time, as the API server writes it (seconds).
pub(crate) fn now() -> Time {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let secs = i64::try_from(secs).unwrap_or(0);
    Time(Timestamp::new(secs, 0).unwrap_or(Timestamp::UNIX_EPOCH))
}

/// [`now`] as JSON.
pub(crate) fn now_json() -> Value {
    serde_json::to_value(now()).unwrap_or(Value::Null)
}

/// One change, as a watch sends it.
pub(crate) struct Change {
    pub rv: u64,
    pub kind: Kind,
    pub ns: String,
    pub type_: &'static str,
    pub object: Value,
}

/// What a container printed.
#[derive(Default)]
pub(crate) struct LogBuf {
    pub lines: Vec<String>,
    /// The container has terminated: a follow ends after the last line.
    pub done: bool,
}

type Key = (Kind, String, String);

/// Objects, history, logs and requests.
pub(crate) struct Store {
    rv: u64,
    objects: BTreeMap<Key, Value>,
    history: Vec<Change>,
    logs: HashMap<(String, String, String), LogBuf>,
    pub requests: Vec<RequestRecord>,
    rng: u64,
    last_event_nanos: u128,
}

/// The object does not exist (any more), or is being deleted.
#[derive(Debug)]
pub(crate) struct Gone;

/// The object's metadata, made an empty map when missing; `None` for a non-object.
fn meta(obj: &mut Value) -> Option<&mut serde_json::Map<String, Value>> {
    let m = obj
        .as_object_mut()?
        .entry("metadata")
        .or_insert_with(|| json!({}));
    if !m.is_object() {
        *m = json!({});
    }
    m.as_object_mut()
}

impl Store {
    fn new() -> Self {
        Self {
            rv: 1000,
            objects: BTreeMap::new(),
            history: Vec::new(),
            logs: HashMap::new(),
            requests: Vec::new(),
            rng: 0x9e37_79b9_7f4a_7c15,
            last_event_nanos: 0,
        }
    }

    fn random(&mut self) -> u64 {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A suffix as `generateName` makes one: five characters without vowels.
    pub(crate) fn suffix(&mut self) -> String {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        (0..5)
            .map(|_| {
                let i = usize::try_from(self.random() % ALPHABET.len() as u64).unwrap_or(0);
                char::from(ALPHABET[i])
            })
            .collect()
    }

    /// A random UUID (version 4).
    pub(crate) fn uid(&mut self) -> String {
        let (a, b) = (self.random(), self.random());
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            ((b >> 48) & 0x3fff) | 0x8000,
            b & 0xffff_ffff_ffff
        )
    }

    /// 64 hex digits, as a container or image ID.
    pub(crate) fn hex_id(&mut self) -> String {
        (0..4).map(|_| format!("{:016x}", self.random())).collect()
    }

    /// An event's name suffix: the time in nanoseconds, in hex, as the event
    /// recorder makes it (increasing, so a list is in time order per object).
    pub(crate) fn event_suffix(&mut self) -> String {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        self.last_event_nanos = nanos.max(self.last_event_nanos + 1);
        format!("{:x}", self.last_event_nanos)
    }

    /// The latest resourceVersion.
    pub(crate) fn rv(&self) -> u64 {
        self.rv
    }

    pub(crate) fn get(&self, kind: Kind, ns: &str, name: &str) -> Option<&Value> {
        self.objects.get(&(kind, ns.to_string(), name.to_string()))
    }

    /// Objects of `kind`, in `ns` or everywhere, sorted by namespace and name.
    pub(crate) fn list(&self, kind: Kind, ns: Option<&str>) -> Vec<&Value> {
        self.objects
            .iter()
            .filter(|((k, n, _), _)| *k == kind && ns.is_none_or(|ns| ns == n))
            .map(|(_, v)| v)
            .collect()
    }

    fn record(&mut self, kind: Kind, ns: &str, type_: &'static str, object: Value) {
        self.history.push(Change {
            rv: self.rv,
            kind,
            ns: ns.to_string(),
            type_,
            object,
        });
    }

    /// Stores a new object, setting what the API server sets; `generateName` is
    /// honoured, and a uid already set (by the server's own code) is kept.
    pub(crate) fn create(
        &mut self,
        kind: Kind,
        ns: &str,
        mut obj: Value,
    ) -> Result<Value, ApiError> {
        let name = match obj["metadata"]["name"].as_str() {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => match obj["metadata"]["generateName"].as_str() {
                Some(g) if !g.is_empty() => format!("{g}{}", self.suffix()),
                _ => {
                    return Err(ApiError::invalid(
                        kind,
                        "",
                        "metadata.name: Required value: name or generateName is required",
                    ));
                }
            },
        };
        if self.get(kind, ns, &name).is_some() {
            return Err(ApiError::already_exists(kind, &name));
        }
        let uid = match obj["metadata"]["uid"].as_str() {
            Some(u) if !u.is_empty() => u.to_string(),
            _ => self.uid(),
        };
        let Some(m) = meta(&mut obj) else {
            return Err(ApiError::bad_request("the body is not an object"));
        };
        self.rv += 1;
        m.insert("name".into(), json!(name));
        m.insert("namespace".into(), json!(ns));
        m.insert("uid".into(), json!(uid));
        m.insert("resourceVersion".into(), json!(self.rv.to_string()));
        m.insert("creationTimestamp".into(), now_json());
        if kind == Kind::Job {
            m.insert("generation".into(), json!(1));
        }
        obj["apiVersion"] = json!(kind.api_version());
        obj["kind"] = json!(kind.kind());
        self.objects.insert((kind, ns.into(), name), obj.clone());
        self.record(kind, ns, "ADDED", obj.clone());
        Ok(obj)
    }

    /// Replaces an object, keeping what clients cannot change.
    pub(crate) fn update(
        &mut self,
        kind: Kind,
        ns: &str,
        mut obj: Value,
    ) -> Result<Value, ApiError> {
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let Some(old) = self.get(kind, ns, &name) else {
            return Err(ApiError::not_found(kind, &name));
        };
        let old_meta = old["metadata"].clone();
        let Some(m) = meta(&mut obj) else {
            return Err(ApiError::bad_request("the body is not an object"));
        };
        self.rv += 1;
        for k in ["uid", "creationTimestamp", "generation", "namespace"] {
            match old_meta.get(k) {
                Some(v) => m.insert(k.into(), v.clone()),
                None => m.remove(k),
            };
        }
        m.insert("resourceVersion".into(), json!(self.rv.to_string()));
        obj["apiVersion"] = json!(kind.api_version());
        obj["kind"] = json!(kind.kind());
        self.objects.insert((kind, ns.into(), name), obj.clone());
        self.record(kind, ns, "MODIFIED", obj.clone());
        Ok(obj)
    }

    /// Removes an object; a pod's logs go with it.
    pub(crate) fn delete(&mut self, kind: Kind, ns: &str, name: &str) -> Option<Value> {
        let mut obj = self
            .objects
            .remove(&(kind, ns.to_string(), name.to_string()))?;
        self.rv += 1;
        if let Some(m) = meta(&mut obj) {
            m.insert("resourceVersion".into(), json!(self.rv.to_string()));
        }
        self.record(kind, ns, "DELETED", obj.clone());
        if kind == Kind::Pod {
            self.logs
                .retain(|(n, p, _), _| !(n.as_str() == ns && p.as_str() == name));
        }
        Some(obj)
    }

    /// Changes after `rv` that `keep` accepts, and the latest resourceVersion.
    pub(crate) fn changes_after(
        &self,
        rv: u64,
        keep: impl Fn(&Change) -> bool,
    ) -> (Vec<&Change>, u64) {
        let start = self.history.partition_point(|c| c.rv <= rv);
        (
            self.history[start..].iter().filter(|c| keep(c)).collect(),
            self.rv,
        )
    }

    pub(crate) fn log(&self, ns: &str, pod: &str, container: &str) -> Option<&LogBuf> {
        self.logs
            .get(&(ns.to_string(), pod.to_string(), container.to_string()))
    }

    fn log_mut(&mut self, ns: &str, pod: &str, container: &str) -> &mut LogBuf {
        self.logs
            .entry((ns.to_string(), pod.to_string(), container.to_string()))
            .or_default()
    }
}

/// What the server's tasks share.
pub(crate) struct Shared {
    store: Mutex<Store>,
    changed: watch::Sender<u64>,
    pub scenarios: Scenarios,
}

impl Shared {
    pub(crate) fn new(scenarios: Scenarios) -> Self {
        Self {
            store: Mutex::new(Store::new()),
            changed: watch::Sender::new(0),
            scenarios,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads the store.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&Store) -> R) -> R {
        f(&self.lock())
    }

    /// Changes the store and wakes watches and log followers.
    pub(crate) fn write<R>(&self, f: impl FnOnce(&mut Store) -> R) -> R {
        let r = f(&mut self.lock());
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
        r
    }

    /// Wakes up after each [`Shared::write`].
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// An object as a k8s-openapi type.
    pub(crate) fn get<T: DeserializeOwned>(&self, kind: Kind, ns: &str, name: &str) -> Option<T> {
        self.read(|s| s.get(kind, ns, name).cloned())
            .and_then(|v| serde_json::from_value(v).ok())
    }

    /// Changes an object that exists and is not being deleted.
    pub(crate) fn modify<T: DeserializeOwned + Serialize>(
        &self,
        kind: Kind,
        ns: &str,
        name: &str,
        f: impl FnOnce(&mut T),
    ) -> Result<(), Gone> {
        self.write(|s| {
            let old = s.get(kind, ns, name).ok_or(Gone)?;
            if !old["metadata"]["deletionTimestamp"].is_null() {
                return Err(Gone);
            }
            let mut obj: T = serde_json::from_value(old.clone()).map_err(|_| Gone)?;
            f(&mut obj);
            let v = serde_json::to_value(obj).map_err(|_| Gone)?;
            s.update(kind, ns, v).map(|_| ()).map_err(|_| Gone)
        })
    }

    /// Appends a line to a container's log, if the pod is still there.
    pub(crate) fn push_log(
        &self,
        ns: &str,
        pod: &str,
        container: &str,
        line: &str,
    ) -> Result<(), Gone> {
        self.write(|s| {
            s.get(Kind::Pod, ns, pod).ok_or(Gone)?;
            s.log_mut(ns, pod, container).lines.push(line.to_string());
            Ok(())
        })
    }

    /// Starts (an empty log) or ends (`done`) a container's log.
    pub(crate) fn log_state(&self, ns: &str, pod: &str, container: &str, done: bool) {
        self.write(|s| {
            if s.get(Kind::Pod, ns, pod).is_some() {
                s.log_mut(ns, pod, container).done = done;
            }
        });
    }
}
