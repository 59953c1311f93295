//! Checksums are a contract: every stored checksum must stay valid across releases.
//! This pins the checksums of a fixed corpus, computed by the reader as it was before
//! the reader was last changed (issue 13: regular files only, statement and COPY
//! line limits), so any change to how files are read, buffered, split or included
//! that moves a checksum fails here. Includes after more than one read block
//! (256 KiB) and long COPY lines are in the corpus: there, how much is read before
//! an include decides the order the checksum sees the bytes.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::path::Path;

use kubemigrate_script::script::{Script, Variables};
use kubemigrate_script::source::Source;

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn corpus(dir: &Path) -> Vec<(&'static str, Vec<u8>)> {
    write(dir, "lib/x.sql", b"SELECT 4;\n");
    write(dir, "data/d.csv", b"1\n2\n");
    let mut big = b"SELECT 1;\n".repeat(30_000);
    big.extend_from_slice(b"\\ir lib/x.sql\n");
    big.extend(b"SELECT 5;\n".repeat(1000));
    let mut long_copy = b"CREATE TABLE t (v text);\nCOPY t FROM stdin;\n".to_vec();
    long_copy.extend(std::iter::repeat_n(b'x', 600 * 1024));
    long_copy.extend_from_slice(b"\nshort\n\\.\n\\ir lib/x.sql\nSELECT 6;\n");
    let mut long_copy_crlf = b"COPY t FROM stdin;\r\n".to_vec();
    long_copy_crlf.extend(std::iter::repeat_n(b'y', 300 * 1024));
    long_copy_crlf.extend_from_slice(b"\r\n\\.\r\n\\i lib/x.sql\r\n");
    vec![
        ("plain.sql", b"CREATE TABLE t (id int);\n".to_vec()),
        (
            "bom_crlf.sql",
            "\u{feff}SELECT 1;\r\nSELECT 2;\r\n".as_bytes().to_vec(),
        ),
        ("include.sql", b"\\ir lib/x.sql\nSELECT 3;\n".to_vec()),
        ("copy_file.sql", b"\\copy t FROM 'data/d.csv'\n".to_vec()),
        ("big_include.sql", big),
        ("long_copy.sql", long_copy),
        ("long_copy_crlf.sql", long_copy_crlf),
    ]
}

#[test]
fn checksums_of_a_fixed_corpus_never_change() {
    let dir = std::env::temp_dir().join(format!("km-checksum-contract-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut got = Vec::new();
    for (name, bytes) in corpus(&dir) {
        write(&dir, name, &bytes);
        let summary = Script::summarize(&dir.join(name), &dir, &Variables::new()).unwrap();
        got.push(format!("{name} {}", summary.checksum));
    }
    // A directory is read another way (each file opened once, its head read first,
    // in parallel): the checksums are the same.
    let source = Source::read_dir(&dir, &Variables::new()).unwrap();
    let mut read = source
        .migrations
        .iter()
        .map(|m| format!("{} {}", m.version, m.checksum))
        .collect::<Vec<_>>();
    std::fs::remove_dir_all(&dir).unwrap();
    let mut each = got.clone();
    each.sort();
    read.sort();
    assert_eq!(read, each);
    let expected = [
        "plain.sql 12c83f983b0c94b9c7010dcc92149589d5fb01a3d32af8f6d699545d95db9040",
        "bom_crlf.sql 82efb67f3010c6eb7ead02e4f6d9550633dbc1407f99aa487468e7b2567aebbc",
        "include.sql 585ec54e3a249e829b5321634c47c180d6aa4301716af618684af447cdd76348",
        "copy_file.sql fb42f7bdf1669877e52baf392535b829997d378dedb4aca21dab5cd114e731fe",
        "big_include.sql aaa531110c595ba658e1e3c88e5ac58a1b7358f179f9b845c5c7f95eec367baa",
        "long_copy.sql 90847f8b0f5139053ab50e9138ad75317055051cd69c4448da7522820e7dd769",
        "long_copy_crlf.sql 5c3d77673645af190725fbd1a44b4c2c057cdd49a9bb0e88c4417ac069214919",
    ];
    assert_eq!(got, expected, "\n{}", got.join("\n"));
}
