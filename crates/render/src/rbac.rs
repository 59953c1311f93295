//! The Role and RoleBinding that the cluster commands need.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kubemigrate_plan::Plan;

use crate::*;

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
