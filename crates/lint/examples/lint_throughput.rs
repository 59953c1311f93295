//! Times the phases of a lint of one directory: reading it (`Source::read_dir`),
//! and linting it. `cargo run --release -p kubemigrate-lint --example
//! lint_throughput -- DIR [ROUNDS]` prints one JSON line per round.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use kubemigrate_lint::{Policy, lint_source};
use kubemigrate_sql::script::Variables;
use kubemigrate_sql::source::Source;

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args.next().expect("usage: lint_throughput DIR [ROUNDS]");
    let rounds: usize = args.next().map_or(3, |r| r.parse().expect("ROUNDS"));
    let vars = Variables::new();
    for _ in 0..rounds {
        let t0 = Instant::now();
        let source = Source::read_dir(dir.as_ref(), &vars).unwrap();
        let read = t0.elapsed();
        let t1 = Instant::now();
        let report = lint_source(&source, &vars, &Policy::new(), None).unwrap();
        let lint = t1.elapsed();
        let bytes = report.bytes();
        println!(
            "{{\"files\": {}, \"bytes\": {bytes}, \"read_s\": {:.3}, \"lint_s\": {:.3}, \"findings\": {}}}",
            report.files.len(),
            read.as_secs_f64(),
            lint.as_secs_f64(),
            report.findings().count()
        );
    }
}
