//! Argument groups that several commands share, and what they build: the plan and
//! its objects, the cluster, the database connection and history.

#[cfg(feature = "cluster")]
pub mod cluster;
pub mod db;
pub mod plan;
