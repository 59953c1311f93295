//! Checks that need the whole plan: unique names, dependsOn, exactly one of `sql`
//! and `command`, label syntax, requests within limits, and the like. Each finding
//! is an error or a warning at a field path; the loader turns paths into lines.

use std::collections::{BTreeMap, HashMap};

use crate::model::{Credential, Engine, Plan, Resources, SecurityContext, Target};
use crate::path::FieldPath;
use crate::suggest::did_you_mean;
use crate::values::{check_dns_subdomain, check_env_name, check_label_key, check_label_value};

pub use kubemigrate_contract::k8s::{
    JOB_CONTROLLER_LABELS as CONTROLLER_LABELS, RESERVED_LABEL_PREFIXES,
};

/// The longest target name: a Job is `<target>-migrations-<8-character suffix>` and
/// its name is also a label value (at most 63 characters).
pub const MAX_TARGET_NAME: usize = 63 - "-migrations-".len() - 8;

/// One finding.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// Where.
    pub path: FieldPath,
    /// What.
    pub message: String,
    /// `true` for a warning (the plan is still used).
    pub warning: bool,
}

#[derive(Default)]
struct Findings(Vec<Finding>);

impl Findings {
    fn error(&mut self, path: FieldPath, message: impl Into<String>) {
        self.0.push(Finding {
            path,
            message: message.into(),
            warning: false,
        });
    }
    fn warn(&mut self, path: FieldPath, message: impl Into<String>) {
        self.0.push(Finding {
            path,
            message: message.into(),
            warning: true,
        });
    }
    fn check(&mut self, path: FieldPath, result: Result<(), String>) {
        if let Err(e) = result {
            self.error(path, e);
        }
    }
}

/// Checks `plan` as a whole.
pub fn validate(plan: &Plan) -> Vec<Finding> {
    let mut f = Findings::default();
    let spec_path = FieldPath::of(&["spec"]);
    let spec = &plan.spec;

    f.check(
        spec_path.key("serviceAccountName"),
        check_dns_subdomain(&spec.service_account_name),
    );
    labels(&mut f, &spec_path.key("labels"), &spec.labels, true);
    labels(
        &mut f,
        &spec_path.key("annotations"),
        &spec.annotations,
        false,
    );
    labels(
        &mut f,
        &spec_path.key("nodeSelector"),
        &spec.node_selector,
        true,
    );
    if let Some(image) = &spec.runner_image {
        image_ref(&mut f, spec_path.key("runnerImage"), image);
    }
    for (i, s) in spec.image_pull_secrets.iter().enumerate() {
        f.check(
            spec_path.key("imagePullSecrets").index(i).key("name"),
            check_dns_subdomain(&s.name),
        );
    }
    for (i, t) in spec.tolerations.iter().enumerate() {
        let p = spec_path.key("tolerations").index(i);
        use crate::model::{TaintEffect, TolerationOperator};
        if t.operator == Some(TolerationOperator::Exists) && t.value.is_some() {
            f.error(
                p.key("value"),
                "a toleration with operator Exists has no value",
            );
        }
        if t.key.as_deref().unwrap_or("").is_empty()
            && t.operator != Some(TolerationOperator::Exists)
        {
            f.error(
                p.key("key"),
                "a toleration without a key needs operator: Exists",
            );
        }
        if t.toleration_seconds.is_some() && t.effect != Some(TaintEffect::NoExecute) {
            f.error(
                p.key("tolerationSeconds"),
                "tolerationSeconds needs effect: NoExecute",
            );
        }
    }
    if let Some(a) = &spec.affinity
        && !a.is_object()
    {
        f.error(spec_path.key("affinity"), "affinity must be a mapping");
    }
    resources(
        &mut f,
        &spec_path.key("resources"),
        &Resources::module_defaults().overridden_by(&spec.resources),
    );
    security(
        &mut f,
        &spec_path.key("securityContext"),
        &spec.security_context,
    );

    if let Some(l) = &spec.lint {
        lint_policy(&mut f, &spec_path.key("lint"), l);
    }
    targets(&mut f, plan);
    f.0
}

/// `postgresVersion` is `MAJOR[.MINOR[.PATCH]]`. Rule names are checked by the
/// binary, which knows the linter's rules.
fn lint_policy(f: &mut Findings, p: &FieldPath, l: &crate::model::LintPolicy) {
    if let Some(v) = &l.postgres_version {
        let parts: Vec<&str> = v.split('.').collect();
        let ok = parts.len() <= 3
            && parts
                .iter()
                .all(|x| !x.is_empty() && x.len() <= 4 && x.bytes().all(|b| b.is_ascii_digit()));
        if !ok {
            f.error(
                p.key("postgresVersion"),
                format!(
                    "{v:?} is not a PostgreSQL version; give the major version, e.g. 16, or 15.4"
                ),
            );
        }
    }
}

fn image_ref(f: &mut Findings, path: FieldPath, image: &str) {
    if image.trim().is_empty() {
        f.error(path, "the image must not be empty");
    } else if image.chars().any(char::is_whitespace) {
        f.error(
            path,
            format!("{image:?} is not an image reference: it contains a space"),
        );
    }
}

fn labels(f: &mut Findings, path: &FieldPath, map: &BTreeMap<String, String>, values: bool) {
    for (k, v) in map {
        let p = path.key(k);
        if let Err(e) = check_label_key(k) {
            f.error(p.clone(), e);
            continue;
        }
        if path.segments().last() != Some(&crate::path::Segment::Key("nodeSelector".into()))
            && let Some(prefix) = RESERVED_LABEL_PREFIXES
                .iter()
                .chain(CONTROLLER_LABELS)
                .find(|r| k.starts_with(*r))
        {
            f.error(
                p.clone(),
                if CONTROLLER_LABELS.contains(prefix) {
                    format!("{prefix} is set by Kubernetes' Job controller; choose another key")
                } else {
                    format!(
                        "keys starting with {prefix} are set by kubemigrate; choose another key"
                    )
                },
            );
        }
        if values {
            f.check(p, check_label_value(v));
        }
    }
}

fn resources(f: &mut Findings, path: &FieldPath, r: &Resources) {
    let pairs = [
        ("cpu", &r.requests.cpu, &r.limits.cpu),
        ("memory", &r.requests.memory, &r.limits.memory),
        (
            "ephemeral-storage",
            &r.requests.ephemeral_storage,
            &r.limits.ephemeral_storage,
        ),
    ];
    for (name, req, lim) in pairs {
        if let (Some(req), Some(lim)) = (req, lim)
            && req.value() > lim.value()
        {
            f.error(
                path.key("requests").key(name),
                format!(
                    "the {name} request {} is more than the limit {}",
                    req.as_str(),
                    lim.as_str()
                ),
            );
        }
    }
}

fn security(f: &mut Findings, path: &FieldPath, s: &SecurityContext) {
    if s.run_as_user == Some(0) {
        f.error(
            path.key("runAsUser"),
            "0 is root; the restricted Pod Security Standard needs a non-root user (e.g. 1000)",
        );
    }
}

fn credential(f: &mut Findings, path: FieldPath, c: &Credential, what: &str) {
    match c {
        Credential::Literal(_) if what == "password" => f.warn(
            path,
            "the password is written in the plan; prefer fromEnv, fromFile or existingSecret",
        ),
        Credential::Literal(_) => {}
        Credential::FromEnv(var) => f.check(path.key("fromEnv"), check_env_name(var)),
        Credential::FromFile(p) => {
            if p.as_os_str().is_empty() {
                f.error(path.key("fromFile"), "the path must not be empty");
            }
        }
        Credential::ExistingSecret { name, key } => {
            let p = path.key("existingSecret");
            f.check(p.key("name"), check_dns_subdomain(name));
            if key.is_empty()
                || !key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            {
                f.error(
                    p.key("key"),
                    format!("{key:?} is not a Secret key (letters, digits, '-', '_', '.')"),
                );
            }
        }
    }
}

fn targets(f: &mut Findings, plan: &Plan) {
    let path = FieldPath::of(&["spec", "targets"]);
    let targets = &plan.spec.targets;
    if targets.is_empty() {
        f.error(path.clone(), "a plan needs at least one target");
    }
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, t) in targets.iter().enumerate() {
        let p = path.index(i);
        if let Some(first) = index.get(t.name.as_str()) {
            f.error(
                p.key("name"),
                format!(
                    "duplicate target name {:?} (first is targets[{first}])",
                    t.name.as_str()
                ),
            );
        } else {
            index.insert(t.name.as_str(), i);
        }
        if t.name.as_str().len() > MAX_TARGET_NAME {
            f.error(
                p.key("name"),
                format!(
                    "{:?} is {} characters; a target name has at most {MAX_TARGET_NAME} so that \
                     its Job name `<target>-migrations-<suffix>` fits in 63",
                    t.name.as_str(),
                    t.name.as_str().len()
                ),
            );
        }
        target(f, &p, t);
        if t.resources.is_some() {
            resources(f, &p.key("resources"), &plan.resources_for(t));
        }
    }
    let names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
    for (i, t) in targets.iter().enumerate() {
        let p = path.index(i).key("dependsOn");
        for (j, dep) in t.depends_on.iter().enumerate() {
            if dep == t.name.as_str() {
                f.error(
                    p.index(j),
                    format!("target {dep:?} cannot depend on itself"),
                );
            } else if t.depends_on[..j].contains(dep) {
                f.error(p.index(j), format!("{dep:?} is listed twice"));
            } else if let Some(&k) = index.get(dep.as_str()) {
                if t.enabled && !targets[k].enabled {
                    f.warn(
                        p.index(j),
                        format!("{dep:?} is disabled; this target will not wait for it"),
                    );
                }
            } else {
                let hint = did_you_mean(dep, &names)
                    .map(|s| format!("; did you mean {s:?}?"))
                    .unwrap_or_else(|| format!("; the targets are: {}", names.join(", ")));
                f.error(p.index(j), format!("no target is named {dep:?}{hint}"));
            }
        }
    }
    if let Some(cycle) = find_cycle(targets, &index) {
        let first = cycle[0];
        let shown: Vec<&str> = cycle
            .iter()
            .chain(std::iter::once(&first))
            .map(|&i| targets[i].name.as_str())
            .collect();
        let next = targets[cycle.get(1).copied().unwrap_or(first)]
            .name
            .as_str();
        let j = targets[first]
            .depends_on
            .iter()
            .position(|d| d == next)
            .unwrap_or(0);
        f.error(
            path.index(first).key("dependsOn").index(j),
            format!("dependsOn makes a cycle: {}", shown.join(" → ")),
        );
    }
}

/// The first cycle of the dependsOn graph, as target indexes in order, or `None`.
fn find_cycle(targets: &[Target], index: &HashMap<&str, usize>) -> Option<Vec<usize>> {
    // 0 unvisited, 1 on the stack, 2 done.
    let mut state = vec![0u8; targets.len()];
    let mut stack = Vec::new();
    fn visit(
        i: usize,
        targets: &[Target],
        index: &HashMap<&str, usize>,
        state: &mut [u8],
        stack: &mut Vec<usize>,
    ) -> Option<Vec<usize>> {
        state[i] = 1;
        stack.push(i);
        for dep in &targets[i].depends_on {
            let Some(&j) = index.get(dep.as_str()) else {
                continue;
            };
            if j == i {
                continue; // reported as "depends on itself"
            }
            if state[j] == 1 {
                let start = stack.iter().position(|&s| s == j).unwrap_or(0);
                return Some(stack[start..].to_vec());
            }
            if state[j] == 0
                && let Some(c) = visit(j, targets, index, state, stack)
            {
                return Some(c);
            }
        }
        stack.pop();
        state[i] = 2;
        None
    }
    for i in 0..targets.len() {
        if state[i] == 0
            && let Some(c) = visit(i, targets, index, &mut state, &mut stack)
        {
            return Some(c);
        }
    }
    None
}

/// The longest host name DNS allows.
const MAX_HOST_NAME: usize = 253;

fn target(f: &mut Findings, p: &FieldPath, t: &Target) {
    if let Some(l) = &t.lint {
        lint_policy(f, &p.key("lint"), l);
        if t.command.is_some() && t.sql.is_none() {
            f.error(
                p.key("lint"),
                "`lint` applies to SQL files; a `command` target's migrations are not linted",
            );
        }
    }
    let db = &t.database;
    let dbp = p.key("database");
    if db.host.len() > MAX_HOST_NAME {
        // Not repeated: it could be anything, of any size.
        f.error(
            dbp.key("host"),
            format!(
                "the host name is {} bytes; a host name is at most {MAX_HOST_NAME}",
                db.host.len()
            ),
        );
    } else if db.host.trim().is_empty() || db.host.chars().any(char::is_whitespace) {
        f.error(dbp.key("host"), format!("{:?} is not a host name", db.host));
    }
    if db.port == 0 {
        f.error(
            dbp.key("port"),
            "0 is not a port: expected a port number from 1 to 65535",
        );
    }
    if db.name.is_empty() {
        f.error(dbp.key("name"), "the database name must not be empty");
    }
    credential(f, dbp.key("user"), &db.user, "user");
    credential(f, dbp.key("password"), &db.password, "password");

    match (&t.sql, &t.command) {
        (Some(_), Some(_)) => f.error(
            p.key("command"),
            "a target has either `sql` or `command`, not both",
        ),
        (None, None) => f.error(
            p.clone(),
            "a target needs `sql` (SQL files) or `command` (a migration command)",
        ),
        (Some(sql), None) => {
            let sp = p.key("sql");
            match (&sql.image, &sql.local_dir) {
                (Some(_), Some(_)) => f.error(
                    sp.key("localDir"),
                    "give either `image` (files in an image) or `localDir` (files next to the plan), not both",
                ),
                (None, None) => f.error(
                    sp.clone(),
                    "give `image` (an image holding the files) or `localDir` (files next to the plan)",
                ),
                (Some(image), None) => image_ref(f, sp.key("image"), image),
                (None, Some(_)) => {
                    if sql.dir.is_some() {
                        f.error(sp.key("dir"), "`dir` is the files' directory in `image`; with `localDir` leave it out");
                    }
                    if sql.engine == Engine::Psql {
                        f.error(sp.key("engine"), "engine psql needs an `image` with psql; `localDir` files run on the runner image, which has kubemigrate's engine only");
                    }
                }
            }
            if sql.layout != crate::model::Layout::Native && sql.engine == Engine::Psql {
                f.error(
                    sp.key("layout"),
                    format!(
                        "layout {} is read by kubemigrate's engine; engine psql runs every *.sql file as it is (leave engine out)",
                        sql.layout.name()
                    ),
                );
            }
            if sql.lock_retries > 0 {
                if sql.engine == Engine::Psql {
                    f.error(
                        sp.key("lockRetries"),
                        "engine psql runs files with psql, which cannot retry them; leave lockRetries out or use the native engine",
                    );
                } else if sql.lock_timeout.is_none() {
                    f.error(
                        sp.key("lockRetries"),
                        "a retry follows a lock timeout: set lockTimeout too (for example 5s)",
                    );
                }
                if sql.lock_retries > 100 {
                    f.error(sp.key("lockRetries"), "at most 100 retries");
                }
            }
            if let Some(dir) = &sql.dir
                && !dir.starts_with('/')
            {
                f.error(
                    sp.key("dir"),
                    format!("{dir:?} must be an absolute path in the image"),
                );
            }
        }
        (None, Some(cmd)) => {
            let cp = p.key("command");
            image_ref(f, cp.key("image"), &cmd.image);
            if cmd.command.is_empty() || cmd.command[0].is_empty() {
                f.error(
                    cp.key("command"),
                    "the command must not be empty, e.g. [npm, run, migrate]",
                );
            }
            for (i, e) in cmd.env.iter().enumerate() {
                let ep = cp.key("env").index(i).key("name");
                if let Err(msg) = check_env_name(&e.name) {
                    f.error(ep, msg);
                } else if kubemigrate_contract::env::reserved().any(|r| r == e.name) {
                    f.error(
                        ep,
                        format!("{} is set by kubemigrate from `database`", e.name),
                    );
                } else if cmd.env[..i].iter().any(|o| o.name == e.name) {
                    f.error(ep, format!("{} is set twice", e.name));
                }
            }
        }
    }
    if let Some(s) = &t.security_context {
        security(f, &p.key("securityContext"), s);
    }
    if let Some(d) = &t.databases {
        databases(f, &p.key("databases"), t, d);
    }
}

/// The most indexes an Indexed Job with `backoffLimitPerIndex` may have.
pub const MAX_SHARDS: u32 = 100_000;
/// The most databases migrated at once.
pub const MAX_CONCURRENCY: u32 = 256;

fn databases(f: &mut Findings, p: &FieldPath, t: &Target, d: &crate::model::Databases) {
    use crate::model::DatabaseSource;
    if t.sql.as_ref().is_some_and(|s| s.engine == Engine::Psql) {
        f.error(
            p.clone(),
            "`databases` needs the native engine (engine psql runs one database); leave `engine` out",
        );
    }
    let setting = |name: &str| p.key(name);
    if d.concurrency == 0 || d.concurrency > MAX_CONCURRENCY {
        f.error(
            setting("concurrency"),
            format!("give a concurrency from 1 to {MAX_CONCURRENCY}"),
        );
    }
    if let Some(n) = d.shards
        && (n == 0 || n > MAX_SHARDS)
    {
        f.error(
            setting("shards"),
            format!("give from 1 to {MAX_SHARDS} shards"),
        );
    }
    match &d.source {
        DatabaseSource::List(names) => {
            // `databases: [...]` or `databases: {list: [...]}`: the shorthand's items
            // sit right under `databases`.
            let lp = |i: usize| {
                if d.shorthand {
                    p.index(i)
                } else {
                    p.key("list").index(i)
                }
            };
            if names.is_empty() {
                f.error(p.clone(), "the list of databases is empty");
            }
            let mut seen: HashMap<&str, usize> = HashMap::new();
            for (i, n) in names.iter().enumerate() {
                if n.trim().is_empty() {
                    f.error(lp(i), "a database name must not be empty");
                } else if n.len() > 63 {
                    f.error(
                        lp(i),
                        format!(
                            "{n:?} is {} bytes; PostgreSQL names have at most 63",
                            n.len()
                        ),
                    );
                } else if n.contains(['\n', '\r']) {
                    f.error(lp(i), "a database name must not hold a line break");
                } else if let Some(first) = seen.get(n.as_str()) {
                    f.error(lp(i), format!("{n:?} is listed twice (first at {first})"));
                } else {
                    seen.insert(n, i);
                }
            }
            if let Some(s) = d.shards
                && s as usize > names.len()
            {
                f.error(
                    setting("shards"),
                    format!(
                        "{s} shards for {} databases: some would be empty",
                        names.len()
                    ),
                );
            }
        }
        DatabaseSource::Query(q) => {
            if q.trim().is_empty() {
                f.error(p.key("query"), "the query must not be empty");
            }
        }
        DatabaseSource::ConfigMap(r)
        | DatabaseSource::Secret(r)
        | DatabaseSource::SecretUrls(r) => {
            let rp = p.key(match d.source {
                DatabaseSource::ConfigMap(_) => "fromConfigMap",
                DatabaseSource::Secret(_) => "fromSecret",
                _ => "urlsFromSecret",
            });
            f.check(rp.key("name"), check_dns_subdomain(&r.name));
            if r.key.is_empty()
                || !r
                    .key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            {
                f.error(
                    rp.key("key"),
                    format!("{:?} is not a key (letters, digits, '-', '_', '.')", r.key),
                );
            }
        }
    }
}
