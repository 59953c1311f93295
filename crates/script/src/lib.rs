//! psql-compatible migration files, read without a database.
//!
//! - [`lexer`]: splits SQL into statements the way PostgreSQL and psql quote,
//!   comment and dollar-quote it, and finds psql's meta-commands;
//! - [`script`]: reads a file as psql would run it (variables, `\i`/`\ir`,
//!   `\if`, `\copy`), as a stream, with its checksum;
//! - [`source`]: the `*.sql` files of a directory, in order, each read through once
//!   before anything connects;
//! - [`layout`]: how other tools (Flyway, golang-migrate, dbmate, goose, sqlx, diesel,
//!   postgres-migrations, Supabase) name, order and split their files.
//!
//! The engine (`kubemigrate-sql`) runs what this crate reads; the fuzz target in
//! `fuzz/` and the linter read it too.

pub mod layout;
pub mod lexer;
pub mod script;
pub mod source;
