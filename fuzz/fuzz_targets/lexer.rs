//! Fuzzes the statement lexer: for any input it never panics, the chunks it returns
//! cover the input exactly, and reading the input in pieces (`split_prefix`, as the
//! engine streams files) agrees with splitting it whole.
//!
//! Run: `cargo +nightly fuzz run lexer` from the repository root (see docs/testing.md).
#![no_main]

use kubemigrate_script::lexer::{self, ChunkKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(chunks) = lexer::split(text) {
        let mut at = 0;
        for c in &chunks {
            assert_eq!(c.start, at, "chunks are contiguous");
            assert!(c.end > c.start, "no empty chunk");
            at = c.end;
        }
        assert_eq!(at, text.len(), "chunks cover the input");
        let joined: String = chunks.iter().map(|c| c.text(text)).collect();
        assert_eq!(joined, text);
    }
    // The streaming prefix never claims more than the whole split gives.
    if let Ok(prefix) = lexer::split_prefix(text) {
        assert!(prefix.consumed <= text.len());
        if let Ok(whole) = lexer::split(text) {
            let statements = |cs: &[lexer::Chunk]| -> Vec<String> {
                cs.iter()
                    .filter(|c| c.kind == ChunkKind::Sql || c.kind == ChunkKind::Meta)
                    .map(|c| c.text(text).to_string())
                    .collect()
            };
            let head = statements(&prefix.chunks);
            let all = statements(&whole);
            assert_eq!(head[..], all[..head.len().min(all.len())]);
        }
    }
    let _ = lexer::leading_keywords(text, 3);
    let _ = lexer::code_spans(text);
});
