//! The rule catalogue: every rule `kubemigrate sql lint` knows, whether it is on by
//! default, and for the rules on by default why the statement is unsafe and what
//! to write instead.
//!
//! Most rules are squawk's (same ids, same checks); the few that squawk lacks are
//! ours ([`OWN_RULES`]).

use std::sync::OnceLock;

use squawk_linter::Rule;

use crate::Level;

/// One rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleInfo {
    /// The rule's id (`require-concurrent-index-creation`).
    pub id: &'static str,
    /// The level it has when no policy names it.
    pub default: Level,
    /// Why a statement it flags is unsafe; empty for rules off by default, whose
    /// findings carry squawk's own explanation.
    pub why: &'static str,
    /// The safe pattern; empty for rules off by default (squawk's help is used).
    pub safe: &'static str,
    /// True when the rule is kubemigrate's own, not squawk's.
    pub own: bool,
}

/// A statement PostgreSQL refuses inside a transaction block, in a file kubemigrate
/// wraps in one (ours: squawk checks only `CREATE INDEX CONCURRENTLY`, and only in
/// files of more than one statement).
pub const NO_TRANSACTION_REQUIRED: &str = "no-transaction-required";
/// squawk could not parse a statement, so no other rule looked at it (ours).
pub const SYNTAX_ERROR: &str = "syntax-error";
/// A `-- kubemigrate:lint-ignore` comment that silenced nothing (ours).
pub const UNUSED_IGNORE: &str = "unused-ignore";
/// squawk's rule for a missing `SET lock_timeout`: on by default, and turned off
/// for runs where kubemigrate sets `lock_timeout` itself.
pub const REQUIRE_LOCK_TIMEOUT: &str = "require-lock-timeout";

/// kubemigrate's own rules, with the rules on by default.
pub const OWN_RULES: &[&str] = &[NO_TRANSACTION_REQUIRED, SYNTAX_ERROR, UNUSED_IGNORE];

/// The rules on by default (at `deny`, unless said otherwise), with why and the
/// safe pattern. The order is the order of docs/safety.md.
const DEFAULTS: &[(&str, Level, &str, &str)] = &[
    (
        "require-concurrent-index-creation",
        Level::Deny,
        "CREATE INDEX without CONCURRENTLY takes a SHARE lock on the table: every INSERT, UPDATE and DELETE waits until the index is built",
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS … in a file of its own with `-- kubemigrate:no-transaction` (a table created in the same transaction is exempt)",
    ),
    (
        "require-concurrent-index-deletion",
        Level::Deny,
        "DROP INDEX without CONCURRENTLY takes an ACCESS EXCLUSIVE lock on the table: reads and writes wait",
        "DROP INDEX CONCURRENTLY IF EXISTS … in a file of its own with `-- kubemigrate:no-transaction`",
    ),
    (
        "ban-concurrent-index-creation-in-transaction",
        Level::Deny,
        "CREATE INDEX CONCURRENTLY cannot run inside a transaction block, and kubemigrate runs this file in one: it fails with SQLSTATE 25001",
        "put `-- kubemigrate:no-transaction` in the file's first comment lines, and keep the statement alone in its file",
    ),
    (
        NO_TRANSACTION_REQUIRED,
        Level::Deny,
        "this statement cannot run inside a transaction block (DROP INDEX CONCURRENTLY, REINDEX CONCURRENTLY, VACUUM, CREATE or DROP DATABASE, ALTER SYSTEM), and kubemigrate runs this file in one: it fails with SQLSTATE 25001",
        "put `-- kubemigrate:no-transaction` in the file's first comment lines, and keep the statement alone in its file",
    ),
    (
        "adding-required-field",
        Level::Deny,
        "adding a NOT NULL column without a DEFAULT fails on a table that has rows, and breaks the running version's INSERTs that do not name the column",
        "add the column nullable (or with a constant DEFAULT), backfill it in batches, then add a CHECK (col IS NOT NULL) NOT VALID constraint and VALIDATE it",
    ),
    (
        "adding-not-nullable-field",
        Level::Deny,
        "SET NOT NULL scans the whole table under an ACCESS EXCLUSIVE lock: reads and writes wait",
        "ALTER TABLE t ADD CONSTRAINT c CHECK (col IS NOT NULL) NOT VALID; then, in a later file, VALIDATE CONSTRAINT c; SET NOT NULL (PostgreSQL 12+ then skips the scan); DROP CONSTRAINT c",
    ),
    (
        "constraint-missing-not-valid",
        Level::Deny,
        "adding a CHECK or FOREIGN KEY constraint without NOT VALID scans the whole table while it holds a lock that blocks writes",
        "ADD CONSTRAINT … NOT VALID in one file, then ALTER TABLE … VALIDATE CONSTRAINT … in a later file (validation takes only a SHARE UPDATE EXCLUSIVE lock)",
    ),
    (
        "adding-foreign-key-constraint",
        Level::Deny,
        "adding a foreign key takes a SHARE ROW EXCLUSIVE lock on both tables and scans the referencing one: writes to both wait",
        "ADD CONSTRAINT … FOREIGN KEY … NOT VALID in one file, then VALIDATE CONSTRAINT in a later file (a table created in the same file is exempt)",
    ),
    (
        "disallowed-unique-constraint",
        Level::Deny,
        "adding a UNIQUE constraint builds its index under an ACCESS EXCLUSIVE lock: reads and writes wait",
        "CREATE UNIQUE INDEX CONCURRENTLY … in a no-transaction file, then ALTER TABLE … ADD CONSTRAINT … UNIQUE USING INDEX …",
    ),
    (
        "changing-column-type",
        Level::Deny,
        "ALTER COLUMN … TYPE takes an ACCESS EXCLUSIVE lock and usually rewrites the table and its indexes; the running version may not read the new type",
        "add a new column of the new type, write both columns from the application, backfill in batches, switch reads, then drop the old column in a later release",
    ),
    (
        "adding-field-with-default",
        Level::Deny,
        "a volatile DEFAULT (random(), clock_timestamp(), gen_random_uuid()…) or a generated column rewrites the whole table under an ACCESS EXCLUSIVE lock (before PostgreSQL 11, any DEFAULT does)",
        "add the column without the default (or with a constant one), set the default with ALTER COLUMN … SET DEFAULT, and backfill existing rows in batches",
    ),
    (
        "adding-serial-primary-key-field",
        Level::Deny,
        "adding a PRIMARY KEY (a serial id, say) to an existing table builds its index under an ACCESS EXCLUSIVE lock: reads and writes wait",
        "CREATE UNIQUE INDEX CONCURRENTLY … in a no-transaction file, then ALTER TABLE … ADD CONSTRAINT … PRIMARY KEY USING INDEX …",
    ),
    (
        "renaming-column",
        Level::Deny,
        "the running version of the application still uses the old name: its queries fail from the moment the rename commits",
        "add the new column, write both, backfill, move the readers, and drop the old column in a later release (or keep a view with the old name)",
    ),
    (
        "renaming-table",
        Level::Deny,
        "the running version of the application still uses the old name: its queries fail from the moment the rename commits",
        "create the new table (or rename and leave an updatable view with the old name), move the application, and drop the old name in a later release",
    ),
    (
        "ban-drop-column",
        Level::Deny,
        "the running version of the application may still read or write the column: its queries fail from the moment the drop commits",
        "stop using the column in a release first, then drop it in a later migration (and say so with `-- kubemigrate:lint-ignore ban-drop-column <reason>`)",
    ),
    (
        "ban-drop-table",
        Level::Deny,
        "the running version of the application may still use the table: its queries fail from the moment the drop commits, and the data is gone",
        "stop using the table in a release first, then drop it in a later migration, with `-- kubemigrate:lint-ignore ban-drop-table <reason>`",
    ),
    (
        "ban-drop-database",
        Level::Deny,
        "dropping a database from a migration destroys everything in it",
        "drop databases by hand, outside migrations",
    ),
    (
        "prefer-robust-stmts",
        Level::Deny,
        "this statement runs outside a transaction (a no-transaction file, or outside the file's own BEGIN/COMMIT) and is not idempotent: if the file fails after it, the retry fails on it",
        "make it safe to run twice: CREATE … IF NOT EXISTS, DROP … IF EXISTS, ADD COLUMN IF NOT EXISTS, DROP CONSTRAINT IF EXISTS",
    ),
    (
        REQUIRE_LOCK_TIMEOUT,
        Level::Warn,
        "without lock_timeout, a statement that waits for its lock behind a long transaction blocks every query that comes after it on that table, for as long as it waits",
        "start the file with SET lock_timeout = '5s'; or have kubemigrate set it for every file (`--statement-lock-timeout 5s`), which turns this rule off",
    ),
    (
        SYNTAX_ERROR,
        Level::Warn,
        "squawk cannot parse this statement, so no rule checked it (PostgreSQL may still accept it)",
        "check the statement, or silence this with `-- kubemigrate:lint-ignore syntax-error <reason>`",
    ),
    (
        UNUSED_IGNORE,
        Level::Warn,
        "this `-- kubemigrate:lint-ignore` comment silenced nothing: the rule did not fire on the statement it applies to",
        "remove the comment, or move it to the line before the statement it is meant for",
    ),
];

/// Every rule: the defaults first (in docs order), then squawk's other rules (off).
pub fn catalogue() -> &'static [RuleInfo] {
    static ALL: OnceLock<Vec<RuleInfo>> = OnceLock::new();
    ALL.get_or_init(|| {
        let mut all: Vec<RuleInfo> = DEFAULTS
            .iter()
            .map(|&(id, default, why, safe)| RuleInfo {
                id,
                default,
                why,
                safe,
                own: OWN_RULES.contains(&id),
            })
            .collect();
        for rule in enum_iterator::all::<Rule>() {
            // `require-timeout-settings` is squawk's alias of two rules;
            // `unused-ignore` is squawk's name for a check it does not make.
            if matches!(rule, Rule::RequireTimeoutSettings | Rule::UnusedIgnore) {
                continue;
            }
            let id = squawk_id(rule);
            if all.iter().any(|r| r.id == id) {
                continue;
            }
            all.push(RuleInfo {
                id,
                default: Level::Off,
                why: "",
                safe: "",
                own: false,
            });
        }
        all
    })
}

/// The rule with this id.
pub fn rule(id: &str) -> Option<&'static RuleInfo> {
    catalogue().iter().find(|r| r.id == id)
}

/// Whether `id` names a rule.
pub fn is_known(id: &str) -> bool {
    rule(id).is_some()
}

/// Every rule id, for "did you mean" suggestions.
pub fn ids() -> Vec<&'static str> {
    catalogue().iter().map(|r| r.id).collect()
}

/// squawk's id of a rule, as a `'static` string.
pub(crate) fn squawk_id(rule: Rule) -> &'static str {
    static IDS: OnceLock<Vec<(Rule, &'static str)>> = OnceLock::new();
    let ids = IDS.get_or_init(|| {
        enum_iterator::all::<Rule>()
            .map(|r| (r, &*Box::leak(r.to_string().into_boxed_str())))
            .collect()
    });
    ids.iter()
        .find(|(r, _)| *r == rule)
        .map_or("unknown", |(_, id)| id)
}

/// The squawk rule with this id, if it is one of squawk's.
pub(crate) fn squawk_rule(id: &str) -> Option<Rule> {
    if OWN_RULES.contains(&id) {
        return None;
    }
    id.parse().ok()
}
