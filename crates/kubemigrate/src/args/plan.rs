//! What the plan commands (`validate`, `render`) share: the `-f` flag, loading the
//! plan with every error printed as `file:line:column: field: message`, and
//! gathering and rendering its objects.

use std::path::PathBuf;

use anyhow::anyhow;
use kubemigrate_plan::{Diagnostic, LoadedPlan, PlanError};
use kubemigrate_render::{Gathered, Hooks, Options, Rendered};

use crate::exit::{Exit, Failure};

/// The plan file.
#[derive(Debug, Clone, clap::Args)]
pub struct PlanArgs {
    /// The plan file (`-` reads standard input).
    #[arg(
        long = "filename",
        short = 'f',
        value_name = "FILE",
        default_value = "plan.yaml"
    )]
    pub file: PathBuf,
}

/// The runner image a plan uses when it names none: this build's version.
pub fn default_runner_image() -> String {
    format!("kubemigrate/kubemigrate:{}", env!("CARGO_PKG_VERSION"))
}

/// Prints each diagnostic on its own line (stderr) and returns the failure that
/// ends the command: exit 2, "N errors in FILE".
pub fn invalid(file: &std::path::Path, diagnostics: &[Diagnostic]) -> Failure {
    for d in diagnostics {
        eprintln!("error: {d}");
    }
    let n = diagnostics.len();
    Failure::new(
        Exit::Usage,
        anyhow!(
            "{} is not a valid plan ({n} error{})",
            file.display(),
            if n == 1 { "" } else { "s" }
        ),
    )
}

/// Loads the plan and prints its warnings.
///
/// # Errors
/// Exit 2 when the file cannot be read or is not a valid plan.
pub fn load(args: &PlanArgs) -> Result<LoadedPlan, Failure> {
    match kubemigrate_plan::load(&args.file) {
        Ok(loaded) => {
            let unknown = crate::commands::sql::lint::unknown_plan_rules(&loaded);
            if !unknown.is_empty() {
                return Err(invalid(&args.file, &unknown));
            }
            for w in &loaded.warnings {
                eprintln!("{w}");
            }
            Ok(loaded)
        }
        Err(PlanError::Invalid(diagnostics)) => Err(invalid(&args.file, &diagnostics)),
        Err(e @ PlanError::Read { .. }) => Err(Failure::new(Exit::Usage, e)),
    }
}

/// Reads what the plan points at and builds its objects.
///
/// # Errors
/// Exit 2 with every credential, directory or name problem found.
pub fn render(
    loaded: &LoadedPlan,
    run_id: String,
    hooks: Option<Hooks>,
    redact: bool,
) -> Result<(Gathered, Rendered), Failure> {
    let env = |name: &str| std::env::var(name).ok();
    let gathered =
        kubemigrate_render::gather(loaded, &env, redact).map_err(|d| invalid(&loaded.file, &d))?;
    let options = Options {
        run_id,
        hooks,
        default_runner_image: default_runner_image(),
    };
    let rendered = kubemigrate_render::build(loaded, &gathered, &options)
        .map_err(|d| invalid(&loaded.file, &d))?;
    Ok((gathered, rendered))
}

/// A fresh run id: 8 random hexadecimal digits, as the Terraform module's
/// `random_id` suffixes.
///
/// # Errors
/// The system's random source cannot be read.
fn random_run_id() -> Result<String, Failure> {
    use std::io::Read;
    let mut bytes = [0u8; 4];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| {
            Failure::new(
                Exit::Internal,
                anyhow!("cannot read /dev/urandom for a run id: {e}"),
            )
        })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The given `--run-id`, else a fresh random one.
///
/// # Errors
/// The system's random source cannot be read.
pub fn run_id_or_random(given: Option<&str>) -> Result<String, Failure> {
    match given {
        Some(id) => Ok(id.to_string()),
        None => random_run_id(),
    }
}

/// Checks a `--run-id`: a DNS-1123 label of at most 20 characters.
pub fn parse_run_id(s: &str) -> Result<String, String> {
    kubemigrate_plan::values::check_dns_label(s)?;
    if s.len() > 20 {
        return Err(format!("{s:?} is {} characters; at most 20", s.len()));
    }
    Ok(s.to_string())
}
