//! Label and field selectors, as the API server parses them.

use serde_json::Value;

use crate::store::Kind;

#[derive(Debug, PartialEq)]
enum LabelReq {
    Eq(String, String),
    Ne(String, String),
    Exists(String),
    NotExists(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

/// A parsed `labelSelector`: equality (`a=b`, `a==b`, `a!=b`), existence (`a`, `!a`)
/// and set (`a in (x,y)`, `a notin (x)`) requirements, all of which must hold.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct LabelSelector(Vec<LabelReq>);

/// Splits on commas outside parentheses.
fn split_top(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn set_values(s: &str) -> Option<Vec<String>> {
    let inner = s.trim().strip_prefix('(')?.strip_suffix(')')?;
    Some(inner.split(',').map(|v| v.trim().to_string()).collect())
}

impl LabelSelector {
    /// Parses a selector; the error is the API server's message.
    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        let mut reqs = Vec::new();
        for part in split_top(s).into_iter().map(str::trim) {
            if part.is_empty() {
                continue;
            }
            let bad =
                || format!("unable to parse requirement: found '{part}', expected: identifier");
            let req = if let Some((k, v)) = part.split_once("!=") {
                LabelReq::Ne(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                LabelReq::Eq(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = part.split_once(" notin ") {
                LabelReq::NotIn(k.trim().into(), set_values(v).ok_or_else(bad)?)
            } else if let Some((k, v)) = part.split_once(" in ") {
                LabelReq::In(k.trim().into(), set_values(v).ok_or_else(bad)?)
            } else if let Some(k) = part.strip_prefix('!') {
                LabelReq::NotExists(k.trim().into())
            } else if part.contains(char::is_whitespace) {
                return Err(bad());
            } else {
                LabelReq::Exists(part.into())
            };
            reqs.push(req);
        }
        Ok(Self(reqs))
    }

    /// Whether an object's `metadata.labels` satisfy the selector.
    pub(crate) fn matches(&self, obj: &Value) -> bool {
        let labels = &obj["metadata"]["labels"];
        let get = |k: &str| labels.get(k).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            LabelReq::Eq(k, v) => get(k) == Some(v.as_str()),
            LabelReq::Ne(k, v) => get(k) != Some(v.as_str()),
            LabelReq::Exists(k) => get(k).is_some(),
            LabelReq::NotExists(k) => get(k).is_none(),
            LabelReq::In(k, vs) => get(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            LabelReq::NotIn(k, vs) => get(k).is_none_or(|l| vs.iter().all(|v| v != l)),
        })
    }
}

/// A parsed `fieldSelector`: `path=value`, `path==value`, `path!=value`.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct FieldSelector(Vec<(String, bool, String)>);

/// The field labels each kind supports, besides `metadata.name` and
/// `metadata.namespace`.
fn supported(kind: Kind, field: &str) -> bool {
    let extra: &[&str] = match kind {
        Kind::Pod => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        Kind::Event => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        Kind::Secret => &["type"],
        Kind::Job => &["status.successful"],
        Kind::ConfigMap => &[],
    };
    field == "metadata.name" || field == "metadata.namespace" || extra.contains(&field)
}

impl FieldSelector {
    /// Parses a selector for `kind`; the error is the API server's message.
    pub(crate) fn parse(kind: Kind, s: &str) -> Result<Self, String> {
        let mut reqs = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, eq, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                (f, true, v)
            } else {
                return Err(format!(
                    "invalid selector: '{s}'; can't understand '{part}'"
                ));
            };
            let field = field.trim();
            if !supported(kind, field) {
                return Err(format!("field label not supported: {field}"));
            }
            reqs.push((field.to_string(), eq, value.trim().to_string()));
        }
        Ok(Self(reqs))
    }

    /// The value required for `metadata.name`, if any.
    pub(crate) fn name(&self) -> Option<&str> {
        self.0
            .iter()
            .find(|(f, eq, _)| *eq && f == "metadata.name")
            .map(|(_, _, v)| v.as_str())
    }

    /// Whether `obj` satisfies the selector. A missing field is the empty string.
    pub(crate) fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(field, eq, value)| {
            let path = match field.as_str() {
                "source" => "source.component",
                "status.successful" => "status.succeeded",
                f => f,
            };
            let v = path.split('.').fold(obj, |v, k| &v[k]);
            let actual = match v {
                Value::Null => String::new(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (actual == *value) == *eq
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selectors() {
        let obj = json!({"metadata": {"labels": {"job-name": "x", "tier": "db"}}});
        let m = |s: &str| LabelSelector::parse(s).unwrap().matches(&obj);
        assert!(m("job-name=x"));
        assert!(m("job-name==x,tier=db"));
        assert!(!m("job-name=x,tier=web"));
        assert!(m("tier in (web, db),!missing"));
        assert!(m("tier notin (web),job-name"));
        assert!(!m("tier!=db"));
        assert!(m(""));
        assert!(LabelSelector::parse("a b").is_err());
    }

    #[test]
    fn field_selectors() {
        let ev = json!({"involvedObject": {"kind": "Pod", "name": "p"}, "source": {"component": "kubelet"}});
        let f = FieldSelector::parse(Kind::Event, "involvedObject.kind=Pod,involvedObject.name=p")
            .unwrap();
        assert!(f.matches(&ev));
        assert!(
            FieldSelector::parse(Kind::Event, "source=kubelet")
                .unwrap()
                .matches(&ev)
        );
        assert!(
            !FieldSelector::parse(Kind::Event, "type!=")
                .unwrap()
                .matches(&ev)
        );
        assert_eq!(
            FieldSelector::parse(Kind::Job, "spec.foo=1").unwrap_err(),
            "field label not supported: spec.foo"
        );
        assert_eq!(
            FieldSelector::parse(Kind::Job, "metadata.name=j")
                .unwrap()
                .name(),
            Some("j")
        );
    }
}
