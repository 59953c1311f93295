//! The commands, one file each (the `sql` ones in `sql/`).

pub mod apply;
#[cfg(feature = "cluster")]
pub mod cleanup;
pub mod demo;
pub mod exec;
pub mod import;
pub mod install_runner;
#[cfg(feature = "cluster")]
pub mod logs;
pub mod render;
pub mod schema;
pub mod sql;
#[cfg(feature = "cluster")]
pub mod status;
pub mod validate;
pub mod wait_for_db;
