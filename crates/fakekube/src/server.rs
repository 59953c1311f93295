//! The HTTP side: routing, the REST verbs, watches and logs.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Pod, Secret};
use k8s_openapi::apimachinery::pkg::version::Info;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::time::{Instant, sleep_until};

use crate::select::{FieldSelector, LabelSelector};
use crate::sim::{self, Propagation};
use crate::store::{ApiError, Change, Kind, RequestRecord, Shared, now_json};

/// The bearer token of the kubeconfig.
pub(crate) const TOKEN: &str = "fake-token";

type Body = UnsyncBoxBody<Bytes, Infallible>;
type Params = HashMap<String, String>;

/// Accepts connections until `shutdown` fires.
pub(crate) async fn serve(
    listener: TcpListener,
    sh: Arc<Shared>,
    mut shutdown: oneshot::Receiver<()>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = &mut shutdown => return,
        };
        let Ok((stream, _)) = accepted else { continue };
        let sh = sh.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(sh.clone(), req));
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await;
        });
    }
}

fn respond(code: u16, content_type: &'static str, body: Body) -> Response<Body> {
    let mut r = Response::new(body);
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

fn json_response(code: u16, v: &Value) -> Response<Body> {
    let mut text = serde_json::to_vec(v).unwrap_or_default();
    text.push(b'\n');
    respond(code, "application/json", full(text))
}

fn error_response(e: &ApiError) -> Response<Body> {
    json_response(e.code, &e.to_json())
}

/// Where a request goes.
enum Route {
    Version,
    Health,
    Resource {
        kind: Kind,
        ns: Option<String>,
        name: Option<String>,
        sub: Option<String>,
    },
    Unknown,
}

fn route(path: &str) -> Route {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (gv, rest) = match segs.as_slice() {
        ["version"] => return Route::Version,
        ["healthz" | "readyz" | "livez"] => return Route::Health,
        ["api", "v1", rest @ ..] => ("v1".to_string(), rest),
        ["apis", g, v, rest @ ..] => (format!("{g}/{v}"), rest),
        _ => return Route::Unknown,
    };
    let s = |x: &&str| Some(x.to_string());
    let (ns, plural, name, sub) = match rest {
        [plural] => (None, plural, None, None),
        ["namespaces", ns, plural] => (s(ns), plural, None, None),
        ["namespaces", ns, plural, name] => (s(ns), plural, s(name), None),
        ["namespaces", ns, plural, name, sub] => (s(ns), plural, s(name), s(sub)),
        _ => return Route::Unknown,
    };
    match Kind::from_path(&gv, plural) {
        Some(kind)
            if match sub.as_deref() {
                None => true,
                Some("log") => kind == Kind::Pod,
                Some("status") => matches!(kind, Kind::Job | Kind::Pod),
                Some(_) => false,
            } =>
        {
            Route::Resource {
                kind,
                ns,
                name,
                sub,
            }
        }
        _ => Route::Unknown,
    }
}

fn is_true(p: &Params, key: &str) -> bool {
    matches!(p.get(key).map(String::as_str), Some("true" | "1"))
}

fn verb(method: &Method, route: &Route, p: &Params) -> &'static str {
    let Route::Resource { name, .. } = route else {
        return "";
    };
    match (method.as_str(), name.is_some()) {
        ("GET", true) => "get",
        ("GET", false) if is_true(p, "watch") => "watch",
        ("GET", false) => "list",
        ("POST", false) => "create",
        ("PATCH", true) => "patch",
        ("PUT", true) => "update",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => "",
    }
}

async fn handle(sh: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or_default().to_string();
    let params: Params = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let route = route(&path);
    let verb = verb(&method, &route, &params);
    sh.write(|s| {
        s.requests.push(RequestRecord {
            method: method.to_string(),
            path: path.clone(),
            query: query.clone(),
            verb: verb.to_string(),
        });
    });
    let auth = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let open = matches!(route, Route::Version | Route::Health);
    if auth.is_some_and(|a| a != format!("Bearer {TOKEN}")) || (auth.is_none() && !open) {
        return Ok(error_response(&ApiError::unauthorized()));
    }
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let r = dispatch(&sh, route, verb, &params, &content_type, &body).await;
    Ok(r.unwrap_or_else(|e| error_response(&e)))
}

fn version() -> Value {
    let info = Info {
        major: "1".into(),
        minor: "33".into(),
        git_version: "v1.33.1".into(),
        git_commit: "8adc0f041b8e7ad1d30e29cc59c6ae7a15e19828".into(),
        git_tree_state: "clean".into(),
        build_date: "2025-05-15T08:19:08Z".into(),
        go_version: "go1.24.2".into(),
        compiler: "gc".into(),
        platform: "linux/amd64".into(),
        ..Default::default()
    };
    serde_json::to_value(info).unwrap_or_default()
}

fn parse_body(body: &[u8]) -> Result<Value, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) if v.is_object() => Ok(v),
        Ok(_) => Err(ApiError::bad_request(
            "the body of the request is not an object",
        )),
        Err(e) => Err(ApiError::bad_request(format!(
            "the body of the request was in an unknown format: {e}"
        ))),
    }
}

/// Validates an object against its k8s-openapi type and returns it as that type
/// serializes it (a Secret's stringData merged into data).
fn normalize(kind: Kind, v: Value) -> Result<Value, ApiError> {
    fn round<T: serde::de::DeserializeOwned + serde::Serialize>(
        v: Value,
        f: impl FnOnce(&mut T),
    ) -> Result<Value, ApiError> {
        let mut t: T =
            serde_json::from_value(v).map_err(|e| ApiError::bad_request(e.to_string()))?;
        f(&mut t);
        serde_json::to_value(t).map_err(|e| ApiError::bad_request(e.to_string()))
    }
    match kind {
        Kind::ConfigMap => round::<ConfigMap>(v, |_| {}),
        Kind::Secret => round::<Secret>(v, |s| {
            if let Some(sd) = s.string_data.take() {
                let data = s.data.get_or_insert_with(Default::default);
                for (k, v) in sd {
                    data.insert(k, k8s_openapi::ByteString(v.into_bytes()));
                }
            }
            s.type_.get_or_insert_with(|| "Opaque".into());
        }),
        Kind::Pod => round::<Pod>(v, |_| {}),
        Kind::Event => round::<Event>(v, |_| {}),
        Kind::Job => round::<Job>(v, |_| {}),
    }
}

/// Clears what clients cannot set, and checks the namespace.
fn incoming(kind: Kind, mut v: Value, ns: &str) -> Result<Value, ApiError> {
    v["apiVersion"] = json!(kind.api_version());
    v["kind"] = json!(kind.kind());
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        if m.get("namespace")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty() && n != ns)
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        for k in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "generation",
            "managedFields",
        ] {
            m.remove(k);
        }
    }
    Ok(v)
}

async fn dispatch(
    sh: &Arc<Shared>,
    route: Route,
    verb: &str,
    p: &Params,
    content_type: &str,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    let (kind, ns, name, sub) = match route {
        Route::Version => return Ok(json_response(200, &version())),
        Route::Health => return Ok(respond(200, "text/plain", full("ok"))),
        Route::Unknown => return Err(ApiError::not_found_path()),
        Route::Resource {
            kind,
            ns,
            name,
            sub,
        } => (kind, ns, name, sub),
    };
    let resource = match &sub {
        Some(sub) => format!("{}/{sub}", kind.plural()),
        None => kind.plural().to_string(),
    };
    let labels = LabelSelector::parse(p.get("labelSelector").map_or("", String::as_str))
        .map_err(ApiError::bad_request)?;
    let fields = FieldSelector::parse(kind, p.get("fieldSelector").map_or("", String::as_str))
        .map_err(ApiError::bad_request)?;
    if sh.scenarios.is_forbidden(verb, &resource) {
        let n = name.as_deref().or(fields.name()).unwrap_or_default();
        return Err(ApiError::forbidden(kind, &resource, verb, ns.as_deref(), n));
    }
    let ns_str = ns.clone().unwrap_or_default();
    let get = |name: &str| {
        sh.read(|s| s.get(kind, &ns_str, name).cloned())
            .ok_or_else(|| ApiError::not_found(kind, name))
    };
    match (verb, name, ns.is_some()) {
        ("get", Some(name), true) if sub.as_deref() == Some("log") => logs(sh, &ns_str, &name, p),
        ("get", Some(name), true) => Ok(json_response(200, &get(&name)?)),
        _ if sub.is_some() => Err(ApiError::method_not_allowed()),
        ("list", None, _) => {
            let (items, rv) = sh.read(|s| {
                let items: Vec<Value> = s
                    .list(kind, ns.as_deref())
                    .into_iter()
                    .filter(|o| labels.matches(o) && fields.matches(o))
                    .map(|o| {
                        let mut o = o.clone();
                        if let Some(m) = o.as_object_mut() {
                            m.remove("apiVersion");
                            m.remove("kind");
                        }
                        o
                    })
                    .collect();
                (items, s.rv())
            });
            let list = json!({
                "kind": format!("{}List", kind.kind()),
                "apiVersion": kind.api_version(),
                "metadata": {"resourceVersion": rv.to_string()},
                "items": items,
            });
            Ok(json_response(200, &list))
        }
        ("watch", None, _) => Ok(watch(sh.clone(), kind, ns, labels, fields, p)),
        ("create", None, true) => {
            let v = incoming(kind, parse_body(body)?, &ns_str)?;
            let v = normalize(kind, v)?;
            let created = if kind == Kind::Job {
                sim::create_job(sh, &ns_str, v)?
            } else {
                sh.write(|s| s.create(kind, &ns_str, v))?
            };
            Ok(json_response(201, &created))
        }
        ("patch", Some(name), true) => apply(sh, kind, &ns_str, &name, p, content_type, body),
        ("delete", Some(name), true) => {
            let opts: Value = serde_json::from_slice(body).unwrap_or_default();
            let policy = p
                .get("propagationPolicy")
                .map(String::as_str)
                .or(opts["propagationPolicy"].as_str());
            if kind == Kind::Job {
                let propagation = match policy {
                    Some("Background") => Propagation::Background,
                    Some("Foreground") => Propagation::Foreground,
                    _ => Propagation::Orphan,
                };
                let (obj, gone) = sim::delete_job(sh, &ns_str, &name, propagation)
                    .ok_or_else(|| ApiError::not_found(kind, &name))?;
                if !gone {
                    return Ok(json_response(202, &obj));
                }
                return Ok(json_response(200, &success(kind, &name, &obj)));
            }
            let obj = sh
                .write(|s| s.delete(kind, &ns_str, &name))
                .ok_or_else(|| ApiError::not_found(kind, &name))?;
            Ok(json_response(200, &success(kind, &name, &obj)))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

/// The Status of an immediate deletion.
fn success(kind: Kind, name: &str, obj: &Value) -> Value {
    let mut details = kind.details(name);
    details["uid"] = obj["metadata"]["uid"].clone();
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    })
}

/// Server-side apply of a ConfigMap or a Secret: creates it, or replaces what the
/// applied configuration sets (data, labels, annotations…). A Job is created when
/// missing and left as it is otherwise.
fn apply(
    sh: &Arc<Shared>,
    kind: Kind,
    ns: &str,
    name: &str,
    p: &Params,
    content_type: &str,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    if !content_type.starts_with("application/apply-patch+yaml") {
        return Err(ApiError::unsupported_media_type(content_type));
    }
    let Some(manager) = p.get("fieldManager").filter(|m| !m.is_empty()) else {
        return Err(ApiError::bad_request(
            "fieldManager is required for apply requests",
        ));
    };
    // JSON is YAML: kube-rs sends JSON, and so does this fake expect.
    let applied = parse_body(body)?;
    if applied["apiVersion"] != kind.api_version() || applied["kind"] != kind.kind() {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({}) does not match the expected API version ({})",
            applied["apiVersion"].as_str().unwrap_or_default(),
            kind.api_version()
        )));
    }
    if applied["metadata"]["name"]
        .as_str()
        .is_some_and(|n| n != name)
    {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            applied["metadata"]["name"].as_str().unwrap_or_default()
        )));
    }
    let mut v = normalize(kind, incoming(kind, applied.clone(), ns)?)?;
    v["metadata"]["name"] = json!(name);
    if kind == Kind::Job {
        // A Job's template is immutable: applying an existing Job changes nothing.
        if let Some(job) = sh.read(|s| s.get(kind, ns, name).cloned()) {
            return Ok(json_response(200, &job));
        }
        return Ok(json_response(201, &sim::create_job(sh, ns, v)?));
    }
    if !matches!(kind, Kind::ConfigMap | Kind::Secret) {
        return Err(ApiError::method_not_allowed());
    }
    v["metadata"]["managedFields"] = json!([{
        "manager": manager,
        "operation": "Apply",
        "apiVersion": kind.api_version(),
        "time": now_json(),
        "fieldsType": "FieldsV1",
        "fieldsV1": fields_v1(&applied, true),
    }]);
    let (code, obj) = sh.write(|s| match s.get(kind, ns, name).cloned() {
        None => s.create(kind, ns, v).map(|o| (201, o)),
        Some(mut old) => {
            for k in ["data", "binaryData", "type", "immutable"] {
                match v.get(k) {
                    Some(x) => old[k] = x.clone(),
                    None => {
                        if let Some(o) = old.as_object_mut() {
                            o.remove(k);
                        }
                    }
                }
            }
            for k in ["labels", "annotations", "managedFields"] {
                old["metadata"][k] = v["metadata"][k].clone();
                if old["metadata"][k].is_null()
                    && let Some(m) = old["metadata"].as_object_mut()
                {
                    m.remove(k);
                }
            }
            s.update(kind, ns, old).map(|o| (200, o))
        }
    })?;
    Ok(json_response(code, &obj))
}

/// The managedFields set of an applied configuration: `f:` keys down to the leaves.
fn fields_v1(v: &Value, top: bool) -> Value {
    let Some(map) = v.as_object() else {
        return json!({});
    };
    let mut out = serde_json::Map::new();
    for (k, x) in map {
        if top && (k == "apiVersion" || k == "kind") {
            continue;
        }
        if k == "name" || k == "namespace" {
            continue;
        }
        out.insert(format!("f:{k}"), fields_v1(x, false));
    }
    Value::Object(out)
}

fn event_line(type_: &str, object: &Value) -> Bytes {
    let mut line =
        serde_json::to_vec(&json!({"type": type_, "object": object})).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

/// A watch: the events after `resourceVersion` (or the current objects as ADDED when
/// it is unset or 0), then live events, bookmarks when allowed, until
/// `timeoutSeconds`.
fn watch(
    sh: Arc<Shared>,
    kind: Kind,
    ns: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
    p: &Params,
) -> Response<Body> {
    let keep = move |c: &Change| {
        c.kind == kind
            && ns.as_ref().is_none_or(|n| *n == c.ns)
            && labels.matches(&c.object)
            && fields.matches(&c.object)
    };
    let timeout = p
        .get("timeoutSeconds")
        .and_then(|t| t.parse().ok())
        .unwrap_or(1800);
    let deadline = Instant::now()
        .checked_add(Duration::from_secs(timeout))
        .unwrap_or_else(|| Instant::now() + Duration::from_secs(1800));
    let bookmark_every = Duration::from_millis(sh.scenarios.timings().bookmark_ms.max(1));
    let bookmarks = is_true(p, "allowWatchBookmarks");
    let rx = sh.subscribe();
    let bookmark = move |rv: u64, end: bool| {
        let mut meta = json!({"resourceVersion": rv.to_string(), "creationTimestamp": null});
        if end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        event_line(
            "BOOKMARK",
            &json!({"kind": kind.kind(), "apiVersion": kind.api_version(), "metadata": meta}),
        )
    };
    let rv: Option<u64> = p
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .filter(|v| *v != 0);
    let initial = is_true(p, "sendInitialEvents") || rv.is_none();
    let (pending, cursor) = sh.read(|s| {
        let mut pending = Vec::new();
        let cursor = match rv {
            Some(rv) if !initial => rv,
            _ => {
                for o in s.list(kind, None) {
                    let change = Change {
                        rv: 0,
                        kind,
                        ns: o["metadata"]["namespace"]
                            .as_str()
                            .unwrap_or_default()
                            .into(),
                        type_: "ADDED",
                        object: o.clone(),
                    };
                    if keep(&change) {
                        pending.push(event_line("ADDED", o));
                    }
                }
                if is_true(p, "sendInitialEvents") {
                    pending.push(bookmark(s.rv(), true));
                }
                s.rv()
            }
        };
        (pending, cursor)
    });
    struct State<K, B> {
        sh: Arc<Shared>,
        rx: watch::Receiver<u64>,
        keep: K,
        bookmark: B,
        cursor: u64,
        pending: std::collections::VecDeque<Bytes>,
        deadline: Instant,
        next_bookmark: Option<Instant>,
        every: Duration,
    }
    let state = State {
        sh,
        rx,
        keep,
        bookmark,
        cursor,
        pending: pending.into(),
        deadline,
        next_bookmark: bookmarks.then(|| Instant::now() + bookmark_every),
        every: bookmark_every,
    };
    let s = stream::unfold(state, |mut st| async move {
        loop {
            if let Some(b) = st.pending.pop_front() {
                return Some((Ok::<_, Infallible>(Frame::data(b)), st));
            }
            st.rx.borrow_and_update();
            let (lines, rv) = st.sh.read(|s| {
                let (changes, rv) = s.changes_after(st.cursor, &st.keep);
                let lines: Vec<Bytes> = changes
                    .iter()
                    .map(|c| event_line(c.type_, &c.object))
                    .collect();
                (lines, rv)
            });
            st.cursor = rv;
            if !lines.is_empty() {
                st.pending.extend(lines);
                continue;
            }
            let now = Instant::now();
            if now >= st.deadline {
                return None;
            }
            if let Some(at) = st.next_bookmark.filter(|at| now >= *at) {
                st.next_bookmark = Some(at + st.every);
                st.pending.push_back((st.bookmark)(st.cursor, false));
                continue;
            }
            let wake = st.next_bookmark.map_or(st.deadline, |b| b.min(st.deadline));
            tokio::select! {
                r = st.rx.changed() => if r.is_err() { return None },
                () = sleep_until(wake) => {}
            }
        }
    });
    respond(200, "application/json", StreamBody::new(s).boxed_unsync())
}

/// `pods/{name}/log`: the kubelet's answers for waiting containers, the lines so far,
/// and with `follow` the lines to come until the container terminates.
fn logs(sh: &Arc<Shared>, ns: &str, pod: &str, p: &Params) -> Result<Response<Body>, ApiError> {
    let obj: Pod = sh
        .get(Kind::Pod, ns, pod)
        .ok_or_else(|| ApiError::not_found(Kind::Pod, pod))?;
    let spec = obj.spec.unwrap_or_default();
    let mains: Vec<&str> = spec.containers.iter().map(|c| c.name.as_str()).collect();
    let inits: Vec<&str> = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    let container = match p.get("container") {
        Some(c) => c.clone(),
        None if mains.len() == 1 => mains[0].to_string(),
        None => {
            let mut msg = format!(
                "a container name must be specified for pod {pod}, choose one of: [{}]",
                mains.join(" ")
            );
            if !inits.is_empty() {
                msg.push_str(&format!(
                    " or one of the init containers: [{}]",
                    inits.join(" ")
                ));
            }
            return Err(ApiError::bad_request(msg));
        }
    };
    if !mains.contains(&container.as_str()) && !inits.contains(&container.as_str()) {
        return Err(ApiError::bad_request(format!(
            "container {container} is not valid for pod {pod}"
        )));
    }
    if spec.node_name.is_none() {
        return Ok(respond(200, "text/plain", full("")));
    }
    let st = obj.status.unwrap_or_default();
    let cs = st
        .init_container_statuses
        .iter()
        .flatten()
        .chain(st.container_statuses.iter().flatten())
        .find(|c| c.name == container);
    let Some(cs) = cs else {
        return Err(ApiError::bad_request(format!(
            "container \"{container}\" in pod \"{pod}\" is not available"
        )));
    };
    let Some(state) = cs.state.as_ref() else {
        return Err(ApiError::bad_request(format!(
            "container \"{container}\" in pod \"{pod}\" is waiting to start - no logs yet"
        )));
    };
    if let Some(reason) = state
        .waiting
        .as_ref()
        .map(|w| w.reason.clone().unwrap_or_default())
    {
        let why = match reason.as_str() {
            "ErrImagePull" => "image can't be pulled".to_string(),
            "ImagePullBackOff" => "trying and failing to pull image".to_string(),
            r => r.to_string(),
        };
        return Err(ApiError::bad_request(format!(
            "container \"{container}\" in pod \"{pod}\" is waiting to start: {why}"
        )));
    }
    let tail: Option<usize> = p.get("tailLines").and_then(|t| t.parse().ok());
    let key = (ns.to_string(), pod.to_string(), container);
    let (sent, lines, done) = sh.read(|s| match s.log(&key.0, &key.1, &key.2) {
        Some(b) => {
            let skip = tail.map_or(0, |t| b.lines.len().saturating_sub(t));
            (b.lines.len(), b.lines[skip..].to_vec(), b.done)
        }
        None => (0, Vec::new(), true),
    });
    let text =
        |lines: &[String]| Bytes::from(lines.iter().map(|l| format!("{l}\n")).collect::<String>());
    if !is_true(p, "follow") || done {
        return Ok(respond(200, "text/plain", full(text(&lines))));
    }
    let first = (!lines.is_empty()).then(|| text(&lines));
    let rx = sh.subscribe();
    let sh = sh.clone();
    let s = stream::unfold((first, rx, sent), move |(mut first, mut rx, mut sent)| {
        let (sh, key) = (sh.clone(), key.clone());
        async move {
            if let Some(b) = first.take() {
                return Some((Ok::<_, Infallible>(Frame::data(b)), (None, rx, sent)));
            }
            loop {
                rx.borrow_and_update();
                let (new, done) = sh.read(|s| match s.log(&key.0, &key.1, &key.2) {
                    Some(b) => (b.lines[sent.min(b.lines.len())..].to_vec(), b.done),
                    None => (Vec::new(), true),
                });
                sent += new.len();
                if !new.is_empty() {
                    return Some((Ok(Frame::data(text(&new))), (None, rx, sent)));
                }
                if done || rx.changed().await.is_err() {
                    return None;
                }
            }
        }
    });
    Ok(respond(
        200,
        "text/plain",
        StreamBody::new(s).boxed_unsync(),
    ))
}
