//! The shape of the configuration (sections, keys, lists of tables and the kind of each value),
//! read off the config structs' own `Deserialize` impls: a probe deserializer records what each
//! struct asks for. The environment layer walks this shape, so a key added to a struct is
//! covered without editing any list.

use serde::de::value::StrDeserializer;
use serde::de::{self, DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess, Visitor};

/// What a key holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// A table with these keys (as written in TOML, after serde renames).
    Table(Vec<(&'static str, Shape)>),
    /// An array: `[[tenant]]` when the items are tables, `["a", "b"]` when scalars.
    List(Box<Shape>),
    /// A table whose keys are free (none today; taken as text values).
    Map,
    Scalar(Kind),
    /// Not learned (a type the probe could not walk).
    Unknown,
}

/// The kind of a scalar value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Integer,
    Float,
    /// Strings, paths, addresses, and enums written as strings.
    Text,
}

/// The shape of `T`.
pub fn of<T: DeserializeOwned>() -> Shape {
    let mut shape = Shape::Unknown;
    // The value built from the probe's placeholders is of no use; the shape is recorded as the
    // probe goes, and an error only stops it at a type it cannot walk.
    let _ = T::deserialize(Probe(&mut shape));
    shape
}

#[derive(Debug)]
struct ProbeError(String);

impl std::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for ProbeError {}
impl de::Error for ProbeError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        ProbeError(msg.to_string())
    }
}

/// Records the shape asked for into its slot and hands the visitor a placeholder value.
struct Probe<'a>(&'a mut Shape);

impl Probe<'_> {
    fn scalar(self, kind: Kind) {
        *self.0 = Shape::Scalar(kind);
    }
}

/// Text placeholders must parse as any string-typed key does: a socket address is the strictest.
const TEXT: &str = "0.0.0.0:0";

impl<'de> de::Deserializer<'de> for Probe<'_> {
    type Error = ProbeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        self.scalar(Kind::Text);
        visitor.visit_str(TEXT)
    }
    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        self.scalar(Kind::Bool);
        visitor.visit_bool(false)
    }
    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        self.deserialize_i64(visitor)
    }
    fn deserialize_i16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        self.deserialize_i64(visitor)
    }
    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        self.deserialize_i64(visitor)
    }
    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        self.scalar(Kind::Integer);
        visitor.visit_i64(0)
    }
    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        self.deserialize_u64(visitor)
    }
    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        self.deserialize_u64(visitor)
    }
    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        self.deserialize_u64(visitor)
    }
    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        self.scalar(Kind::Integer);
        visitor.visit_u64(0)
    }
    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        self.deserialize_f64(visitor)
    }
    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        self.scalar(Kind::Float);
        visitor.visit_f64(0.0)
    }
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        self.deserialize_any(visitor)
    }
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        self.deserialize_any(visitor)
    }
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        // An optional key has the shape of its value.
        visitor.visit_some(self)
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_newtype_struct(self)
    }
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        *self.0 = Shape::List(Box::new(Shape::Unknown));
        let Shape::List(item) = self.0 else { unreachable!("just set") };
        visitor.visit_seq(OneItem(Some(item)))
    }
    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        *self.0 = Shape::Map;
        visitor.visit_map(de::value::MapDeserializer::<std::iter::Empty<(&str, &str)>, ProbeError>::new(std::iter::empty()))
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ProbeError> {
        *self.0 = Shape::Table(fields.iter().map(|field| (*field, Shape::Unknown)).collect());
        let Shape::Table(slots) = self.0 else { unreachable!("just set") };
        visitor.visit_map(Fields { slots, next: 0 })
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ProbeError> {
        self.scalar(Kind::Text);
        let first = variants.first().copied().unwrap_or_default();
        visitor.visit_enum(StrDeserializer::<ProbeError>::new(first))
    }

    serde::forward_to_deserialize_any! {
        i128 u128 char bytes byte_buf unit unit_struct tuple tuple_struct identifier ignored_any
    }
}

/// A struct's fields, each probed into its slot.
struct Fields<'a> {
    slots: &'a mut Vec<(&'static str, Shape)>,
    next: usize,
}

impl<'de> MapAccess<'de> for Fields<'_> {
    type Error = ProbeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, ProbeError> {
        match self.slots.get(self.next) {
            Some((name, _)) => seed.deserialize(StrDeserializer::<ProbeError>::new(name)).map(Some),
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, ProbeError> {
        let slot = &mut self.slots[self.next].1;
        self.next += 1;
        seed.deserialize(Probe(slot))
    }
}

/// A list probed through its one item.
struct OneItem<'a>(Option<&'a mut Shape>);

impl<'de> SeqAccess<'de> for OneItem<'_> {
    type Error = ProbeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, ProbeError> {
        match self.0.take() {
            Some(slot) => seed.deserialize(Probe(slot)).map(Some),
            None => Ok(None),
        }
    }
}

impl Shape {
    /// The shape of key `name` of this table.
    pub fn key(&self, name: &str) -> Option<&Shape> {
        match self {
            Shape::Table(fields) => fields.iter().find(|(field, _)| *field == name).map(|(_, shape)| shape),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn the_config_structs_give_every_section_key_and_kind() {
        let shape = of::<Config>();
        let key = |path: &[&str]| path.iter().try_fold(&shape, |s, k| s.key(k)).cloned();
        assert_eq!(key(&["http", "listen"]), Some(Shape::Scalar(Kind::Text)));
        assert_eq!(key(&["preview", "quality"]), Some(Shape::Scalar(Kind::Integer)));
        assert_eq!(key(&["reload", "enabled"]), Some(Shape::Scalar(Kind::Bool)));
        assert_eq!(key(&["database", "sqlite_synchronous"]), Some(Shape::Scalar(Kind::Text)));
        assert_eq!(key(&["forward", "slide_endpoint"]), Some(Shape::Scalar(Kind::Text)));
        let Some(Shape::List(tenant)) = key(&["tenant"]) else { panic!("tenant is a list: {shape:?}") };
        assert_eq!(tenant.key("api_key"), Some(&Shape::Scalar(Kind::Text)));
        let Some(Shape::List(medium)) = key(&["storage", "medium"]) else { panic!("storage.medium is a list") };
        assert_eq!(medium.key("path"), Some(&Shape::Scalar(Kind::Text)));
    }
}
