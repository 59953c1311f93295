//! kubemigrate's PostgreSQL migration engine.
//!
//! The pieces, in the order a run uses them:
//! - [`connect`]: connection settings (URL, libpq and `DB_*` variables) and TLS;
//! - [`resolve`]: host names to addresses from `/etc/hosts` and DNS, without the C
//!   library, so that a static executable resolves names in any image;
//! - the files themselves come from `kubemigrate-script` (re-exported as
//!   [`lexer`], [`script`] and [`source`]): the statements of each `*.sql` file of a
//!   directory, as psql would run them, and their checksums;
//! - [`history`]: the history table;
//! - [`lock`]: the advisory lock that keeps one migrator per database at a time;
//! - [`migrator`]: reconciles files with history and applies what is pending,
//!   reporting [`events::Event`]s as it goes.
//!
//! This crate links no Kubernetes crate: it is what runs inside the migration Job.

pub mod connect;
pub mod events;
pub mod history;
pub mod lock;
pub mod migrator;
pub mod resolve;
pub mod wait;

pub use kubemigrate_script::{lexer, script, source};
