//! A weakly typed `serde` deserializer over the configuration tree.
//!
//! RoadRunner decodes sections with mapstructure's `WeaklyTypedInput` plus
//! viper's decode hooks, so configurations in the wild rely on conversions a
//! strict decoder would reject. [`Weak`] reproduces the ones that matter:
//!
//! | target | accepted besides its own type |
//! |---|---|
//! | string | numbers (`8080` → `"8080"`, floats without exponent), bools (`true` → `"1"`, `false` → `"0"`, as mapstructure does), `null` → `""` |
//! | integers | decimal strings (also `0x`/`0o`/`0b`), `""` → 0, bools → 1/0, whole floats, `null` → 0 |
//! | floats | numeric strings, `""` → 0, bools, `null` |
//! | bool | Go `strconv.ParseBool` strings (`1`, `t`, `true`, `0`, `f`, `false`, ...), `""` → false, numbers (≠ 0), `null` |
//! | list | a string split on `,` (viper's `StringToSliceHookFunc(",")`; `""` → empty), a single scalar → one-element list, `null` → empty |
//! | struct / map | `null` → empty |
//!
//! Inside a struct, a key whose value is `null` is skipped, so the field keeps
//! its `#[serde(default)]` — mapstructure likewise leaves a field untouched
//! when the input is nil. Deliberate difference: a float with a fraction is
//! not truncated into an integer field (Go silently drops the fraction).
//!
//! Untagged enums and `#[serde(flatten)]` buffer the input through
//! `deserialize_any`, where these conversions do not apply.

use serde::de::value::{BorrowedStrDeserializer, SeqDeserializer};
use serde::de::{self, DeserializeSeed, Deserializer, IntoDeserializer, Unexpected, Visitor};
use serde::forward_to_deserialize_any;
use serde_json::{Map, Number, Value};

type Error = serde_json::Error;

/// Weakly typed deserializer over a borrowed [`Value`]; see the module docs.
#[derive(Clone, Copy)]
pub(crate) struct Weak<'de>(pub(crate) &'de Value);

fn unexpected(value: &Value) -> Unexpected<'_> {
    match value {
        Value::Null => Unexpected::Unit,
        Value::Bool(b) => Unexpected::Bool(*b),
        Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => Unexpected::Unsigned(u),
            (_, Some(i), _) => Unexpected::Signed(i),
            (_, _, f) => Unexpected::Float(f.unwrap_or(f64::NAN)),
        },
        Value::String(s) => Unexpected::Str(s),
        Value::Array(_) => Unexpected::Seq,
        Value::Object(_) => Unexpected::Map,
    }
}

/// Go `strconv.ParseBool`.
fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Integer text: optional sign, then decimal digits or a `0x`/`0o`/`0b`
/// prefixed number; `_` separators are allowed after a prefix (Go base 0).
/// Unlike Go, a leading `0` does not mean octal.
fn parse_go_int(s: &str) -> Option<i128> {
    let (negative, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = body.get(..2).map(str::to_ascii_lowercase);
    let (radix, digits) = match lower.as_deref() {
        Some("0x") => (16, &body[2..]),
        Some("0o") => (8, &body[2..]),
        Some("0b") => (2, &body[2..]),
        _ => (10, body),
    };
    let digits: String = if radix == 10 {
        digits.to_owned()
    } else {
        digits.chars().filter(|c| *c != '_').collect()
    };
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    let magnitude = i128::from_str_radix(&digits, radix).ok()?;
    Some(if negative { -magnitude } else { magnitude })
}

/// Formats a number the way mapstructure turns it into a string
/// (`strconv.FormatFloat(f, 'f', -1, 64)` for floats: no exponent).
fn number_to_string(n: &Number) -> String {
    match n.as_f64() {
        Some(f) if n.is_f64() => format!("{f}"),
        _ => n.to_string(),
    }
}

impl<'de> Weak<'de> {
    fn invalid<V: Visitor<'de>, T>(self, visitor: &V) -> Result<T, Error> {
        Err(de::Error::invalid_type(unexpected(self.0), visitor))
    }

    fn visit_integer<V: Visitor<'de>>(self, n: i128, visitor: V) -> Result<V::Value, Error> {
        if let Ok(i) = i64::try_from(n) {
            visitor.visit_i64(i)
        } else if let Ok(u) = u64::try_from(n) {
            visitor.visit_u64(u)
        } else {
            Err(de::Error::invalid_value(
                Unexpected::Other("an integer out of 64-bit range"),
                &visitor,
            ))
        }
    }

    fn integer<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    visitor.visit_u64(u)
                } else if let Some(i) = n.as_i64() {
                    visitor.visit_i64(i)
                } else {
                    match n.as_f64() {
                        Some(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.2e18 => {
                            // Whole and well inside i64, so the cast is exact.
                            visitor.visit_i64(f as i64)
                        }
                        _ => self.invalid(&visitor),
                    }
                }
            }
            Value::String(s) if s.is_empty() => visitor.visit_u64(0),
            Value::String(s) => match parse_go_int(s.trim()) {
                Some(n) => self.visit_integer(n, visitor),
                None => self.invalid(&visitor),
            },
            Value::Bool(b) => visitor.visit_u64(u64::from(*b)),
            Value::Null => visitor.visit_u64(0),
            _ => self.invalid(&visitor),
        }
    }

    fn float<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Number(n) => match n.as_f64() {
                Some(f) => visitor.visit_f64(f),
                None => self.invalid(&visitor),
            },
            Value::String(s) if s.is_empty() => visitor.visit_f64(0.0),
            Value::String(s) => match s.trim().parse::<f64>() {
                Ok(f) => visitor.visit_f64(f),
                Err(_) => self.invalid(&visitor),
            },
            Value::Bool(b) => visitor.visit_f64(if *b { 1.0 } else { 0.0 }),
            Value::Null => visitor.visit_f64(0.0),
            _ => self.invalid(&visitor),
        }
    }
}

impl<'de> IntoDeserializer<'de, Error> for Weak<'de> {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'de> Deserializer<'de> for Weak<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    visitor.visit_u64(u)
                } else if let Some(i) = n.as_i64() {
                    visitor.visit_i64(i)
                } else {
                    visitor.visit_f64(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Value::String(s) => visitor.visit_borrowed_str(s),
            Value::Array(items) => visitor.visit_seq(SeqDeserializer::new(items.iter().map(Weak))),
            Value::Object(map) => visitor.visit_map(WeakMap::new(map, false)),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::String(s) if s.is_empty() => visitor.visit_bool(false),
            Value::String(s) => match parse_go_bool(s.trim()) {
                Some(b) => visitor.visit_bool(b),
                None => self.invalid(&visitor),
            },
            Value::Number(n) => visitor.visit_bool(n.as_f64().is_some_and(|f| f != 0.0)),
            Value::Null => visitor.visit_bool(false),
            _ => self.invalid(&visitor),
        }
    }

    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.integer(visitor)
    }
    fn deserialize_i16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.integer(visitor)
    }
    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.integer(visitor)
    }
    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.integer(visitor)
    }
    fn deserialize_i128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.integer(visitor)
    }
    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.integer(visitor)
    }
    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.integer(visitor)
    }
    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.integer(visitor)
    }
    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.integer(visitor)
    }
    fn deserialize_u128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.integer(visitor)
    }
    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.float(visitor)
    }
    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.float(visitor)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::String(s) => visitor.visit_borrowed_str(s),
            Value::Number(n) => visitor.visit_string(number_to_string(n)),
            Value::Bool(b) => visitor.visit_borrowed_str(if *b { "1" } else { "0" }),
            Value::Null => visitor.visit_borrowed_str(""),
            _ => self.invalid(&visitor),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::String(s) => visitor.visit_borrowed_bytes(s.as_bytes()),
            _ => self.deserialize_seq(visitor),
        }
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Null => visitor.visit_unit(),
            _ => self.invalid(&visitor),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Array(items) => visitor.visit_seq(SeqDeserializer::new(items.iter().map(Weak))),
            Value::Null => visitor.visit_seq(SeqDeserializer::new(std::iter::empty::<Weak<'de>>())),
            Value::String(s) if s.is_empty() => {
                visitor.visit_seq(SeqDeserializer::new(std::iter::empty::<Weak<'de>>()))
            }
            Value::String(s) => visitor.visit_seq(SeqDeserializer::new(
                s.split(',').map(BorrowedStrDeserializer::<Error>::new),
            )),
            Value::Bool(_) | Value::Number(_) => {
                visitor.visit_seq(SeqDeserializer::new(std::iter::once(self)))
            }
            Value::Object(_) => self.invalid(&visitor),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Object(map) => visitor.visit_map(WeakMap::new(map, false)),
            Value::Null => visitor.visit_map(WeakMap::empty()),
            _ => self.invalid(&visitor),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.0 {
            Value::Object(map) => visitor.visit_map(WeakMap::new(map, true)),
            Value::Null => visitor.visit_map(WeakMap::empty()),
            _ => self.invalid(&visitor),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.0 {
            Value::String(s) => visitor.visit_enum(BorrowedStrDeserializer::<Error>::new(s)),
            // Newtype/struct variants (`{variant: ...}`): decoded strictly.
            other => other.deserialize_enum(name, variants, visitor),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }
}

/// Map access over a borrowed JSON object, values wrapped in [`Weak`].
struct WeakMap<'de> {
    iter: Option<serde_json::map::Iter<'de>>,
    skip_null: bool,
    value: Option<&'de Value>,
}

impl<'de> WeakMap<'de> {
    fn new(map: &'de Map<String, Value>, skip_null: bool) -> Self {
        WeakMap {
            iter: Some(map.iter()),
            skip_null,
            value: None,
        }
    }

    fn empty() -> Self {
        WeakMap {
            iter: None,
            skip_null: false,
            value: None,
        }
    }
}

impl<'de> de::MapAccess<'de> for WeakMap<'de> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some(iter) = self.iter.as_mut() else {
            return Ok(None);
        };
        for (key, value) in iter.by_ref() {
            if self.skip_null && value.is_null() {
                continue;
            }
            self.value = Some(value);
            return seed.deserialize(KeyDeserializer(key)).map(Some);
        }
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        match self.value.take() {
            Some(value) => seed.deserialize(Weak(value)),
            None => Err(de::Error::custom("map value requested before its key")),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        self.iter.as_ref().map(|it| it.len())
    }
}

/// Map keys: strings, also usable as integers/bools for maps keyed by them.
struct KeyDeserializer<'de>(&'de str);

impl<'de> Deserializer<'de> for KeyDeserializer<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_borrowed_str(self.0)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_enum(BorrowedStrDeserializer::<Error>::new(self.0))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_some(self)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match parse_go_bool(self.0) {
            Some(b) => visitor.visit_bool(b),
            None => visitor.visit_borrowed_str(self.0),
        }
    }

    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.integer(visitor)
    }
    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.integer(visitor)
    }
    fn deserialize_i16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.integer(visitor)
    }
    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.integer(visitor)
    }
    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.integer(visitor)
    }
    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.integer(visitor)
    }
    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.integer(visitor)
    }
    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.integer(visitor)
    }

    forward_to_deserialize_any! {
        i128 u128 f32 f64 char str string bytes byte_buf unit unit_struct seq tuple
        tuple_struct map struct identifier ignored_any
    }
}

impl<'de> KeyDeserializer<'de> {
    fn integer<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match parse_go_int(self.0).map(i64::try_from) {
            Some(Ok(i)) => visitor.visit_i64(i),
            _ => visitor.visit_borrowed_str(self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;
    use std::collections::{BTreeMap, HashMap};

    fn weak<T: for<'a> Deserialize<'a>>(v: &Value) -> Result<T, String> {
        T::deserialize(Weak(v)).map_err(|e| e.to_string())
    }

    #[test]
    fn strings_from_scalars() {
        assert_eq!(weak::<String>(&json!(8080)), Ok("8080".into()));
        assert_eq!(weak::<String>(&json!(-1)), Ok("-1".into()));
        assert_eq!(weak::<String>(&json!(1.5)), Ok("1.5".into()));
        assert_eq!(weak::<String>(&json!(2.0)), Ok("2".into()));
        assert_eq!(weak::<String>(&json!(true)), Ok("1".into()));
        assert_eq!(weak::<String>(&json!(null)), Ok(String::new()));
        assert!(weak::<String>(&json!([1])).is_err());
        let env: HashMap<String, String> =
            weak(&json!({"port": 8080, "debug": false, "name": "x"})).expect("map");
        assert_eq!(env.get("port").map(String::as_str), Some("8080"));
        assert_eq!(env.get("debug").map(String::as_str), Some("0"));
    }

    #[test]
    fn numbers_from_strings() {
        assert_eq!(weak::<u32>(&json!("42")), Ok(42));
        assert_eq!(weak::<i64>(&json!("-42")), Ok(-42));
        assert_eq!(weak::<u32>(&json!("0x1F")), Ok(31));
        assert_eq!(weak::<u32>(&json!("0b1_01")), Ok(5));
        assert_eq!(weak::<u32>(&json!("")), Ok(0));
        assert_eq!(weak::<u32>(&json!(true)), Ok(1));
        assert_eq!(weak::<u32>(&json!(4.0)), Ok(4));
        assert_eq!(weak::<f64>(&json!("1.5")), Ok(1.5));
        assert_eq!(weak::<f64>(&json!(3)), Ok(3.0));
        let err = weak::<u32>(&json!("abc")).err().unwrap_or_default();
        assert_eq!(err, "invalid type: string \"abc\", expected u32");
        assert!(weak::<u32>(&json!("-1")).is_err());
        assert!(weak::<u8>(&json!(300)).is_err());
        assert!(weak::<u32>(&json!(2.5)).is_err());
        assert!(weak::<u64>(&json!("99999999999999999999999")).is_err());
    }

    #[test]
    fn bools() {
        assert_eq!(weak::<bool>(&json!("true")), Ok(true));
        assert_eq!(weak::<bool>(&json!("1")), Ok(true));
        assert_eq!(weak::<bool>(&json!("F")), Ok(false));
        assert_eq!(weak::<bool>(&json!("")), Ok(false));
        assert_eq!(weak::<bool>(&json!(2)), Ok(true));
        assert!(weak::<bool>(&json!("yes")).is_err());
    }

    #[test]
    fn lists() {
        assert_eq!(
            weak::<Vec<String>>(&json!("a,b")),
            Ok(vec!["a".into(), "b".into()])
        );
        assert_eq!(
            weak::<Vec<String>>(&json!("stderr")),
            Ok(vec!["stderr".into()])
        );
        assert_eq!(weak::<Vec<String>>(&json!("")), Ok(vec![]));
        assert_eq!(weak::<Vec<String>>(&json!(null)), Ok(vec![]));
        assert_eq!(weak::<Vec<u16>>(&json!(5)), Ok(vec![5]));
        assert_eq!(
            weak::<Vec<String>>(&json!([1, "x"])),
            Ok(vec!["1".into(), "x".into()])
        );
    }

    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(default)]
    struct S {
        name: String,
        workers: u32,
        mode: Mode,
        nested: Option<Box<S>>,
    }

    impl Default for S {
        fn default() -> Self {
            S {
                name: "default".into(),
                workers: 7,
                mode: Mode::Fast,
                nested: None,
            }
        }
    }

    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(rename_all = "lowercase")]
    enum Mode {
        Fast,
        Slow,
    }

    #[test]
    fn structs_skip_nulls_and_keep_defaults() {
        let s: S = weak(&json!({"name": null, "workers": "3", "mode": "slow", "nested": null}))
            .expect("struct");
        assert_eq!(
            s,
            S {
                name: "default".into(),
                workers: 3,
                mode: Mode::Slow,
                nested: None
            }
        );
        let s: S = weak(&json!(null)).expect("null struct");
        assert_eq!(s, S::default());
        let s: S = weak(&json!({"nested": {}})).expect("nested");
        assert_eq!(s.nested.map(|n| n.workers), Some(7));
        assert!(weak::<S>(&json!("x")).is_err());
        assert!(weak::<S>(&json!({"mode": "medium"})).is_err());
    }

    #[test]
    fn map_keys_can_be_numbers() {
        let m: BTreeMap<u16, String> = weak(&json!({"200": "ok", "404": 1})).expect("keys");
        assert_eq!(m.get(&404).map(String::as_str), Some("1"));
    }

    #[test]
    fn any_is_untouched() {
        let v = json!({"a": [1, "x", null, {"b": true}], "c": 1.5});
        assert_eq!(weak::<Value>(&v), Ok(v.clone()));
    }
}
