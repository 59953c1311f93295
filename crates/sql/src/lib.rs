//! kubemigrate's PostgreSQL migration engine.
//!
//! The pieces, in the order a run uses them:
//! - [`connect`]: connection settings (URL, libpq and `DB_*` variables) and TLS;
//! - [`resolve`]: host names to addresses from `/etc/hosts` and DNS, without the C
//!   library, so that a static executable resolves names in any image;
//! - [`source`]: discovery of the `*.sql` files of a directory and their checksums;
//! - [`lexer`]: the statement splitter that knows PostgreSQL's and psql's quoting;
//! - [`history`]: the history table;
//! - [`lock`]: the advisory lock that keeps one migrator per database at a time;
//! - [`migrator`]: reconciles files with history and applies what is pending,
//!   reporting [`events::Event`]s as it goes.
//!
//! This crate links no Kubernetes crate: it is what runs inside the migration Job.

pub mod connect;
pub mod events;
pub mod history;
pub mod lexer;
pub mod lock;
pub mod migrator;
pub mod resolve;
pub mod script;
pub mod source;
pub mod wait;
