//! A YAML document as a tree of nodes that remember where they were written, so
//! every error can name a line and a column.
//!
//! Built on `saphyr-parser`'s event stream. What a plan file never needs is refused
//! with a clear message instead of being half supported: several documents in one
//! file, keys that are not scalars, tags, and duplicate keys (which YAML forbids and
//! most loaders silently resolve by keeping the last one).

use std::fmt;

use saphyr_parser::{Event, Parser, ScalarStyle};

/// A position in the file: line and column, both counted from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    /// The line, from 1.
    pub line: usize,
    /// The column in characters, from 1.
    pub column: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// One node of the document.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// What the node holds.
    pub kind: NodeKind,
    /// Where it starts.
    pub pos: Pos,
}

/// What a [`Node`] holds.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    /// A scalar, with its text as written (after YAML's unescaping and folding).
    Scalar {
        /// The text.
        text: String,
        /// `true` for a plain (unquoted, non-block) scalar: only those can be
        /// `null`, booleans or numbers.
        plain: bool,
    },
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in the order written. Keys are scalars and unique.
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// `true` for `~`, `null`, `Null`, `NULL` or nothing at all, written plain.
    pub fn is_null(&self) -> bool {
        matches!(&self.kind, NodeKind::Scalar { text, plain: true } if is_null_text(text))
    }

    /// The key text of a mapping key (keys are always scalars).
    pub fn key_text(&self) -> &str {
        match &self.kind {
            NodeKind::Scalar { text, .. } => text,
            _ => "",
        }
    }

    /// What kind of value this is, for messages: "a mapping", "a list", "a string"...
    pub fn describe(&self) -> &'static str {
        match &self.kind {
            NodeKind::Map(_) => "a mapping",
            NodeKind::Seq(_) => "a list",
            NodeKind::Scalar { text, plain } => {
                if !plain {
                    "a string"
                } else if is_null_text(text) {
                    "null"
                } else if parse_bool(text).is_some() {
                    "a boolean"
                } else if parse_int(text).is_some() || text.parse::<f64>().is_ok() {
                    "a number"
                } else {
                    "a string"
                }
            }
        }
    }

    /// The value of `key` in this mapping, if this is a mapping that has it.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.kind {
            NodeKind::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.key_text() == key)
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The key node of `key` in this mapping.
    pub fn get_key(&self, key: &str) -> Option<&Node> {
        match &self.kind {
            NodeKind::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.key_text() == key)
                .map(|(k, _)| k),
            _ => None,
        }
    }

    /// The `index`th item of this sequence.
    pub fn item(&self, index: usize) -> Option<&Node> {
        match &self.kind {
            NodeKind::Seq(items) => items.get(index),
            _ => None,
        }
    }
}

/// `null` in YAML 1.2's core schema.
pub(crate) fn is_null_text(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

/// A boolean in YAML 1.2's core schema (`yes`/`no`/`on`/`off` are strings).
pub(crate) fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

/// An integer in YAML 1.2's core schema: decimal with an optional sign, `0o` octal,
/// `0x` hexadecimal.
pub(crate) fn parse_int(text: &str) -> Option<i128> {
    if let Some(hex) = text.strip_prefix("0x") {
        return i128::from_str_radix(hex, 16).ok();
    }
    if let Some(oct) = text.strip_prefix("0o") {
        return i128::from_str_radix(oct, 8).ok();
    }
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Why a file is not a YAML document kubemigrate can read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{pos}: {message}")]
pub struct YamlError {
    /// Where.
    pub pos: Pos,
    /// What, as a lowercase fragment.
    pub message: String,
}

/// Most nodes a document may expand to through aliases (a "billion laughs" file
/// would otherwise exhaust memory).
const MAX_NODES: usize = 100_000;

/// Parses one YAML document. An empty file is an empty mapping's absence: `None`.
///
/// Tabs: YAML 1.2 allows a tab between a key's `:` and its value (`user:\tapp`),
/// which the scanner refuses when a word follows; such a tab is read as the space
/// it stands for (one character for one, so every position stays where it was).
/// A tab in the indentation is an error, reported on the line that has it (the
/// scanner may notice it a line early, at the end of the value before).
///
/// # Errors
/// A syntax error (with the scanner's position and message), more than one
/// document, a tag, a key that is not a scalar, a duplicate key, an unknown alias,
/// or a document that expands to more than 100,000 nodes.
pub fn parse(text: &str) -> Result<Option<Node>, YamlError> {
    let mut text = std::borrow::Cow::Borrowed(text);
    loop {
        let (error, at) = match parse_once(&text) {
            Ok(node) => return Ok(node),
            Err(e) => e,
        };
        if error
            .message
            .starts_with("':' must be followed by a valid YAML whitespace")
            && let Some(fixed) = separator_tabs_as_spaces(&text, at)
        {
            text = std::borrow::Cow::Owned(fixed);
            continue;
        }
        if error.message.contains("tab") {
            return Err(indentation_tab(&text, error));
        }
        return Err(error);
    }
}

/// `text` with the tabs between the `:` before character `at` and `at` turned into
/// spaces, when there are some.
fn separator_tabs_as_spaces(text: &str, at: usize) -> Option<String> {
    let mut chars: Vec<char> = text.chars().collect();
    let mut i = at.min(chars.len());
    let mut changed = false;
    while i > 0 && matches!(chars[i - 1], ' ' | '\t') {
        i -= 1;
        if chars[i] == '\t' {
            chars[i] = ' ';
            changed = true;
        }
    }
    (changed && i > 0 && chars[i - 1] == ':').then(|| chars.into_iter().collect())
}

/// The error for a tab in the indentation, placed on the first line, from the
/// scanner's line on, whose indentation holds a tab.
fn indentation_tab(text: &str, error: YamlError) -> YamlError {
    let from = error.pos.line.max(1);
    for (i, line) in text.lines().enumerate().skip(from - 1) {
        let indent: String = line
            .chars()
            .take_while(|c| *c == ' ' || *c == '\t')
            .collect();
        let rest = &line[indent.len()..];
        if rest.is_empty() || rest.starts_with('#') {
            continue;
        }
        if let Some(tab) = indent.chars().position(|c| c == '\t') {
            return YamlError {
                pos: Pos {
                    line: i + 1,
                    column: tab + 1,
                },
                message: "a tab in the indentation: YAML indents with spaces only".into(),
            };
        }
    }
    error
}

/// One parse; on error, also the character index where the scanner stopped.
fn parse_once(text: &str) -> Result<Option<Node>, (YamlError, usize)> {
    let mut builder = Builder {
        parser: Parser::new_from_str(text),
        anchors: Vec::new(),
        nodes: 0,
        error_at: 0,
    };
    builder.document().map_err(|e| (e, builder.error_at))
}

struct Builder<'a> {
    parser: Parser<'a, saphyr_parser::StrInput<'a>>,
    anchors: Vec<(usize, Node)>,
    nodes: usize,
    /// The character index of the scanner's error, if there was one.
    error_at: usize,
}

fn pos_of(m: &saphyr_parser::Marker) -> Pos {
    Pos {
        line: m.line(),
        column: m.col() + 1,
    }
}

impl<'a> Builder<'a> {
    fn next(&mut self) -> Result<(Event<'a>, Pos), YamlError> {
        match self.parser.next_event() {
            Some(Ok((event, span))) => Ok((event, pos_of(&span.start))),
            Some(Err(e)) => {
                self.error_at = e.marker().index();
                Err(YamlError {
                    pos: pos_of(e.marker()),
                    message: e.info().to_string(),
                })
            }
            None => Err(YamlError {
                pos: Pos::default(),
                message: "unexpected end of the YAML stream".into(),
            }),
        }
    }

    fn document(&mut self) -> Result<Option<Node>, YamlError> {
        let mut root = None;
        loop {
            let (event, pos) = self.next()?;
            match event {
                Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
                Event::StreamEnd => return Ok(root),
                Event::DocumentStart(_) => {
                    if root.is_some() {
                        return Err(YamlError {
                            pos,
                            message: "a plan file holds one YAML document; found a second one \
                                      (remove the `---` or split the file)"
                                .into(),
                        });
                    }
                    let (event, pos) = self.next()?;
                    root = Some(self.node(event, pos)?);
                }
                other => {
                    return Err(YamlError {
                        pos,
                        message: format!("unexpected YAML event {other:?}"),
                    });
                }
            }
        }
    }

    fn count(&mut self, pos: Pos, n: usize) -> Result<(), YamlError> {
        self.nodes += n;
        if self.nodes > MAX_NODES {
            return Err(YamlError {
                pos,
                message: format!("the document expands to more than {MAX_NODES} nodes"),
            });
        }
        Ok(())
    }

    fn anchor(&mut self, id: usize, node: &Node) {
        if id != 0 {
            self.anchors.push((id, node.clone()));
        }
    }

    fn node(&mut self, event: Event<'a>, pos: Pos) -> Result<Node, YamlError> {
        self.count(pos, 1)?;
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                reject_tag(tag.is_some(), pos)?;
                let node = Node {
                    kind: NodeKind::Scalar {
                        text: text.into_owned(),
                        plain: style == ScalarStyle::Plain,
                    },
                    pos,
                };
                self.anchor(anchor, &node);
                Ok(node)
            }
            Event::SequenceStart(anchor, tag) => {
                reject_tag(tag.is_some(), pos)?;
                let mut items = Vec::new();
                loop {
                    let (event, item_pos) = self.next()?;
                    if matches!(event, Event::SequenceEnd) {
                        break;
                    }
                    items.push(self.node(event, item_pos)?);
                }
                let node = Node {
                    kind: NodeKind::Seq(items),
                    pos,
                };
                self.anchor(anchor, &node);
                Ok(node)
            }
            Event::MappingStart(anchor, tag) => {
                reject_tag(tag.is_some(), pos)?;
                let mut entries: Vec<(Node, Node)> = Vec::new();
                loop {
                    let (event, key_pos) = self.next()?;
                    if matches!(event, Event::MappingEnd) {
                        break;
                    }
                    let key = self.node(event, key_pos)?;
                    if !matches!(key.kind, NodeKind::Scalar { .. }) {
                        return Err(YamlError {
                            pos: key.pos,
                            message: format!("a key must be a plain word, not {}", key.describe()),
                        });
                    }
                    if let Some((first, _)) =
                        entries.iter().find(|(k, _)| k.key_text() == key.key_text())
                    {
                        return Err(YamlError {
                            pos: key.pos,
                            message: format!(
                                "duplicate key `{}` (first at line {})",
                                key.key_text(),
                                first.pos.line
                            ),
                        });
                    }
                    let (event, value_pos) = self.next()?;
                    let value = self.node(event, value_pos)?;
                    entries.push((key, value));
                }
                let node = Node {
                    kind: NodeKind::Map(entries),
                    pos,
                };
                self.anchor(anchor, &node);
                Ok(node)
            }
            Event::Alias(id) => {
                let Some((_, target)) = self.anchors.iter().rev().find(|(a, _)| *a == id) else {
                    return Err(YamlError {
                        pos,
                        message: "alias to an unknown anchor".into(),
                    });
                };
                let mut node = target.clone();
                let size = count_nodes(&node);
                self.count(pos, size)?;
                node.pos = pos;
                Ok(node)
            }
            other => Err(YamlError {
                pos,
                message: format!("unexpected YAML event {other:?}"),
            }),
        }
    }
}

fn reject_tag(tagged: bool, pos: Pos) -> Result<(), YamlError> {
    if tagged {
        return Err(YamlError {
            pos,
            message: "YAML tags (`!something`) are not used in a plan; remove the tag".into(),
        });
    }
    Ok(())
}

fn count_nodes(node: &Node) -> usize {
    1 + match &node.kind {
        NodeKind::Scalar { .. } => 0,
        NodeKind::Seq(items) => items.iter().map(count_nodes).sum(),
        NodeKind::Map(entries) => entries
            .iter()
            .map(|(k, v)| count_nodes(k) + count_nodes(v))
            .sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(text: &str) -> Node {
        parse(text).unwrap().unwrap()
    }

    #[test]
    fn positions_are_one_based_line_and_column() {
        let n = root("a: 1\nb:\n  - x\n  - 'y'\n");
        let b = n.get("b").unwrap();
        assert_eq!(b.item(1).unwrap().pos, Pos { line: 4, column: 5 });
        assert_eq!(n.get_key("b").unwrap().pos, Pos { line: 2, column: 1 });
        assert!(matches!(
            &b.item(1).unwrap().kind,
            NodeKind::Scalar { plain: false, .. }
        ));
    }

    #[test]
    fn duplicate_keys_are_refused_with_both_lines() {
        let e = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(e.pos, Pos { line: 3, column: 1 });
        assert!(e.message.contains("first at line 1"), "{e}");
    }

    #[test]
    fn second_documents_tags_and_complex_keys_are_refused() {
        assert!(
            parse("a: 1\n---\nb: 2\n")
                .unwrap_err()
                .message
                .contains("second")
        );
        assert!(parse("a: !!str 1\n").unwrap_err().message.contains("tags"));
        assert!(parse("? [a]\n: 1\n").unwrap_err().message.contains("key"));
    }

    #[test]
    fn aliases_expand_and_are_bounded() {
        let n = root("a: &x {k: v}\nb: *x\n");
        assert_eq!(n.get("b").unwrap().get("k"), n.get("a").unwrap().get("k"));
        let mut laughs = String::from("l0: &l0 [a, a, a, a, a, a, a, a, a, a]\n");
        for i in 1..8 {
            let prev = format!("*l{}", i - 1);
            laughs.push_str(&format!("l{i}: &l{i} [{}]\n", vec![prev; 10].join(", ")));
        }
        assert!(parse(&laughs).unwrap_err().message.contains("nodes"));
    }

    #[test]
    fn empty_documents_and_syntax_errors() {
        assert_eq!(parse("").unwrap(), None);
        assert_eq!(parse("# only a comment\n").unwrap(), None);
        let e = parse("a: [1, 2\n").unwrap_err();
        assert!(e.pos.line >= 1, "{e}");
    }

    #[test]
    fn a_tab_after_a_colon_separates_as_yaml_1_2_allows() {
        let n = root("a:\tvalue\nb:\t\t  2\nc: 'x:\ty'\n");
        assert_eq!(n.get("a").unwrap().key_text(), "value");
        assert_eq!(n.get("b").unwrap().key_text(), "2");
        // Inside a quoted value a tab is content.
        assert_eq!(n.get("c").unwrap().key_text(), "x:\ty");
        assert_eq!(n.get("a").unwrap().pos, Pos { line: 1, column: 4 });
        assert_eq!(n.get("b").unwrap().pos, Pos { line: 2, column: 7 });
    }

    #[test]
    fn a_tab_in_the_indentation_is_reported_on_its_own_line() {
        // The scanner notices it at the end of `host: db`, a line early.
        let e = parse("a:\n  host: db\n\t\tname: x\n").unwrap_err();
        assert_eq!(e.pos, Pos { line: 3, column: 1 }, "{e}");
        assert!(e.message.contains("a tab in the indentation"), "{e}");
        let e = parse("a:\n  host: db\n  \tname: x\n").unwrap_err();
        assert_eq!(e.pos, Pos { line: 3, column: 3 }, "{e}");
    }

    #[test]
    fn core_schema_scalars() {
        assert_eq!(parse_int("0x1f"), Some(31));
        assert_eq!(parse_int("-12"), Some(-12));
        assert_eq!(parse_int("1_000"), None);
        assert_eq!(parse_bool("yes"), None);
        assert!(root("a: ~").get("a").unwrap().is_null());
        assert!(!root("a: '~'").get("a").unwrap().is_null());
    }
}
