//! `kubemigrate sql …`: the engine's commands over a directory of migrations.

pub mod baseline;
pub mod migrate;
pub mod repair;
pub mod status;
