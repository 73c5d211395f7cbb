//! `fields=a,b,c`: keep only some top-level fields of each item of a list.
//!
//! The items are written straight to the reply by a serializer adapter
//! that drops the other fields of the item's struct as they pass, so a
//! selection costs no intermediate `serde_json::Value`.

use std::fmt;

use ironidc_core::CoreError;
use serde::ser::{self, Serialize, SerializeMap, Serializer};

/// A checked selection of top-level field names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldSet {
    names: Vec<&'static str>,
}

impl FieldSet {
    /// Parse `fields` (comma-separated, blanks ignored) against the names
    /// an item has. An unknown name is a 400 naming `param`; an empty
    /// list selects nothing, so it is refused too.
    pub fn parse(param: &str, text: &str, known: &[&'static str]) -> Result<Self, CoreError> {
        let mut names = Vec::new();
        for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let Some(found) = known.iter().find(|k| **k == name) else {
                return Err(CoreError::invalid(
                    param,
                    format!("unknown field {name:?} (known: {})", known.join(", ")),
                ));
            };
            if !names.contains(found) {
                names.push(*found);
            }
        }
        if names.is_empty() {
            return Err(CoreError::invalid(
                param,
                format!("names no field (known: {})", known.join(", ")),
            ));
        }
        Ok(Self { names })
    }

    fn keeps(&self, name: &str) -> bool {
        self.names.contains(&name)
    }
}

/// `value` with only the selected fields of its top-level struct, or
/// whole without a selection. Values that are not structs pass whole.
pub struct Picked<'a, T> {
    pub value: &'a T,
    pub fields: Option<&'a FieldSet>,
}

impl<T: Serialize> Serialize for Picked<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.fields {
            None => self.value.serialize(serializer),
            Some(fields) => self.value.serialize(Pick {
                inner: serializer,
                fields,
            }),
        }
    }
}

/// The adapter: structs become maps of their kept fields; everything else
/// is handed to the real serializer unchanged.
struct Pick<'a, S> {
    inner: S,
    fields: &'a FieldSet,
}

/// A struct being written as a map of its kept fields.
struct PickStruct<'a, M> {
    map: M,
    fields: &'a FieldSet,
}

impl<M: SerializeMap> ser::SerializeStruct for PickStruct<'_, M> {
    type Ok = M::Ok;
    type Error = M::Error;

    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Self::Error> {
        if self.fields.keeps(key) {
            self.map.serialize_entry(key, value)?;
        }
        Ok(())
    }

    fn end(self) -> Result<Self::Ok, Self::Error> {
        self.map.end()
    }
}

macro_rules! forward {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {
        $(
            fn $method(self, $($arg: $ty),*) -> Result<Self::Ok, Self::Error> {
                self.inner.$method($($arg),*)
            }
        )*
    };
}

impl<'a, S: Serializer> Serializer for Pick<'a, S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = S::SerializeSeq;
    type SerializeTuple = S::SerializeTuple;
    type SerializeTupleStruct = S::SerializeTupleStruct;
    type SerializeTupleVariant = S::SerializeTupleVariant;
    type SerializeMap = S::SerializeMap;
    type SerializeStruct = PickStruct<'a, S::SerializeMap>;
    type SerializeStructVariant = S::SerializeStructVariant;

    forward! {
        serialize_bool(v: bool);
        serialize_i8(v: i8);
        serialize_i16(v: i16);
        serialize_i32(v: i32);
        serialize_i64(v: i64);
        serialize_u8(v: u8);
        serialize_u16(v: u16);
        serialize_u32(v: u32);
        serialize_u64(v: u64);
        serialize_f32(v: f32);
        serialize_f64(v: f64);
        serialize_char(v: char);
        serialize_str(v: &str);
        serialize_bytes(v: &[u8]);
        serialize_none();
        serialize_unit();
        serialize_unit_struct(name: &'static str);
        serialize_unit_variant(name: &'static str, index: u32, variant: &'static str);
    }

    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<Self::Ok, Self::Error> {
        self.inner.serialize_some(value)
    }

    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<Self::Ok, Self::Error> {
        self.inner.serialize_newtype_struct(name, value)
    }

    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<Self::Ok, Self::Error> {
        self.inner
            .serialize_newtype_variant(name, index, variant, value)
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, Self::Error> {
        self.inner.serialize_seq(len)
    }

    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, Self::Error> {
        self.inner.serialize_tuple(len)
    }

    fn serialize_tuple_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleStruct, Self::Error> {
        self.inner.serialize_tuple_struct(name, len)
    }

    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleVariant, Self::Error> {
        self.inner
            .serialize_tuple_variant(name, index, variant, len)
    }

    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, Self::Error> {
        self.inner.serialize_map(len)
    }

    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, Self::Error> {
        // The kept count is not known before the fields pass: a map of
        // unknown length.
        Ok(PickStruct {
            map: self.inner.serialize_map(None)?,
            fields: self.fields,
        })
    }

    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStructVariant, Self::Error> {
        self.inner
            .serialize_struct_variant(name, index, variant, len)
    }

    fn collect_str<T: ?Sized + fmt::Display>(self, value: &T) -> Result<Self::Ok, Self::Error> {
        self.inner.collect_str(value)
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[derive(serde::Serialize)]
    struct Item {
        id: i64,
        name: String,
        nested: Inner,
    }

    #[derive(serde::Serialize)]
    struct Inner {
        a: u8,
        b: u8,
    }

    const KNOWN: &[&str] = &["id", "name", "nested"];

    fn item() -> Item {
        Item {
            id: 7,
            name: "x".into(),
            nested: Inner { a: 1, b: 2 },
        }
    }

    #[test]
    fn keeps_only_the_selected_top_level_fields_in_declaration_order() {
        let fields = FieldSet::parse("fields", "nested, id,id", KNOWN).unwrap();
        let item = item();
        let text = serde_json::to_string(&Picked {
            value: &item,
            fields: Some(&fields),
        })
        .unwrap();
        // Nested structs stay whole.
        assert_eq!(text, r#"{"id":7,"nested":{"a":1,"b":2}}"#);
    }

    #[test]
    fn without_a_selection_the_value_is_whole() {
        let item = item();
        let whole = serde_json::to_string(&Picked {
            value: &item,
            fields: None,
        })
        .unwrap();
        assert_eq!(whole, serde_json::to_string(&item).unwrap());
    }

    #[test]
    fn unknown_or_no_names_are_refused_naming_the_parameter() {
        for bad in ["id,color", "", " , "] {
            let e = FieldSet::parse("fields", bad, KNOWN).unwrap_err();
            assert!(e.to_string().starts_with("fields"), "{bad:?}: {e}");
        }
    }
}
