//! `kubemigrate sql lint`: the statements of each file, as they will be sent,
//! checked for what hurts a production database (squawk's rules and ours), and
//! with `--trace`, the locks each statement takes on a throwaway server.

use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::anyhow;
use kubemigrate_lint::{Finding, Level, Policy, Report};
use kubemigrate_sql::events::{Event, FileStatus};
use kubemigrate_sql::migrator;
use kubemigrate_sql::source::Source;

use crate::args::db::{ConnArgs, DirArgs, HistoryArgs};
use crate::exit::{CommandResult, Exit, Failure};
use crate::output::{Envelope, Format, Output, Reporter};

/// Check migrations for statements that hurt a production database: locks that
/// block reads or writes, table rewrites, changes that break the running version.
///
/// Each file is read as `sql migrate` would run it (variables set, includes read,
/// `\if` branches chosen) and checked in its real transaction mode: a file
/// kubemigrate wraps in a transaction, a `-- kubemigrate:no-transaction` file, or a
/// file with its own BEGIN/COMMIT. Findings name the file, line and column as
/// written, the rule, why it is unsafe and the safe pattern. Silence one statement
/// with `-- kubemigrate:lint-ignore RULE reason` on the line before it.
///
/// With --trace, the files run one statement at a time on a throwaway local
/// PostgreSQL (with the schema of --database-url copied by pg_dump --schema-only),
/// and each statement's locks are reported.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  kubemigrate sql lint --dir ./migrations
  kubemigrate sql lint -d ./migrations --format github          # annotations in a GitHub workflow
  kubemigrate sql lint -d ./migrations --format sarif > lint.sarif
  kubemigrate sql lint -d ./migrations --rule ban-drop-column=warn --postgres-version 16
  kubemigrate sql lint -d ./migrations --pending --database-url postgres://app@db/app
  kubemigrate sql lint -d ./migrations --trace --database-url postgres://app@db/app
  kubemigrate sql lint --list-rules

Exit codes: 0 no denied rule fired (warnings may be printed), 11 a denied rule
fired, 2 bad input (a file that cannot run as written, a bad ignore comment, an
unknown rule), 6 cannot connect (--pending, --trace with a URL). See docs/safety.md.")]
pub struct Args {
    /// Directory holding the migrations (the *.sql files directly in it).
    #[arg(
        long,
        short = 'd',
        value_name = "DIR",
        required_unless_present = "list_rules"
    )]
    dir: Option<PathBuf>,
    /// Set a psql variable for the files, as for `sql migrate`; repeatable.
    #[arg(long = "set", short = 'v', value_name = "NAME=VALUE", value_parser = crate::args::db::parse_variable)]
    set: Vec<(String, String)>,
    /// How the files are named, ordered and split, as for `sql migrate` (only a
    /// dbmate or goose file's up part is linted).
    #[arg(long, default_value = "native", value_name = "NAME", value_parser = crate::args::db::parse_layout)]
    layout: kubemigrate_sql::source::Layout,
    /// The output: human lines, json (as -o json), sarif (SARIF 2.1.0, for code
    /// scanning) or github (workflow annotations).
    #[arg(long, value_enum, value_name = "FORMAT")]
    format: Option<LintFormat>,
    /// A rule's level for this run: RULE=deny|warn|off; repeatable. Over the
    /// defaults (see --list-rules).
    #[arg(long = "rule", value_name = "RULE=LEVEL", value_parser = parse_rule_level)]
    rules: Vec<(String, Level)>,
    /// The PostgreSQL version the migrations run on (e.g. 16): some rules depend on
    /// it [default: 15].
    #[arg(long, value_name = "VERSION")]
    postgres_version: Option<String>,
    /// The lock_timeout that `sql migrate --statement-lock-timeout` will set for
    /// every file: then a file need not set its own, and require-lock-timeout is off.
    #[arg(long, value_parser = kubemigrate_plan::parse_duration, allow_hyphen_values = true, value_name = "DURATION")]
    statement_lock_timeout: Option<Duration>,
    /// Lint only the files the database (--database-url) has not applied. Reads the
    /// history; takes no lock and changes nothing.
    #[arg(long)]
    pending: bool,
    /// Run the files, one statement at a time, on a throwaway local PostgreSQL, and
    /// report the locks each statement takes and how long it holds them. With
    /// --database-url, that database's schema is copied first (pg_dump
    /// --schema-only) and only its pending files run; without, every file runs on
    /// an empty database.
    #[arg(long, conflicts_with_all = ["pending", "format"])]
    trace: bool,
    /// List the rules, their default level, why and the safe pattern, and exit.
    #[arg(long)]
    list_rules: bool,
    #[command(flatten)]
    conn: ConnArgs,
    #[command(flatten)]
    history: HistoryArgs,
}

/// The outputs of `sql lint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LintFormat {
    /// Lines for people.
    Human,
    /// One JSON document (as `-o json`).
    Json,
    /// SARIF 2.1.0 (GitHub code scanning, other viewers).
    Sarif,
    /// GitHub workflow annotations (`::error file=…,line=…::…`).
    Github,
}

fn parse_rule_level(text: &str) -> Result<(String, Level), String> {
    let (rule, level) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: expected RULE=deny|warn|off"))?;
    if !kubemigrate_lint::rules::is_known(rule) {
        return Err(kubemigrate_lint::LintError::UnknownRule { rule: rule.into() }.to_string());
    }
    Ok((rule.to_string(), level.parse()?))
}

/// Runs the command.
pub async fn run(args: Args, reporter: Reporter) -> CommandResult {
    let format = match (args.format, reporter.json()) {
        (None, json) | (Some(LintFormat::Human), json @ false) => {
            if json {
                LintFormat::Json
            } else {
                LintFormat::Human
            }
        }
        (Some(f), false) => f,
        (Some(LintFormat::Json), true) => LintFormat::Json,
        (Some(f), true) => {
            let name = if f == LintFormat::Sarif {
                "sarif"
            } else {
                "github"
            };
            return Err(Failure::new(
                Exit::Usage,
                anyhow!("-o json and --format {name} ask for two outputs; give one of them"),
            ));
        }
    };
    if args.list_rules {
        return list_rules(format);
    }
    let Some(dir) = args.dir.clone() else {
        return Err(Failure::new(Exit::Usage, anyhow!("--dir is required")));
    };
    let dir_args = DirArgs {
        dir,
        set: args.set.clone(),
        layout: args.layout,
        allow_empty: true,
        include_root: None,
    };
    let mut policy = Policy::new();
    for (rule, level) in &args.rules {
        policy
            .set(rule, *level)
            .map_err(|e| Failure::new(Exit::Usage, anyhow!(e).context("--rule")))?;
    }
    if let Some(v) = &args.postgres_version {
        policy
            .set_postgres_version(v)
            .map_err(|e| Failure::new(Exit::Usage, anyhow!(e).context("--postgres-version")))?;
    }
    policy.set_kubemigrate_sets_lock_timeout(args.statement_lock_timeout.is_some());
    // The trace runs the files and --pending asks the engine for their status, so
    // they need them lexed; the lint alone lexes each file itself.
    let source = if args.trace || args.pending {
        dir_args.source()?
    } else {
        dir_args.source_lexed_later()?
    };
    for w in &source.warnings {
        reporter.warn(&w.0);
    }
    if args.trace {
        return super::lint_trace::run(&args.conn, &args.history, &dir_args, &source, reporter)
            .await;
    }
    let only = if args.pending {
        Some(pending_versions(&args.conn, &args.history, &source).await?)
    } else {
        None
    };
    let vars = dir_args.variables();
    let report = kubemigrate_lint::lint_source(&source, &vars, &policy, only.as_ref())
        .map_err(|e| Failure::new(Exit::Usage, e))?;
    let exit = if report.denied() {
        Exit::LintDenied
    } else {
        Exit::Ok
    };
    let failure =
        (exit != Exit::Ok).then(|| denied_failure(&report, &source.dir.display().to_string()));
    match format {
        LintFormat::Human => {
            print_human(&report, &mut std::io::stdout().lock());
            if let Some(f) = &failure {
                reporter.error(f);
            }
        }
        LintFormat::Json => {
            let result = LintJson {
                dir: source.dir.display().to_string(),
                denied: report.count(Level::Deny),
                warnings: report.count(Level::Warn),
                ignored: report.files.iter().map(|f| f.ignored).sum(),
                files: &report.files,
            };
            // `--format json` without `-o json` asks for the same one document.
            Reporter::new(Format::Json).finish("sql lint", Some(&result), exit, failure.as_ref());
        }
        LintFormat::Sarif => {
            print_stdout(&serde_json::to_string_pretty(&sarif(&report)).unwrap_or_default());
            if let Some(f) = &failure {
                reporter.error(f);
            }
        }
        LintFormat::Github => {
            print_stdout(&github(&report));
            if let Some(f) = &failure {
                reporter.error(f);
            }
        }
    }
    Ok(exit)
}

/// `sql lint`'s result in the JSON document.
#[derive(Debug, serde::Serialize)]
struct LintJson<'a> {
    dir: String,
    denied: usize,
    warnings: usize,
    ignored: usize,
    files: &'a [kubemigrate_lint::FileLint],
}

impl Output for LintJson<'_> {
    /// Written straight: 10,000 files' findings through a `serde_json::Value` took
    /// an eighth of a `sql lint` run (`bench/lint`). The keys are in alphabetical
    /// order here and in [`kubemigrate_lint::FileLint`] and
    /// [`kubemigrate_lint::Finding`]; debug builds compare the result with the
    /// sorted document.
    fn json_document(&self, envelope: &Envelope<'_>) -> Option<Vec<u8>> {
        #[derive(serde::Serialize)]
        struct Document<'a> {
            command: &'a str,
            denied: usize,
            dir: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            error: Option<&'a str>,
            exit_code: u8,
            files: &'a [kubemigrate_lint::FileLint],
            ignored: usize,
            ok: bool,
            outcome: &'a str,
            warnings: usize,
        }
        serde_json::to_vec_pretty(&Document {
            command: envelope.command,
            denied: self.denied,
            dir: &self.dir,
            error: envelope.error.as_deref(),
            exit_code: envelope.exit_code,
            files: self.files,
            ignored: self.ignored,
            ok: envelope.ok,
            outcome: envelope.outcome,
            warnings: self.warnings,
        })
        .ok()
    }
}

/// The versions the database has not applied (its history read without the lock).
async fn pending_versions(
    conn: &ConnArgs,
    history: &HistoryArgs,
    source: &Source,
) -> Result<HashSet<String>, Failure> {
    let options = conn.options()?;
    let mut events = |e: Event| {
        if let Event::Warning { message } = e {
            eprintln!("warning: {message}");
        }
    };
    let (report, _) = migrator::status(&options, source, &history.table(), &mut events)
        .await
        .map_err(Failure::from_engine)?;
    Ok(report
        .files
        .into_iter()
        .filter(|f| f.status == FileStatus::Pending)
        .map(|f| f.version.to_string())
        .collect())
}

/// The error that ends a lint where a denied rule fired.
pub fn denied_failure(report: &Report, what: &str) -> Failure {
    let n = report.count(Level::Deny);
    let files: Vec<&str> = report
        .files
        .iter()
        .filter(|f| f.findings.iter().any(|x| x.level == Level::Deny))
        .map(|f| f.version.as_str())
        .collect();
    let first = report
        .findings()
        .find(|f| f.level == Level::Deny)
        .map(|f| {
            format!(
                ", the first at {}:{}:{} ({})",
                kubemigrate_sql::source::printable_path(&f.file),
                f.line,
                f.column,
                f.rule
            )
        })
        .unwrap_or_default();
    // One line: a long list is cut (the findings above name every file).
    let listed = if files.len() > 5 {
        format!(
            "{} and {} more files",
            files[..5].join(", "),
            files.len() - 5
        )
    } else {
        files.join(", ")
    };
    Failure::new(
        Exit::LintDenied,
        anyhow!(
            "{what}: {n} finding{} of denied lint rules in {listed}{first}; use the safe pattern, or silence one statement with `-- kubemigrate:lint-ignore RULE reason`",
            if n == 1 { "" } else { "s" },
        ),
    )
}

fn print_stdout(text: &str) {
    let mut out = std::io::stdout().lock();
    // A closed stdout (`| head`) is not worth a panic.
    let _ = writeln!(out, "{text}");
}

/// One finding for people: the place, the rule and why; the line; the safe pattern.
pub fn format_finding(f: &Finding) -> String {
    let mut s = f.to_string();
    if !f.line_text.is_empty() {
        s.push_str(&format!("\n  {} | {}", f.line, f.line_text.trim_end()));
    }
    if !f.message.is_empty() && f.message != f.why {
        s.push_str(&format!("\n  = {}", f.message));
    }
    if !f.safe.is_empty() {
        s.push_str(&format!("\n  safe: {}", f.safe));
    }
    s
}

/// Findings for people, and a summary line.
pub fn print_human(report: &Report, out: &mut dyn Write) {
    for f in report.findings() {
        let _ = writeln!(out, "{}", format_finding(f));
    }
    let _ = writeln!(out, "{}", summary(report));
}

/// `linted 4 files (9 statements): 2 denied, 1 warning, 1 ignored`.
pub fn summary(report: &Report) -> String {
    let files = report.files.len();
    let statements: usize = report.files.iter().map(|f| f.statements).sum();
    let ignored: usize = report.files.iter().map(|f| f.ignored).sum();
    let warn = report.count(Level::Warn);
    format!(
        "linted {files} file{} ({statements} statement{}): {} denied, {warn} warning{}, {ignored} ignored",
        if files == 1 { "" } else { "s" },
        if statements == 1 { "" } else { "s" },
        report.count(Level::Deny),
        if warn == 1 { "" } else { "s" },
    )
}

/// A path for annotations: as given, without a leading `./`.
fn relative(path: &std::path::Path) -> String {
    let p = path.strip_prefix("./").unwrap_or(path);
    p.display().to_string()
}

/// A SARIF artifact URI: a relative path as it is (viewers resolve it against the
/// repository), an absolute one as a `file://` URI; `%`, spaces, `#` and `?`
/// escaped.
fn uri(path: &std::path::Path) -> String {
    let text = relative(path)
        .replace('%', "%25")
        .replace(' ', "%20")
        .replace('#', "%23")
        .replace('?', "%3F");
    if path.is_absolute() {
        format!("file://{text}")
    } else {
        text
    }
}

/// The report as SARIF 2.1.0: one run, the rules that fired, one result each.
pub fn sarif(report: &Report) -> serde_json::Value {
    let mut rule_ids: Vec<&str> = report.findings().map(|f| f.rule).collect();
    rule_ids.sort_unstable();
    rule_ids.dedup();
    let rules: Vec<serde_json::Value> = rule_ids
        .iter()
        .map(|id| {
            let info = kubemigrate_lint::rules::rule(id);
            let example = report.findings().find(|f| f.rule == *id);
            let why = info
                .map(|r| r.why)
                .filter(|w| !w.is_empty())
                .map(str::to_string)
                .or_else(|| example.map(|f| f.why.clone()))
                .unwrap_or_default();
            let safe = info
                .map(|r| r.safe)
                .filter(|w| !w.is_empty())
                .map(str::to_string)
                .or_else(|| example.map(|f| f.safe.clone()))
                .unwrap_or_default();
            serde_json::json!({
                "id": id,
                "name": id,
                "shortDescription": {"text": why},
                "help": {"text": safe},
            })
        })
        .collect();
    let results: Vec<serde_json::Value> = report
        .findings()
        .map(|f| {
            serde_json::json!({
                "ruleId": f.rule,
                "ruleIndex": rule_ids.iter().position(|r| *r == f.rule).unwrap_or(0),
                "level": if f.level == Level::Deny { "error" } else { "warning" },
                "message": {"text": format!("{}. Safe pattern: {}", f.why, f.safe)},
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": {"uri": uri(&f.file)},
                        "region": {"startLine": f.line, "startColumn": f.column},
                    }
                }],
            })
        })
        .collect();
    serde_json::json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "kubemigrate",
                "semanticVersion": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "results": results,
        }],
    })
}

/// The report as GitHub workflow commands: `::error file=F,line=L,col=C,title=RULE::why`.
pub fn github(report: &Report) -> String {
    // GitHub's escaping of workflow command values and properties.
    fn data(s: &str) -> String {
        s.replace('%', "%25")
            .replace('\r', "%0D")
            .replace('\n', "%0A")
    }
    fn property(s: &str) -> String {
        data(s).replace(':', "%3A").replace(',', "%2C")
    }
    let mut out = Vec::new();
    for f in report.findings() {
        out.push(format!(
            "::{} file={},line={},col={},title={}::{}",
            if f.level == Level::Deny {
                "error"
            } else {
                "warning"
            },
            property(&relative(&f.file)),
            f.line,
            f.column,
            property(&format!("kubemigrate lint: {}", f.rule)),
            data(&format!("{}. Safe pattern: {}", f.why, f.safe))
        ));
    }
    out.push(summary(report));
    out.join("\n")
}

fn list_rules(format: LintFormat) -> CommandResult {
    let all = kubemigrate_lint::catalogue();
    if format == LintFormat::Json {
        let rules: Vec<serde_json::Value> = all
            .iter()
            .map(|r| {
                serde_json::json!({
                    "id": r.id, "default": r.default.as_str(), "own": r.own,
                    "why": r.why, "safe": r.safe,
                })
            })
            .collect();
        print_stdout(
            &serde_json::to_string_pretty(&serde_json::json!({
                "command": "sql lint", "ok": true, "exit_code": 0, "outcome": "ok", "rules": rules,
            }))
            .unwrap_or_default(),
        );
        return Ok(Exit::Ok);
    }
    let mut out = String::new();
    for r in all.iter().filter(|r| r.default != Level::Off) {
        out.push_str(&format!(
            "{:<45} {}\n  why: {}\n  safe: {}\n",
            r.id,
            r.default.as_str(),
            r.why,
            r.safe
        ));
    }
    out.push_str(
        "\nOff by default (squawk's; turn on with --rule RULE=warn or a plan's lint.rules):\n",
    );
    for r in all.iter().filter(|r| r.default == Level::Off) {
        out.push_str(&format!("  {}\n", r.id));
    }
    print_stdout(out.trim_end());
    Ok(Exit::Ok)
}

/// The plan's `lint` rule names that no rule has, as located errors (the plan
/// crate does not know the linter's rules).
pub fn unknown_plan_rules(
    loaded: &kubemigrate_plan::LoadedPlan,
) -> Vec<kubemigrate_plan::Diagnostic> {
    use kubemigrate_plan::FieldPath;
    let mut out = Vec::new();
    let mut check = |path: FieldPath, lint: &Option<kubemigrate_plan::LintPolicy>| {
        let Some(lint) = lint else { return };
        for rule in lint.rules.keys() {
            if !kubemigrate_lint::rules::is_known(rule) {
                out.push(loaded.error_at(
                    path.key("rules").key(rule),
                    kubemigrate_lint::LintError::UnknownRule { rule: rule.clone() }.to_string(),
                ));
            }
        }
    };
    check(FieldPath::of(&["spec", "lint"]), &loaded.plan.spec.lint);
    for (i, t) in loaded.plan.spec.targets.iter().enumerate() {
        check(
            FieldPath::of(&["spec", "targets"]).index(i).key("lint"),
            &t.lint,
        );
    }
    out
}

/// A plan's `lint` as a policy.
fn plan_policy(lint: Option<&kubemigrate_plan::LintPolicy>) -> Policy {
    let mut p = Policy::new();
    if let Some(lint) = lint {
        for (rule, level) in &lint.rules {
            let level = match level {
                kubemigrate_plan::LintLevel::Deny => Level::Deny,
                kubemigrate_plan::LintLevel::Warn => Level::Warn,
                kubemigrate_plan::LintLevel::Off => Level::Off,
            };
            // Names were checked when the plan was loaded.
            let _ = p.set(rule, level);
        }
        if let Some(v) = &lint.postgres_version {
            let _ = p.set_postgres_version(v);
        }
    }
    p
}

/// Lints each enabled SQL target whose files are next to the plan (`localDir`),
/// with the plan's and the target's `lint` policy; prints the findings on stderr.
///
/// # Errors
/// Exit 11 when a denied rule fired (every target is linted first), 2 when a
/// target's files cannot be read.
pub fn lint_plan(loaded: &kubemigrate_plan::LoadedPlan) -> Result<(), Failure> {
    let plan_level = plan_policy(loaded.plan.spec.lint.as_ref());
    let mut denied = Vec::new();
    for t in loaded.plan.spec.targets.iter().filter(|t| t.enabled) {
        let Some(sql) = &t.sql else { continue };
        let Some(dir) = &sql.local_dir else { continue };
        if sql.image.is_some() || sql.engine != kubemigrate_plan::Engine::Native {
            continue;
        }
        let mut policy = plan_level.overridden_by(&plan_policy(t.lint.as_ref()));
        // The target's lockTimeout is set for every file: the rule that asks for
        // one has nothing to say.
        policy.set_kubemigrate_sets_lock_timeout(sql.lock_timeout.is_some());
        let dir = loaded.resolve_path(dir);
        let vars = kubemigrate_sql::script::Variables::new();
        // The plan's layout names are the engine's (a test pins that).
        let options = kubemigrate_sql::source::SourceOptions {
            layout: kubemigrate_sql::source::Layout::parse(sql.layout.name())
                .map_err(|e| Failure::new(Exit::Usage, anyhow!(e)))?,
            ..Default::default()
        };
        let source = Source::read(&dir, &vars, &options).map_err(|e| {
            Failure::new(
                Exit::Usage,
                anyhow!(e).context(format!("target {}", t.name)),
            )
        })?;
        let report = kubemigrate_lint::lint_source(&source, &vars, &policy, None).map_err(|e| {
            Failure::new(
                Exit::Usage,
                anyhow!(e).context(format!("target {}", t.name)),
            )
        })?;
        let mut err = std::io::stderr().lock();
        for f in report.findings() {
            // Denied findings in full; warnings on one line.
            let text = if f.level == Level::Deny {
                format_finding(f)
            } else {
                f.to_string()
            };
            let _ = writeln!(err, "lint: target {}: {text}", t.name);
        }
        if let Some(first) = report.findings().find(|f| f.level == Level::Deny) {
            let n = report.count(Level::Deny);
            denied.push(format!(
                "target {}: {n} finding{} of denied lint rules, the first at {}:{}:{} ({})",
                t.name,
                if n == 1 { "" } else { "s" },
                kubemigrate_sql::source::printable_path(&first.file),
                first.line,
                first.column,
                first.rule
            ));
        }
    }
    if denied.is_empty() {
        return Ok(());
    }
    Err(Failure::new(
        Exit::LintDenied,
        anyhow!(
            "{}; use the safe pattern, silence one statement with `-- kubemigrate:lint-ignore RULE reason`, or lower the rule in the plan's `lint.rules`",
            denied.join("; ")
        ),
    ))
}
