//! The `.tfvars.json` reader. serde_json parses the text; each value is kept as a
//! [`RawValue`], a slice of the text, so its place in the file is the slice's offset.

use std::fmt;

use serde::Deserialize;
use serde::de::{MapAccess, Visitor};
use serde_json::value::RawValue;

use super::{Attribute, Key, Kind, MAX_DEPTH, Pos, SyntaxError, Value, template_error, untemplate};

/// Reads a `.tfvars.json` file: one JSON object whose properties are the variables.
///
/// serde_json reads the text; the values are then converted with their positions. A
/// property named `//` is a comment, as in Terraform. Strings are templates, as in
/// Terraform: `$${` stands for `${`, and an interpolation `${…}` is an error.
///
/// # Errors
///
/// A [`SyntaxError`] for invalid JSON, a document that is not an object, a property
/// set twice, or an interpolation in a string.
pub fn parse_json(text: &str) -> Result<Vec<Attribute>, SyntaxError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let top: &RawValue = serde_json::from_str(text).map_err(invalid_json)?;
    let reader = Reader { text };
    let start = reader.pos_of(top);
    if !top.get().starts_with('{') {
        return Err(SyntaxError {
            pos: start,
            message: "a .tfvars.json file holds one JSON object: {\"name\": value, …}".to_string(),
        });
    }
    let Kind::Object(items) = reader.value(top, 0)?.kind else {
        return Err(SyntaxError {
            pos: start,
            message: "expected a JSON object".to_string(),
        });
    };
    Ok(items
        .into_iter()
        .filter(|(k, _)| k.name != "//")
        .map(|(k, value)| Attribute {
            name: k.name,
            pos: k.pos,
            value,
        })
        .collect())
}

/// serde_json's error at its line and column, without the " at line … column …" it
/// appends to its message.
fn invalid_json(e: serde_json::Error) -> SyntaxError {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let message = full.strip_suffix(&suffix).unwrap_or(&full).to_string();
    SyntaxError {
        pos: Pos {
            line: e.line().max(1),
            column: e.column().max(1),
        },
        message: format!("invalid JSON: {message}"),
    }
}

/// Converts the raw values of one text, whose slices they are.
struct Reader<'a> {
    text: &'a str,
}

impl<'a> Reader<'a> {
    /// The byte offset of a slice of the text.
    fn offset_of(&self, part: &str) -> usize {
        // Every RawValue here borrows from `self.text` (they are deserialized from it
        // with zero-copy `&RawValue`), so the difference of the addresses is the
        // offset; `min` keeps it in the text whatever happens.
        (part.as_ptr() as usize)
            .saturating_sub(self.text.as_ptr() as usize)
            .min(self.text.len())
    }

    /// The line and column (in characters, as the HCL reader counts) of a byte offset.
    fn pos_at(&self, offset: usize) -> Pos {
        let before = self.text.get(..offset).unwrap_or(self.text);
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Pos {
            line: before.matches('\n').count() + 1,
            column: before.get(line_start..).map_or(0, |l| l.chars().count()) + 1,
        }
    }

    fn pos_of(&self, raw: &RawValue) -> Pos {
        self.pos_at(self.offset_of(raw.get()))
    }

    /// Where the next object key starts, after `from`: past white space and a comma.
    fn key_pos(&self, from: usize) -> Pos {
        let rest = self.text.get(from..).unwrap_or("");
        let skipped = rest.len() - rest.trim_start_matches([' ', '\t', '\n', '\r', ',']).len();
        self.pos_at(from + skipped)
    }

    fn value(&self, raw: &'a RawValue, depth: usize) -> Result<Value, SyntaxError> {
        let pos = self.pos_of(raw);
        if depth > MAX_DEPTH {
            return Err(SyntaxError {
                pos,
                message: format!("arrays and objects nest more than {MAX_DEPTH} deep"),
            });
        }
        let text = raw.get();
        // The text is valid JSON (serde_json accepted it): the first character tells
        // the kind, and reading it as that kind succeeds except for numbers out of range.
        let decode_error = |e: serde_json::Error| SyntaxError {
            pos,
            message: format!("invalid JSON value: {e}"),
        };
        let kind = match text.as_bytes().first() {
            Some(b'{') => {
                let Entries(entries) = serde_json::from_str(text).map_err(decode_error)?;
                let mut items: Vec<(Key, Value)> = Vec::new();
                // Each key starts after the `{` or after the previous value.
                let mut after = self.offset_of(text) + 1;
                for (name, item) in entries {
                    let key_pos = self.key_pos(after);
                    after = self.offset_of(item.get()) + item.get().len();
                    let value = self.value(item, depth + 1)?;
                    if let Some((first, _)) = items.iter().find(|(k, _)| k.name == name) {
                        return Err(SyntaxError {
                            pos: key_pos,
                            message: format!(
                                "\"{name}\" is set twice in this object (first at {})",
                                first.pos
                            ),
                        });
                    }
                    items.push((Key { name, pos: key_pos }, value));
                }
                Kind::Object(items)
            }
            Some(b'[') => {
                let items: Vec<&RawValue> = serde_json::from_str(text).map_err(decode_error)?;
                Kind::List(
                    items
                        .into_iter()
                        .map(|item| self.value(item, depth + 1))
                        .collect::<Result<_, _>>()?,
                )
            }
            Some(b'"') => {
                let decoded: String = serde_json::from_str(text).map_err(decode_error)?;
                // Escapes change lengths, so the string's start is the best position to give.
                Kind::String(untemplate(&decoded).map_err(|(_, c)| template_error(c, pos))?)
            }
            Some(b't' | b'f') => Kind::Bool(serde_json::from_str(text).map_err(decode_error)?),
            Some(b'n') => Kind::Null,
            _ => match serde_json::from_str::<f64>(text) {
                Ok(n) if n.is_finite() => Kind::Number(n),
                _ => {
                    return Err(SyntaxError {
                        pos,
                        message: format!("number {text} is out of range"),
                    });
                }
            },
        };
        Ok(Value { pos, kind })
    }
}

/// An object's properties in the file's order, duplicates kept (serde_json's `Map`
/// would keep only the last), each value still raw.
struct Entries<'a>(Vec<(String, &'a RawValue)>);

impl<'de> Deserialize<'de> for Entries<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor;
        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = Entries<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Entries<'de>, M::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, &'de RawValue>()? {
                    entries.push(entry);
                }
                Ok(Entries(entries))
            }
        }
        deserializer.deserialize_map(EntriesVisitor)
    }
}
