//! One target's Job: its init containers, the runner, its environment from the
//! plan's ConfigMap and Secret, its security context and failure policy.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{
    Job, JobSpec, PodFailurePolicy, PodFailurePolicyOnExitCodesRequirement,
    PodFailurePolicyOnPodConditionsPattern, PodFailurePolicyRule,
};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, ConfigMapKeySelector, ConfigMapVolumeSource, Container,
    EmptyDirVolumeSource, EnvVar, EnvVarSource, KeyToPath, LocalObjectReference,
    PodSecurityContext, PodSpec, PodTemplateSpec, ResourceRequirements, SeccompProfile,
    SecretKeySelector, SecurityContext, Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kubemigrate_plan::{DatabaseSource, Engine, Plan, Resources, Target};

use kubemigrate_contract::{env, exit, k8s};

use crate::*;

pub(crate) struct JobBuilder<'a> {
    pub(crate) plan: &'a Plan,
    pub(crate) target: &'a Target,
    pub(crate) name: String,
    pub(crate) options: &'a Options,
    pub(crate) labels: &'a BTreeMap<String, String>,
    pub(crate) affinity: Option<Affinity>,
    pub(crate) files: Option<&'a Vec<LocalFile>>,
    pub(crate) sql_cm_name: String,
    pub(crate) credentials: Option<&'a (Resolved, Resolved)>,
}

/// What runs in `run-migrations`.
pub(crate) enum Runner {
    /// The runner image itself runs kubemigrate (localDir targets).
    OwnImage,
    /// The target's image runs the copied binary.
    Copied,
    /// The target's image runs psql (engine: psql).
    Psql,
}

impl JobBuilder<'_> {
    pub(crate) fn build(
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
                let mut c = vec![s(COPIED_BINARY), s("exec"), s("--lock")];
                // exec's own flags before the `--` that starts the command.
                c.extend(t.databases.as_ref().map(fanout_flags).unwrap_or_default());
                c.push(s("--"));
                c.extend(cmd.command.iter().cloned());
                c.extend(cmd.args.iter().cloned());
                (Runner::Copied, cmd.image.clone(), c)
            }
            // validate() guarantees exactly one of sql and command.
            (None, None) => (Runner::OwnImage, runner_image.clone(), vec![]),
        };
        if let (Some(d), Some(_)) = (&t.databases, &t.sql) {
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
        // A final code of the runner fails the Job; in a fan-out (Indexed) Job it
        // fails that index only: one bad tenant does not fail the others.
        let runner_action = if t.databases.is_some() {
            "FailIndex"
        } else {
            "FailJob"
        };
        let mut rules = Vec::new();
        if t.runs_native_engine() {
            rules.push(on_exit_codes(
                runner_action,
                k8s::RUN_MIGRATIONS,
                exit::FINAL_RUNNER_CODES,
            ));
        }
        rules.push(on_exit_codes(
            "FailJob",
            k8s::WAIT_FOR_POSTGRES,
            exit::FINAL_WAIT_CODES,
        ));
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
            // code fails that index only (`runner_action` above).
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
    pub(crate) fn env(&self) -> Vec<EnvVar> {
        let k = key_prefix(self.target.name.as_str());
        let cm = config_map_name(self.plan);
        let from_cm = |name: &str, key: String| config_map_env(name, cm.clone(), key);
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
                Resolved::Value(_) => secret_env(var, secret.clone(), format!("{k}_{var}")),
                Resolved::Existing { name, key } => secret_env(var, name, key),
            });
        }
        env
    }

    /// A fan-out target's names (`KUBEMIGRATE_DATABASES`, from the plan's ConfigMap
    /// or the user's object), query (`KUBEMIGRATE_DATABASE_QUERY`) or URLs
    /// (`KUBEMIGRATE_DATABASE_URLS`, from the user's Secret), for its
    /// `run-migrations` container only.
    pub(crate) fn databases_env(&self) -> Option<EnvVar> {
        let d = self.target.databases.as_ref()?;
        let k = key_prefix(self.target.name.as_str());
        let from_cm = |name: String, key: String| config_map_env(env::DATABASES, name, key);
        Some(match &d.source {
            DatabaseSource::List(_) => {
                from_cm(config_map_name(self.plan), format!("{k}_DATABASES"))
            }
            DatabaseSource::Query(q) => plain_env(env::DATABASE_QUERY, q),
            DatabaseSource::ConfigMap(r) => from_cm(r.name.clone(), r.key.clone()),
            DatabaseSource::Secret(r) => secret_env(env::DATABASES, r.name.clone(), r.key.clone()),
            DatabaseSource::SecretUrls(r) => {
                secret_env(env::DATABASE_URLS, r.name.clone(), r.key.clone())
            }
        })
    }
}

/// The environment variable `name` from the key `key` of the ConfigMap `config_map`.
fn config_map_env(name: &str, config_map: String, key: String) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: None,
        value_from: Some(EnvVarSource {
            config_map_key_ref: Some(ConfigMapKeySelector {
                name: config_map,
                key,
                optional: None,
            }),
            ..Default::default()
        }),
    }
}

/// The environment variable `name` from the key `key` of the Secret `secret`.
fn secret_env(name: &str, secret: String, key: String) -> EnvVar {
    EnvVar {
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
    }
}

/// `sql migrate`'s (and `exec`'s) flags for a target's databases: the shards (each pod of the
/// Indexed Job runs the one of its `JOB_COMPLETION_INDEX`; `apply --local`, which
/// sets no index, runs them all `--concurrency` at a time) and what a failure does.
/// The names come from `KUBEMIGRATE_DATABASES` or `KUBEMIGRATE_DATABASE_QUERY`.
pub(crate) fn fanout_flags(d: &kubemigrate_plan::Databases) -> Vec<String> {
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
pub(crate) fn timeout_flags(sql: &kubemigrate_plan::Sql) -> Vec<String> {
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

pub(crate) fn push_mount(c: &mut Container, volume: &str, path: &str, read_only: bool) {
    c.volume_mounts
        .get_or_insert_with(Vec::new)
        .push(VolumeMount {
            name: volume.into(),
            mount_path: path.into(),
            read_only: read_only.then_some(true),
            ..Default::default()
        });
}

pub(crate) fn plain_env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        value_from: None,
    }
}

/// A pod failure policy rule: `action` when `container` exits with one of `codes`.
fn on_exit_codes(action: &str, container: &str, codes: &[exit::Exit]) -> PodFailurePolicyRule {
    PodFailurePolicyRule {
        action: action.into(),
        on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
            container_name: Some(container.into()),
            operator: "In".into(),
            values: codes.iter().map(|e| i32::from(e.code())).collect(),
        }),
        on_pod_conditions: None,
    }
}

/// The Terraform module's loop: every `*.sql` file of the directory through psql,
/// in name order, stopping at the first error.
pub(crate) fn psql_loop() -> Vec<String> {
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

pub(crate) fn resource_requirements(r: &Resources) -> ResourceRequirements {
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
