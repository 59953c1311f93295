//! Detection: what a directory holds and which layout would read it, for the
//! error of a directory with no migration for its layout.

use std::path::{Path, PathBuf};

use super::Layout;
use super::list::{entries, read_small};

/// What a directory holds, for the error of a directory with no migration for its
/// layout: each finding in words, and the layout that would read it.
pub fn survey(dir: &Path) -> Vec<(String, Layout)> {
    let mut found = Vec::new();
    let Ok(list) = entries(dir) else {
        return found;
    };
    let count = |n: usize, what: &str| format!("{n} {what}");
    let folders_up = list
        .iter()
        .filter(|(_, p, d)| *d && p.join("up.sql").is_file())
        .count();
    if folders_up > 0 {
        found.push((count(folders_up, "folders with up.sql"), Layout::Diesel));
    }
    if dir.join("supabase").join("migrations").is_dir() {
        found.push(("a supabase/migrations folder".to_string(), Layout::Supabase));
    }
    let files: Vec<&(String, PathBuf, bool)> = list.iter().filter(|(_, _, d)| !*d).collect();
    let up = files
        .iter()
        .filter(|(n, _, _)| n.ends_with(".up.sql"))
        .count();
    if up > 0 {
        found.push((count(up, "*.up.sql files"), Layout::GolangMigrate));
    }
    let flyway = files
        .iter()
        .filter(|(n, _, _)| {
            n.ends_with(".sql")
                && (n.starts_with("R__") || Layout::Flyway.version_parts(n).is_some())
        })
        .count();
    if flyway > 0 {
        found.push((count(flyway, "Flyway V…__….sql files"), Layout::Flyway));
    }
    let (mut dbmate, mut goose) = (0, 0);
    for (name, path, _) in &files {
        if !name.ends_with(".sql") {
            continue;
        }
        let head = read_small(path).unwrap_or_default();
        if head
            .lines()
            .any(|l| l.trim_start().starts_with("-- migrate:up"))
        {
            dbmate += 1;
        } else if head
            .lines()
            .any(|l| l.trim().eq_ignore_ascii_case("-- +goose up"))
        {
            goose += 1;
        }
    }
    if dbmate > 0 {
        found.push((count(dbmate, "files with '-- migrate:up'"), Layout::Dbmate));
    }
    if goose > 0 {
        found.push((count(goose, "files with '-- +goose Up'"), Layout::Goose));
    }
    let sql = files.iter().filter(|(n, _, _)| n.ends_with(".sql")).count();
    if sql > 0 && found.is_empty() {
        found.push((count(sql, "*.sql files"), Layout::Native));
    }
    found
}
