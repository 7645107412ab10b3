//! `-o key.path=value` command-line overrides.

use serde_json::Value;

use crate::error::ConfigError;
use crate::expand::expand;
use crate::tree::scalar_from_str;

/// A parsed override: lower-cased key segments and the value to set.
#[derive(Debug, PartialEq)]
pub(crate) struct Override {
    pub(crate) segments: Vec<String>,
    pub(crate) value: Value,
}

const QUOTES: [char; 3] = ['"', '\'', '`'];

/// Parses one `-o` flag the way RoadRunner's `parseFlag` does, then
/// env-expands and types the value.
///
/// * no `=` → ``invalid flag `X` ``; the flag is split at the first `=`;
/// * leading spaces and quotes of the whole flag are dropped, key and value
///   are trimmed; an empty key → `key should not be empty`, an empty value
///   → `value should not be empty`;
/// * a value starting with `"`, `'` or a backtick has that quote removed
///   from both ends (one on each side, where Go trims all of them, which
///   would eat an escaped quote at the end) and `\"` unescaped; such a *quoted* value always stays a
///   string (YAML semantics of a quoted scalar), so does any value for the
///   top-level `version` key (RoadRunner's overrides are strings, and the
///   version must be one);
/// * otherwise the env-expanded value becomes a number or bool when it is
///   exactly one (`num_workers=4` → 4), else a string (`interval=500ms`).
///
/// Deliberate differences: when the whole flag was quoted
/// (`"key=value"` surviving the shell) the matching trailing quote is removed
/// too, and a key with an empty segment (`a..b`, `.a`) is rejected as an
/// invalid flag instead of creating an empty-named key.
pub(crate) fn parse_override(
    flag: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Override, ConfigError> {
    let invalid = || ConfigError::InvalidFlag(flag.to_owned());
    let leading_quote = flag
        .trim_start_matches(' ')
        .chars()
        .next()
        .filter(|c| QUOTES.contains(c));
    let trimmed = flag.trim_start_matches(|c: char| c == ' ' || QUOTES.contains(&c));
    let (key, value) = trimmed.split_once('=').ok_or_else(invalid)?;

    let key = key.trim();
    if key.is_empty() {
        return Err(ConfigError::EmptyOverrideKey);
    }
    let mut value = value.trim();
    if let Some(q) = leading_quote {
        value = value.strip_suffix(q).unwrap_or(value);
    }
    if value.is_empty() {
        return Err(ConfigError::EmptyOverrideValue);
    }

    let segments: Vec<String> = key.split('.').map(str::to_lowercase).collect();
    if segments.iter().any(String::is_empty) {
        return Err(invalid());
    }

    let (text, quoted) = match value.chars().next() {
        Some(q) if QUOTES.contains(&q) => {
            let inner = &value[q.len_utf8()..];
            let inner = inner.strip_suffix(q).unwrap_or(inner);
            (inner.replace(&format!("\\{q}"), &q.to_string()), true)
        }
        _ => (value.to_owned(), false),
    };
    let text = expand(&text, env).unwrap_or(text);
    let is_version = segments.len() == 1 && segments[0] == "version";
    let value = if quoted || is_version {
        Value::String(text)
    } else {
        scalar_from_str(&text).unwrap_or(Value::String(text))
    };
    Ok(Override { segments, value })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(name: &str) -> Option<String> {
        (name == "WORKERS").then(|| "8".to_owned())
    }

    fn p(flag: &str) -> Result<(String, Value), String> {
        parse_override(flag, &env)
            .map(|o| (o.segments.join("."), o.value))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn values_are_typed() {
        assert_eq!(
            p("ticker.pool.num_workers=4"),
            Ok(("ticker.pool.num_workers".into(), json!(4)))
        );
        assert_eq!(
            p("ticker.interval=500ms"),
            Ok(("ticker.interval".into(), json!("500ms")))
        );
        assert_eq!(p("a=true"), Ok(("a".into(), json!(true))));
        assert_eq!(p("a=1.5"), Ok(("a".into(), json!(1.5))));
        assert_eq!(p("a=$WORKERS"), Ok(("a".into(), json!(8))));
        assert_eq!(p("a=${NOPE:-3}"), Ok(("a".into(), json!(3))));
        assert_eq!(p("a=x=y"), Ok(("a".into(), json!("x=y"))));
        assert_eq!(
            p("Server.Command=php app.php"),
            Ok(("server.command".into(), json!("php app.php")))
        );
    }

    #[test]
    fn quotes() {
        assert_eq!(
            p("server.command=\"php app.php\""),
            Ok(("server.command".into(), json!("php app.php")))
        );
        assert_eq!(p("a='4'"), Ok(("a".into(), json!("4"))));
        assert_eq!(p("a=`x`"), Ok(("a".into(), json!("x"))));
        assert_eq!(
            p("a=\"say \\\"hi\\\"\""),
            Ok(("a".into(), json!("say \"hi\"")))
        );
        assert_eq!(p("\"a.b=c\""), Ok(("a.b".into(), json!("c"))));
        assert_eq!(p("a=\"\""), Ok(("a".into(), json!(""))));
        assert_eq!(p("version=3"), Ok(("version".into(), json!("3"))));
    }

    #[test]
    fn errors() {
        assert_eq!(p("novalue"), Err("invalid flag `novalue`".into()));
        assert_eq!(p("=x"), Err("key should not be empty".into()));
        assert_eq!(p("  =x"), Err("key should not be empty".into()));
        assert_eq!(p("a="), Err("value should not be empty".into()));
        assert_eq!(p("a=  "), Err("value should not be empty".into()));
        assert_eq!(p("a..b=1"), Err("invalid flag `a..b=1`".into()));
        assert_eq!(p(""), Err("invalid flag ``".into()));
    }
}
