//! A serde `Deserializer` over a [`Node`] tree that knows, for every value, where it
//! was written and which field it is, so a type error, an unknown field or a bad
//! value is reported as `line:column: spec.targets[1].database.port: …`.
//!
//! Scalars are typed as YAML 1.2's core schema says, but only where the target
//! type asks: a field of type string takes any scalar's text as written (`1.10`
//! stays `1.10`), a number or boolean must be written plain (a quoted `"5432"` is a
//! string, as kubectl would say too).

use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

use crate::path::FieldPath;
use crate::suggest::did_you_mean;
use crate::yaml::{Node, NodeKind, Pos, is_null_text, parse_bool, parse_int};

/// A deserialization error, located once the deserializer knows where.
#[derive(Debug, Clone, PartialEq)]
pub struct DeError {
    /// What went wrong, as a lowercase fragment.
    pub message: String,
    /// Where, once known.
    pub pos: Option<Pos>,
    /// Which field, once known.
    pub path: Option<FieldPath>,
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError {
            message: msg.to_string(),
            pos: None,
            path: None,
        }
    }

    fn invalid_type(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        let found = match unexp {
            de::Unexpected::Unit => "null".to_string(),
            de::Unexpected::Map => "a mapping".to_string(),
            de::Unexpected::Seq => "a list".to_string(),
            de::Unexpected::Str(s) => format!("the string {s:?}"),
            other => other.to_string(),
        };
        de::Error::custom(format_args!("expected {}, found {found}", expected(exp)))
    }

    fn invalid_value(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        let what = match unexp {
            de::Unexpected::Signed(n) => n.to_string(),
            de::Unexpected::Unsigned(n) => n.to_string(),
            other => other.to_string(),
        };
        de::Error::custom(format_args!(
            "{what} is out of range: expected {}",
            expected(exp)
        ))
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        let mut message = format!("unknown field `{field}`");
        match did_you_mean(field, expected) {
            Some(best) => message.push_str(&format!("; did you mean `{best}`?")),
            None if !expected.is_empty() => {
                message.push_str(&format!("; expected one of: {}", expected.join(", ")))
            }
            None => {}
        }
        de::Error::custom(message)
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        let mut message = format!("unknown value `{variant}`");
        if let Some(best) = did_you_mean(variant, expected) {
            message.push_str(&format!("; did you mean `{best}`?"));
        } else {
            message.push_str(&format!("; expected one of: {}", expected.join(", ")));
        }
        de::Error::custom(message)
    }

    fn missing_field(field: &'static str) -> Self {
        de::Error::custom(format_args!("missing required field `{field}`"))
    }
}

/// serde's names for what a visitor expects, in the plan's words.
fn expected(exp: &dyn de::Expected) -> String {
    let text = exp.to_string();
    match text.as_str() {
        "u8" => "a whole number from 0 to 255".into(),
        // The model's only u16 is `database.port`, and 0 is no port: say the range
        // the plan accepts, not the type's.
        "u16" => "a port number from 1 to 65535".into(),
        "u32" => "a whole number from 0 to 4294967295".into(),
        "u64" => "a whole number from 0".into(),
        "i32" | "i64" => "a whole number".into(),
        "a sequence" => "a list".into(),
        "a map" => "a mapping".into(),
        t if t.starts_with("struct ") => "a mapping".into(),
        _ => text,
    }
}

impl DeError {
    /// Places the error at `node`/`path` unless it already has a place.
    fn at(mut self, node: &Node, path: &FieldPath) -> Self {
        if self.pos.is_none() {
            self.pos = Some(node.pos);
            self.path = Some(path.clone());
        }
        self
    }
}

/// Deserializes `T` from `node`, the value at `path`.
///
/// # Errors
/// The first type error, unknown field, missing field or invalid value, located.
pub fn from_node<'de, T: de::Deserialize<'de>>(
    node: &'de Node,
    path: FieldPath,
) -> Result<T, DeError> {
    let de = NodeDe { node, path };
    T::deserialize(de)
}

/// The deserializer for one node.
pub struct NodeDe<'de> {
    node: &'de Node,
    path: FieldPath,
}

impl<'de> NodeDe<'de> {
    fn scalar(&self) -> Option<(&'de str, bool)> {
        match &self.node.kind {
            NodeKind::Scalar { text, plain } => Some((text.as_str(), *plain)),
            _ => None,
        }
    }

    fn unexpected(&self) -> de::Unexpected<'de> {
        match &self.node.kind {
            NodeKind::Map(_) => de::Unexpected::Map,
            NodeKind::Seq(_) => de::Unexpected::Seq,
            NodeKind::Scalar { text, plain } => {
                if *plain && is_null_text(text) {
                    de::Unexpected::Unit
                } else if *plain && parse_bool(text).is_some() {
                    de::Unexpected::Bool(parse_bool(text).unwrap_or_default())
                } else if *plain && parse_int(text).is_some() {
                    de::Unexpected::Other("a number")
                } else {
                    de::Unexpected::Str(text)
                }
            }
        }
    }

    fn fail<T>(&self, exp: &dyn de::Expected) -> Result<T, DeError> {
        Err(<DeError as de::Error>::invalid_type(self.unexpected(), exp).at(self.node, &self.path))
    }

    fn int<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.scalar() {
            Some((text, true)) => match parse_int(text) {
                Some(n) => {
                    let result = if let Ok(u) = u64::try_from(n) {
                        visitor.visit_u64(u)
                    } else if let Ok(i) = i64::try_from(n) {
                        visitor.visit_i64(i)
                    } else {
                        Err(de::Error::custom(format_args!(
                            "the number {text} is too large"
                        )))
                    };
                    result.map_err(|e: DeError| e.at(self.node, &self.path))
                }
                None => self.fail(&visitor),
            },
            _ => self.fail(&visitor),
        }
    }
}

macro_rules! forward_int {
    ($($name:ident)*) => {
        $(fn $name<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            self.int(visitor)
        })*
    };
}

impl<'de> de::Deserializer<'de> for NodeDe<'de> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let (node, path) = (self.node, self.path.clone());
        let result = match &node.kind {
            NodeKind::Map(entries) => visitor.visit_map(MapAcc {
                entries: entries.iter(),
                value: None,
                path: &self.path,
            }),
            NodeKind::Seq(items) => visitor.visit_seq(SeqAcc {
                items: items.iter().enumerate(),
                path: &self.path,
            }),
            NodeKind::Scalar { text, plain: true } => {
                if is_null_text(text) {
                    visitor.visit_unit()
                } else if let Some(b) = parse_bool(text) {
                    visitor.visit_bool(b)
                } else if let Some(n) = parse_int(text) {
                    if let Ok(u) = u64::try_from(n) {
                        visitor.visit_u64(u)
                    } else if let Ok(i) = i64::try_from(n) {
                        visitor.visit_i64(i)
                    } else {
                        visitor.visit_borrowed_str(text)
                    }
                } else if let Ok(f) = text.parse::<f64>()
                    && text.bytes().any(|b| b.is_ascii_digit())
                {
                    visitor.visit_f64(f)
                } else {
                    visitor.visit_borrowed_str(text)
                }
            }
            NodeKind::Scalar { text, plain: false } => visitor.visit_borrowed_str(text),
        };
        result.map_err(|e| e.at(node, &path))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.scalar() {
            Some((text, true)) if parse_bool(text).is_some() => visitor
                .visit_bool(parse_bool(text).unwrap_or_default())
                .map_err(|e: DeError| e.at(self.node, &self.path)),
            _ => self.fail(&visitor),
        }
    }

    forward_int! {
        deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_i128
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.scalar() {
            Some((text, true)) => match text.parse::<f64>() {
                Ok(f) => visitor
                    .visit_f64(f)
                    .map_err(|e: DeError| e.at(self.node, &self.path)),
                Err(_) => self.fail(&visitor),
            },
            _ => self.fail(&visitor),
        }
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.scalar() {
            Some((text, plain)) if !(plain && is_null_text(text)) => visitor
                .visit_borrowed_str(text)
                .map_err(|e: DeError| e.at(self.node, &self.path)),
            _ => self.fail(&visitor),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        if self.node.is_null() {
            visitor
                .visit_none()
                .map_err(|e: DeError| e.at(self.node, &self.path))
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        if self.node.is_null() {
            visitor
                .visit_unit()
                .map_err(|e: DeError| e.at(self.node, &self.path))
        } else {
            self.fail(&visitor)
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.kind {
            NodeKind::Seq(items) => visitor
                .visit_seq(SeqAcc {
                    items: items.iter().enumerate(),
                    path: &self.path,
                })
                .map_err(|e: DeError| e.at(self.node, &self.path)),
            _ => self.fail(&visitor),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.kind {
            NodeKind::Map(entries) => visitor
                .visit_map(MapAcc {
                    entries: entries.iter(),
                    value: None,
                    path: &self.path,
                })
                .map_err(|e: DeError| e.at(self.node, &self.path)),
            _ => self.fail(&visitor),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match self.scalar() {
            Some((text, plain)) if !(plain && is_null_text(text)) => {
                let de: de::value::StrDeserializer<'_, DeError> = text.into_deserializer();
                visitor
                    .visit_enum(de)
                    .map_err(|e: DeError| e.at(self.node, &self.path))
            }
            _ => self.fail(&visitor),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }
}

struct SeqAcc<'de, 'p> {
    items: std::iter::Enumerate<std::slice::Iter<'de, Node>>,
    path: &'p FieldPath,
}

impl<'de> de::SeqAccess<'de> for SeqAcc<'de, '_> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        match self.items.next() {
            None => Ok(None),
            Some((i, node)) => {
                let path = self.path.index(i);
                seed.deserialize(NodeDe {
                    node,
                    path: path.clone(),
                })
                .map(Some)
                .map_err(|e| e.at(node, &path))
            }
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct MapAcc<'de, 'p> {
    entries: std::slice::Iter<'de, (Node, Node)>,
    value: Option<(&'de Node, FieldPath)>,
    path: &'p FieldPath,
}

impl<'de> de::MapAccess<'de> for MapAcc<'de, '_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        match self.entries.next() {
            None => Ok(None),
            Some((key, value)) => {
                let path = self.path.key(key.key_text());
                self.value = Some((value, path.clone()));
                seed.deserialize(NodeDe {
                    node: key,
                    path: path.clone(),
                })
                .map(Some)
                .map_err(|e| e.at(key, &path))
            }
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let Some((node, path)) = self.value.take() else {
            return Err(de::Error::custom("a value was asked for before its key"));
        };
        seed.deserialize(NodeDe {
            node,
            path: path.clone(),
        })
        .map_err(|e| e.at(node, &path))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::*;
    use crate::yaml::parse;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct T {
        name: String,
        #[serde(default)]
        port: Option<u16>,
        #[serde(default)]
        items: Vec<Inner>,
        #[serde(default)]
        labels: BTreeMap<String, String>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Inner {
        enabled: bool,
    }

    fn load(text: &str) -> Result<T, DeError> {
        let node = parse(text).unwrap().unwrap();
        let node: &'static Node = Box::leak(Box::new(node));
        from_node(node, FieldPath::root())
    }

    #[test]
    fn errors_carry_the_innermost_position_and_path() {
        let e = load("name: x\nitems:\n  - enabled: true\n  - enabled: 'yes'\n").unwrap_err();
        assert_eq!(
            e.pos,
            Some(Pos {
                line: 4,
                column: 14
            })
        );
        assert_eq!(e.path.unwrap().to_string(), "items[1].enabled");
        assert_eq!(e.message, "expected a boolean, found the string \"yes\"");
    }

    #[test]
    fn unknown_fields_suggest_the_closest_name() {
        let e = load("name: x\nprot: 1\n").unwrap_err();
        assert_eq!(e.message, "unknown field `prot`; did you mean `port`?");
        assert_eq!(e.pos, Some(Pos { line: 2, column: 1 }));
        let e = load("name: x\nzzzzzz: 1\n").unwrap_err();
        assert!(
            e.message.contains("expected one of: name, port"),
            "{}",
            e.message
        );
    }

    #[test]
    fn missing_fields_point_at_the_mapping() {
        let e = load("items:\n  - {}\n").unwrap_err();
        assert_eq!(e.message, "missing required field `enabled`");
        assert_eq!(e.path.unwrap().to_string(), "items[0]");
    }

    #[test]
    fn strings_take_plain_numbers_as_written_but_numbers_refuse_quotes() {
        let t = load("name: 1.10\nport: 5432\nlabels: {v: 1.0}\n").unwrap();
        assert_eq!(t.name, "1.10");
        assert_eq!(t.labels["v"], "1.0");
        let e = load("name: x\nport: '5432'\n").unwrap_err();
        assert!(
            e.message
                .starts_with("expected a port number from 1 to 65535"),
            "{}",
            e.message
        );
        let e = load("name: x\nport: 70000\n").unwrap_err();
        assert!(e.message.contains("70000"), "{}", e.message);
        let e = load("name: ~\n").unwrap_err();
        assert_eq!(e.message, "expected a string, found null");
    }
}
