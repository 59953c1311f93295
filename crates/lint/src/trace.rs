//! The locks each statement takes (filled in below).
