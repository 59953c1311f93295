//! Lexer throughput, for bench/run: splits a file into statements N times and prints
//! the median MB/s. Usage: `lex_throughput FILE [ROUNDS]`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: lex_throughput FILE [ROUNDS]");
    let rounds: usize = args
        .next()
        .map_or(7, |r| r.parse().expect("ROUNDS is a number"));
    let text = std::fs::read_to_string(&path).expect("read the file");
    let mut rates = Vec::new();
    let mut statements = 0;
    for _ in 0..rounds {
        let t0 = Instant::now();
        let chunks = kubemigrate_script::lexer::split(&text).expect("the file lexes");
        let secs = t0.elapsed().as_secs_f64();
        statements = chunks
            .iter()
            .filter(|c| c.kind == kubemigrate_script::lexer::ChunkKind::Sql)
            .count();
        rates.push(text.len() as f64 / secs / 1e6);
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "{{\"bytes\": {}, \"statements\": {statements}, \"rounds\": {rounds}, \"median_mb_per_s\": {:.1}, \"min_mb_per_s\": {:.1}, \"max_mb_per_s\": {:.1}}}",
        text.len(),
        rates[rates.len() / 2],
        rates[0],
        rates[rates.len() - 1]
    );
}
