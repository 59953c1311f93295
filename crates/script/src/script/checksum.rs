//! The checksum of a migration: SHA-256 of its bytes with CRLF read as LF, fed a
//! block at a time.

use std::fmt;

use sha2::{Digest, Sha256};

/// Feeds the checksum: CRLF as LF, across block boundaries.
pub(crate) struct Checksum {
    hasher: Sha256,
    cr_pending: bool,
}

impl Checksum {
    pub(crate) fn new() -> Self {
        Checksum {
            hasher: Sha256::new(),
            cr_pending: false,
        }
    }

    pub(crate) fn update(&mut self, mut bytes: &[u8]) {
        if self.cr_pending {
            self.cr_pending = false;
            if bytes.first() == Some(&b'\n') {
                // The CR was half of a CRLF: drop it.
            } else {
                self.hasher.update(b"\r");
            }
        }
        if bytes.last() == Some(&b'\r') {
            self.cr_pending = true;
            bytes = &bytes[..bytes.len() - 1];
        }
        let mut from = 0;
        for i in memchr::memchr_iter(b'\r', bytes) {
            if bytes.get(i + 1) == Some(&b'\n') {
                self.hasher.update(&bytes[from..i]);
                from = i + 1;
            }
        }
        self.hasher.update(&bytes[from..]);
    }

    /// The lower-case hex digest, in one allocation (it is kept by every file
    /// read, and shared with the reports that show it).
    pub(crate) fn finish(mut self) -> std::sync::Arc<str> {
        if self.cr_pending {
            self.hasher.update(b"\r");
        }
        let digest = self.hasher.finalize();
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 64];
        for (pair, b) in out.chunks_exact_mut(2).zip(digest) {
            pair[0] = HEX[usize::from(b >> 4)];
            pair[1] = HEX[usize::from(b & 0x0f)];
        }
        // Hex digits are ASCII: the text is borrowed, never replaced.
        std::sync::Arc::from(&*String::from_utf8_lossy(&out))
    }
}

impl fmt::Debug for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Checksum")
    }
}
