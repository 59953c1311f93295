//! Field paths such as `spec.targets[1].database.port`, as errors print them.

use std::fmt;

/// One step of a [`FieldPath`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// A mapping key.
    Key(String),
    /// A list index, from 0.
    Index(usize),
}

/// Where a value sits in the plan, from the document's root.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldPath(Vec<Segment>);

impl FieldPath {
    /// The document's root.
    pub fn root() -> Self {
        FieldPath(Vec::new())
    }

    /// A path from dotted keys, e.g. `FieldPath::of(&["spec", "targets"])`.
    pub fn of(keys: &[&str]) -> Self {
        FieldPath(
            keys.iter()
                .map(|k| Segment::Key((*k).to_string()))
                .collect(),
        )
    }

    /// This path, then `key`.
    pub fn key(&self, key: &str) -> Self {
        let mut p = self.clone();
        p.0.push(Segment::Key(key.to_string()));
        p
    }

    /// This path, then item `index`.
    pub fn index(&self, index: usize) -> Self {
        let mut p = self.clone();
        p.0.push(Segment::Index(index));
        p
    }

    /// The steps.
    pub fn segments(&self) -> &[Segment] {
        &self.0
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(document)");
        }
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Segment::Index(n) => write!(f, "[{n}]")?,
                Segment::Key(k) if is_word(k) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    f.write_str(k)?;
                }
                Segment::Key(k) => write!(f, "[{k:?}]")?,
            }
        }
        Ok(())
    }
}

fn is_word(k: &str) -> bool {
    !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display() {
        let p = FieldPath::of(&["spec", "targets"]).index(1).key("database");
        assert_eq!(p.to_string(), "spec.targets[1].database");
        let p = FieldPath::of(&["spec", "labels"]).key("app.kubernetes.io/name");
        assert_eq!(p.to_string(), "spec.labels[\"app.kubernetes.io/name\"]");
        assert_eq!(FieldPath::root().to_string(), "(document)");
    }
}
