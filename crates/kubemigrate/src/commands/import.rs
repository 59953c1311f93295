//! `kubemigrate import terraform-vars`: the plan equivalent to a `.tfvars` file of the
//! Terraform migrations module. The reading and the conversion are the
//! `kubemigrate-import` crate's; this prints the plan or writes it, and reports.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::exit::{CommandResult, Exit, Failure};
use crate::output::{self, Reporter};

/// Convert another tool's configuration into a kubemigrate plan.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    // The help text is the doc comment of TerraformVarsArgs (a doc comment here would
    // replace it), as for the other commands.
    TerraformVars(TerraformVarsArgs),
}

impl Command {
    /// The command's name in messages and JSON.
    pub fn name(&self) -> &'static str {
        match self {
            Command::TerraformVars(_) => "import terraform-vars",
        }
    }
}

/// Print the plan equivalent to a .tfvars file of the Terraform migrations module.
///
/// Reads the module's variables (control_plane_db_host, supabase_migration_image,
/// migration_resources, …) from a .tfvars file, or from a .tfvars.json file when the
/// name ends in .json, and prints a MigrationPlan with three targets: control-plane,
/// supabase and components-v2. Every variable the file does not set gets the module's
/// default, written out in the plan. Passwords are never copied: the plan reads them
/// from CONTROL_PLANE_DB_PASSWORD, SUPABASE_DB_PASSWORD and COMPONENTS_V2_DB_PASSWORD.
/// Unknown variables are warnings; a value of the wrong type, or a host or user the
/// module requires but the file does not set, is an error (exit 2).
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  kubemigrate import terraform-vars prod.tfvars > plan.yaml
  kubemigrate import terraform-vars prod.tfvars.json --name ananta-prod --write plan.yaml
  See docs/migrating-from-terraform.md.")]
pub struct TerraformVarsArgs {
    /// The variable file: HCL (.tfvars), or JSON when the name ends in .json.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// The plan's name (metadata.name): a DNS-1123 label.
    #[arg(long, default_value = "ananta", value_parser = parse_plan_name, value_name = "NAME")]
    name: String,
    /// Write the plan to this file instead of stdout. An existing file is kept unless --force.
    #[arg(long, short = 'w', value_name = "PLAN")]
    write: Option<PathBuf>,
    /// With --write: replace the file if it exists.
    #[arg(long, requires = "write")]
    force: bool,
}

fn parse_plan_name(name: &str) -> Result<String, kubemigrate_import::InvalidPlanName> {
    kubemigrate_import::check_plan_name(name).map(|()| name.to_string())
}

/// Runs an import command.
pub fn run(command: Command, reporter: Reporter) -> CommandResult {
    match command {
        Command::TerraformVars(args) => terraform_vars(args, reporter),
    }
}

fn terraform_vars(args: TerraformVarsArgs, reporter: Reporter) -> CommandResult {
    if reporter.json() {
        return Err(Failure::new(
            Exit::Usage,
            anyhow::anyhow!("import terraform-vars prints a YAML plan; -o json is not supported"),
        ));
    }
    let imported = kubemigrate_import::terraform_vars(&args.file, &args.name).map_err(|error| {
        let detail = match &error {
            kubemigrate_import::Error::Invalid { problems, .. } if problems.len() > 1 => {
                problems.iter().map(ToString::to_string).collect()
            }
            _ => Vec::new(),
        };
        Failure {
            exit: Exit::Usage,
            error: error.into(),
            detail,
        }
    })?;
    for warning in &imported.warnings {
        reporter.warn(&warning.to_string());
    }
    match &args.write {
        None => {
            let mut out = std::io::stdout().lock();
            // A closed stdout (`| head`) must not turn into a panic.
            let _ = out.write_all(imported.yaml.as_bytes());
            let _ = out.flush();
        }
        Some(path) => {
            write_plan(path, &imported.yaml, args.force)?;
            reporter.line(&format!("wrote the plan to {}", path.display()));
        }
    }
    let mut err = std::io::stderr().lock();
    let file = args.file.display().to_string();
    for line in output::human::password_note(&file, &imported.passwords) {
        let _ = writeln!(err, "{line}");
    }
    Ok(Exit::Ok)
}

fn write_plan(path: &Path, yaml: &str, force: bool) -> Result<(), Failure> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Failure::new(
                Exit::Usage,
                anyhow::anyhow!(
                    "{}: the file exists; pass --force to replace it",
                    path.display()
                ),
            )
        } else {
            Failure::new(
                Exit::Internal,
                anyhow::anyhow!("{}: cannot write: {e}", path.display()),
            )
        }
    })?;
    file.write_all(yaml.as_bytes()).map_err(|e| {
        Failure::new(
            Exit::Internal,
            anyhow::anyhow!("{}: cannot write: {e}", path.display()),
        )
    })
}
