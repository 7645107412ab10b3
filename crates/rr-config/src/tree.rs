//! Helpers on the `serde_json::Value` configuration tree.

use serde_json::{Map, Value};

use crate::expand::expand;

/// Lower-cases every map key, recursively (also inside lists), like viper.
///
/// When two keys differ only by case, the one sorting last in the original
/// spelling wins (viper keeps one of them too, without an error).
pub(crate) fn lowercase_keys(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                out.insert(k.to_lowercase(), lowercase_keys(v));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.into_iter().map(lowercase_keys).collect()),
        other => other,
    }
}

/// Expands environment variables in every string value (map values and list
/// items at any depth; keys are left alone). A string that expansion changed
/// is re-typed with [`scalar_from_str`], so `${WORKERS:-4}` becomes the
/// number 4, as RoadRunner's weak decoding would see it.
///
/// RoadRunner only expands strings that are map values or items of a list of
/// strings; expanding everywhere is a superset (e.g. strings in a list of maps).
pub(crate) fn expand_env(value: &mut Value, env: &dyn Fn(&str) -> Option<String>) {
    match value {
        Value::String(s) => {
            if let Some(expanded) = expand(s, env) {
                *value = scalar_from_str(&expanded).unwrap_or(Value::String(expanded));
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| expand_env(v, env)),
        Value::Object(map) => map.values_mut().for_each(|v| expand_env(v, env)),
        _ => {}
    }
}

/// Interprets `s` as a plain YAML 1.2 scalar when it is *exactly* an integer
/// (decimal, optional sign), a finite float (`1.5`, `-2e3`, `.5`) or a boolean
/// (`true`/`True`/`TRUE`/`false`/`False`/`FALSE`). Anything else (including
/// `null`, `yes`, `0x1F` and integers too large for 64 bits) returns `None`.
pub(crate) fn scalar_from_str(s: &str) -> Option<Value> {
    match s {
        "true" | "True" | "TRUE" => return Some(Value::Bool(true)),
        "false" | "False" | "FALSE" => return Some(Value::Bool(false)),
        _ => {}
    }
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    if !digits.is_empty() && digits.bytes().all(|c| c.is_ascii_digit()) {
        if let Ok(n) = s.parse::<i64>() {
            return Some(Value::from(n));
        }
        if let Ok(n) = s.strip_prefix('+').unwrap_or(s).parse::<u64>() {
            return Some(Value::from(n));
        }
        return None;
    }
    if is_yaml_float(digits) {
        let f: f64 = s.parse().ok()?;
        return serde_json::Number::from_f64(f).map(Value::Number);
    }
    None
}

/// YAML 1.2 core float syntax without the sign: `(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`.
fn is_yaml_float(s: &str) -> bool {
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let mantissa_ok = match mantissa.split_once('.') {
        Some(("", frac)) => !frac.is_empty() && frac.bytes().all(|c| c.is_ascii_digit()),
        Some((int, frac)) => {
            int.bytes().all(|c| c.is_ascii_digit()) && frac.bytes().all(|c| c.is_ascii_digit())
        }
        None => !mantissa.is_empty() && mantissa.bytes().all(|c| c.is_ascii_digit()),
    };
    let exponent_ok = match exponent {
        None => true,
        Some(e) => {
            let e = e.strip_prefix(['-', '+']).unwrap_or(e);
            !e.is_empty() && e.bytes().all(|c| c.is_ascii_digit())
        }
    };
    mantissa_ok && exponent_ok
}

/// Go-style type name used in `version should be a string` errors.
pub(crate) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "map",
    }
}

/// Splits a dotted key into lower-cased segments; `""` is the root.
pub(crate) fn segments(key: &str) -> Vec<String> {
    if key.is_empty() {
        return Vec::new();
    }
    key.split('.').map(str::to_lowercase).collect()
}

/// Walks `segments` through nested maps.
pub(crate) fn lookup<'a>(root: &'a Value, segments: &[String]) -> Option<&'a Value> {
    segments
        .iter()
        .try_fold(root, |node, seg| node.as_object().and_then(|m| m.get(seg)))
}

/// Sets `segments` to `value`, creating intermediate maps and replacing any
/// non-map found on the way. `segments` must not be empty.
pub(crate) fn set(root: &mut Map<String, Value>, segments: &[String], value: Value) {
    let Some((last, parents)) = segments.split_last() else {
        return;
    };
    let mut node = root;
    for seg in parents {
        let entry = node
            .entry(seg.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        node = match entry {
            Value::Object(map) => map,
            _ => return, // cannot happen: replaced with a map just above
        };
    }
    node.insert(last.clone(), value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scalars() {
        assert_eq!(scalar_from_str("4"), Some(json!(4)));
        assert_eq!(scalar_from_str("-4"), Some(json!(-4)));
        assert_eq!(scalar_from_str("+4"), Some(json!(4)));
        assert_eq!(
            scalar_from_str("18446744073709551615"),
            Some(json!(u64::MAX))
        );
        assert_eq!(scalar_from_str("18446744073709551616"), None);
        assert_eq!(scalar_from_str("1.5"), Some(json!(1.5)));
        assert_eq!(scalar_from_str("-.5"), Some(json!(-0.5)));
        assert_eq!(scalar_from_str("1."), Some(json!(1.0)));
        assert_eq!(scalar_from_str("2e3"), Some(json!(2000.0)));
        assert_eq!(scalar_from_str("true"), Some(json!(true)));
        assert_eq!(scalar_from_str("FALSE"), Some(json!(false)));
        for s in [
            "",
            "-",
            "+",
            ".",
            "e3",
            "1e",
            "1.2.3",
            "yes",
            "on",
            "null",
            "0x1F",
            "1_000",
            "500ms",
            " 4",
            "4 ",
            ".inf",
            "NaN",
            "1e999",
            "php app.php",
        ] {
            assert_eq!(scalar_from_str(s), None, "{s:?}");
        }
    }

    #[test]
    fn set_creates_and_replaces() {
        let mut root = Map::new();
        root.insert("a".into(), json!("scalar"));
        set(&mut root, &["a".into(), "b".into(), "c".into()], json!(1));
        set(&mut root, &["x".into()], json!(2));
        assert_eq!(Value::Object(root), json!({"a": {"b": {"c": 1}}, "x": 2}));
    }

    #[test]
    fn lowercases_recursively() {
        let v = lowercase_keys(json!({"A": {"B": [{"C": 1}]}, "d": "KeepValue"}));
        assert_eq!(v, json!({"a": {"b": [{"c": 1}]}, "d": "KeepValue"}));
    }
}
