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

    /// The digest.
    pub(crate) fn finish(mut self) -> Sha256Sum {
        if self.cr_pending {
            self.hasher.update(b"\r");
        }
        Sha256Sum(self.hasher.finalize().into())
    }
}

impl fmt::Debug for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Checksum")
    }
}

/// A migration's checksum: the SHA-256 of its bytes (CRLF read as LF) and of what
/// it includes. Kept as its 32 bytes (a source of 10,000 files holds no 10,000
/// strings); shown, and serialized, as 64 lower-case hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Sha256Sum([u8; 32]);

/// 64 lower-case hex digits, on the stack: [`Sha256Sum::hex`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Hex([u8; 64]);

impl Hex {
    /// The digits.
    pub fn as_str(&self) -> &str {
        // Hex digits are ASCII: always UTF-8.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Debug for Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl std::ops::Deref for Hex {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl Sha256Sum {
    /// The checksum whose bytes are `bytes`.
    pub const fn from_bytes(bytes: [u8; 32]) -> Sha256Sum {
        Sha256Sum(bytes)
    }

    /// Its 32 bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The checksum whose 64 lower-case hex digits are `text`, if they are.
    pub fn from_hex(text: &str) -> Option<Sha256Sum> {
        let digit = |b: u8| match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            _ => None,
        };
        let digits = text.as_bytes();
        if digits.len() != 64 {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
            let [high, low] = pair else { return None };
            *byte = digit(*high)? << 4 | digit(*low)?;
        }
        Some(Sha256Sum(bytes))
    }

    /// Its 64 lower-case hex digits.
    pub fn hex(&self) -> Hex {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 64];
        for (pair, &b) in out.chunks_exact_mut(2).zip(&self.0) {
            pair.copy_from_slice(&[DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 0x0f)]]);
        }
        Hex(out)
    }
}

impl fmt::Display for Sha256Sum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

impl fmt::Debug for Sha256Sum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256Sum({})", self.hex().as_str())
    }
}

impl serde::Serialize for Sha256Sum {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.hex())
    }
}
