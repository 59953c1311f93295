//! The contract: the names and numbers that kubemigrate's crates, the Jobs it
//! renders and its documentation agree on, each defined once.
//!
//! - [`exit`]: exit codes, their names in JSON output, what they mean, and which
//!   of them a Job's pod failure policy treats as final.
//! - [`env`]: the environment variables a runner reads its connection from.
//! - [`k8s`]: label keys, the field manager, and the names of a Job's containers.
//! - [`SslMode`]: libpq's `sslmode`.
//!
//! The crate has no dependency of its own (serde and schemars behind the `serde`
//! feature), so every other crate may use it.

pub mod env;
pub mod exit;
pub mod k8s;
mod ssl;

pub use exit::Exit;
pub use ssl::{SslMode, UnknownSslMode};
