//! `kubemigrate schema`: the plan's JSON Schema.

use crate::exit::{CommandResult, Exit};
use crate::output::Reporter;

/// Print the JSON Schema of plan files, so editors and linters check them.
///
/// With the YAML language server (VS Code's YAML extension, Neovim, Helix), save it
/// and point plan files at it with a first line such as
/// `# yaml-language-server: $schema=./kubemigrate-plan.schema.json`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  kubemigrate schema > kubemigrate-plan.schema.json
  check-jsonschema --schemafile kubemigrate-plan.schema.json plan.yaml")]
pub struct Args {}

/// Runs the command.
pub async fn run(_args: Args, _reporter: Reporter) -> CommandResult {
    let schema = kubemigrate_plan::json_schema();
    println!(
        "{}",
        serde_json::to_string_pretty(&schema).unwrap_or_default()
    );
    Ok(Exit::Ok)
}
