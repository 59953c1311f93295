//! `kubemigrate sql …`: the engine's commands over a directory of migrations.

pub mod adopt;
pub mod baseline;
pub mod lint;
pub mod lint_trace;
pub mod migrate;
pub mod repair;
pub mod status;
