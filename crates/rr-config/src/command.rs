//! RoadRunner's "string or list" command values (`server.command`,
//! `<plugin>.pool.command`, `server.on_init.command`).

use std::fmt;
use std::ops::Deref;

use serde::de::{self, Deserializer, SeqAccess, Visitor};

/// A command line given either as a YAML list (used verbatim, first element
/// is the program) or as a string.
///
/// A string is split like RoadRunner does (viper's `StringToSliceHookFunc(",")`
/// followed by the server plugin's own split): on commas first, and if that
/// yields exactly one piece, that piece is split on single spaces
/// (`"php app.php"` → `["php", "app.php"]`). No shell is involved and there
/// is no quoting. Deliberate difference: runs of spaces do not produce empty
/// arguments here (RoadRunner passes `""` arguments to the program), and
/// leading/trailing spaces are ignored. Comma-separated pieces are kept
/// verbatim, as in RoadRunner. An empty string or `null` is an empty list.
///
/// List items that are numbers or booleans are converted to their text
/// (RoadRunner's weak decoding does the same).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct StringOrList(pub Vec<String>);

impl StringOrList {
    /// Splits a command string the way RoadRunner does (see the type docs).
    pub fn parse(s: &str) -> StringOrList {
        if s.is_empty() {
            return StringOrList(Vec::new());
        }
        let pieces: Vec<&str> = s.split(',').collect();
        if let [single] = pieces.as_slice() {
            return StringOrList(
                single
                    .split(' ')
                    .filter(|p| !p.is_empty())
                    .map(str::to_owned)
                    .collect(),
            );
        }
        StringOrList(pieces.into_iter().map(str::to_owned).collect())
    }

    /// The arguments, program first.
    pub fn into_inner(self) -> Vec<String> {
        self.0
    }
}

impl Deref for StringOrList {
    type Target = [String];

    fn deref(&self) -> &[String] {
        &self.0
    }
}

impl From<Vec<String>> for StringOrList {
    fn from(v: Vec<String>) -> Self {
        StringOrList(v)
    }
}

impl From<StringOrList> for Vec<String> {
    fn from(v: StringOrList) -> Self {
        v.0
    }
}

impl serde::Serialize for StringOrList {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

struct CommandVisitor;

impl<'de> Visitor<'de> for CommandVisitor {
    type Value = StringOrList;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a command as a string (\"php worker.php\") or a list of strings")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<StringOrList, E> {
        Ok(StringOrList::parse(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<StringOrList, E> {
        Ok(StringOrList::default())
    }

    fn visit_none<E: de::Error>(self) -> Result<StringOrList, E> {
        Ok(StringOrList::default())
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<StringOrList, D::Error> {
        d.deserialize_any(CommandVisitor)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StringOrList, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element::<Arg>()? {
            out.push(item.0);
        }
        Ok(StringOrList(out))
    }
}

/// One list item: a string, or a number/bool converted to text.
struct Arg(String);

impl<'de> serde::Deserialize<'de> for Arg {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ArgVisitor;
        impl Visitor<'_> for ArgVisitor {
            type Value = Arg;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a command argument (string)")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Arg, E> {
                Ok(Arg(v.to_owned()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Arg, E> {
                Ok(Arg(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Arg, E> {
                Ok(Arg(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Arg, E> {
                Ok(Arg(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Arg, E> {
                Ok(Arg(v.to_string()))
            }
        }
        d.deserialize_any(ArgVisitor)
    }
}

impl<'de> serde::Deserialize<'de> for StringOrList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(CommandVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn v(list: &[&str]) -> StringOrList {
        StringOrList(list.iter().map(|s| (*s).to_owned()).collect())
    }

    fn de(value: serde_json::Value) -> Result<StringOrList, String> {
        serde_json::from_value(value).map_err(|e| e.to_string())
    }

    #[test]
    fn strings() {
        assert_eq!(StringOrList::parse("php app.php"), v(&["php", "app.php"]));
        assert_eq!(StringOrList::parse("php  app.php "), v(&["php", "app.php"]));
        assert_eq!(StringOrList::parse("php"), v(&["php"]));
        assert_eq!(StringOrList::parse(""), v(&[]));
        assert_eq!(StringOrList::parse("php,app.php"), v(&["php", "app.php"]));
        // Comma pieces are verbatim (RoadRunner): no space split afterwards.
        assert_eq!(
            StringOrList::parse("php -d x=1, app.php"),
            v(&["php -d x=1", " app.php"])
        );
        // No shell quoting.
        assert_eq!(
            StringOrList::parse("sh -c \"a b\""),
            v(&["sh", "-c", "\"a", "b\""])
        );
    }

    #[test]
    fn deserialize() {
        assert_eq!(de(json!("php app.php")), Ok(v(&["php", "app.php"])));
        assert_eq!(
            de(json!(["php", "my app.php"])),
            Ok(v(&["php", "my app.php"]))
        );
        assert_eq!(de(json!(["php", 1])), Ok(v(&["php", "1"])));
        assert_eq!(de(json!(null)), Ok(v(&[])));
        assert!(de(json!({"a": 1})).is_err());
        assert!(de(json!(["php", ["x"]])).is_err());
    }
}
