//! Environment variable expansion in configuration values.
//!
//! Mirrors roadrunner-server/config `expand.go` (`ExpandVal`) for the forms
//! real configurations use:
//!
//! * `$NAME` — `NAME` is the longest run of ASCII letters, digits and `_`;
//! * `${NAME}` — anything up to the first `}` is the name;
//! * `${NAME:-default}` — `default` (taken literally, not expanded again)
//!   when `NAME` is unset **or empty**.
//!
//! An unset variable expands to the empty string. A `$` that is not followed
//! by a name character or `{` is kept literally, and so are an unterminated
//! `${` and an empty `${}` (Go eats those two; keeping them makes a typo
//! visible instead of silently deleting text). There is no escape for a
//! literal `$NAME`, as in RoadRunner.
//!
//! Deliberate difference: RoadRunner switches *every* `$X` in a value to
//! default-parsing as soon as `:-` appears anywhere in the value, which turns
//! e.g. `$HOST:${PORT:-80}` into an empty string. We do not reproduce that
//! quirk: each reference is expanded on its own.

/// Expands `$NAME`, `${NAME}` and `${NAME:-default}` in `input` using `env`.
///
/// Returns `None` when the input contains no expansion at all (so callers can
/// tell "changed by expansion" apart from "left as written").
pub(crate) fn expand(input: &str, env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    if !input.contains('$') {
        return None;
    }
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    let mut changed = false;
    // `start` is the beginning of the not yet copied literal text. All the
    // indices below sit next to ASCII bytes, so slicing is on char boundaries.
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' {
            i += 1;
            continue;
        }
        let rest = &input[i + 1..];
        if let Some(body) = rest.strip_prefix('{') {
            let Some(close) = body.find('}') else {
                // Unterminated `${`: keep the rest literally.
                break;
            };
            let inner = &body[..close];
            if inner.is_empty() {
                // `${}`: keep literally.
                i += 3;
                continue;
            }
            out.push_str(&input[start..i]);
            let value = match inner.split_once(":-") {
                Some((name, default)) => match lookup(env, name) {
                    Some(v) if !v.is_empty() => v,
                    _ => default.to_owned(),
                },
                None => lookup(env, inner).unwrap_or_default(),
            };
            out.push_str(&value);
            changed = true;
            i += 1 + 1 + close + 1; // `$` `{` inner `}`
            start = i;
        } else {
            let len = rest
                .bytes()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == b'_')
                .count();
            if len == 0 {
                // `$` followed by a non-name character: literal.
                i += 1;
                continue;
            }
            out.push_str(&input[start..i]);
            out.push_str(&lookup(env, &rest[..len]).unwrap_or_default());
            changed = true;
            i += 1 + len;
            start = i;
        }
    }
    if !changed {
        return None;
    }
    out.push_str(&input[start..]);
    Some(out)
}

/// Looks a variable up, treating names the OS cannot hold as unset.
fn lookup(env: &dyn Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    if name.is_empty() || name.contains(['=', '\0']) {
        return None;
    }
    env(name)
}

/// Reads the process environment; non-UTF-8 values are converted lossily.
pub(crate) fn process_env(name: &str) -> Option<String> {
    // `var_os` may panic on names containing `=` or NUL; `lookup` filters those.
    std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOME" => Some("/home/rr".into()),
            "PORT" => Some("8080".into()),
            "EMPTY" => Some(String::new()),
            "ÜBER" => Some("u".into()),
            _ => None,
        }
    }

    fn x(s: &str) -> Option<String> {
        expand(s, &env)
    }

    #[test]
    fn plain_forms() {
        assert_eq!(x("no dollars"), None);
        assert_eq!(x("$HOME/x").as_deref(), Some("/home/rr/x"));
        assert_eq!(x("${HOME}x").as_deref(), Some("/home/rrx"));
        assert_eq!(x("$HOMEx").as_deref(), Some(""));
        assert_eq!(x("a${UNSET}b").as_deref(), Some("ab"));
        assert_eq!(x("$UNSET").as_deref(), Some(""));
        assert_eq!(
            x("tcp://127.0.0.1:$PORT").as_deref(),
            Some("tcp://127.0.0.1:8080")
        );
    }

    #[test]
    fn defaults() {
        assert_eq!(x("${PORT:-1}").as_deref(), Some("8080"));
        assert_eq!(x("${UNSET:-1}").as_deref(), Some("1"));
        assert_eq!(x("${EMPTY:-1}").as_deref(), Some("1"));
        assert_eq!(x("${UNSET:-}").as_deref(), Some(""));
        assert_eq!(x("${UNSET:-a:-b}").as_deref(), Some("a:-b"));
        assert_eq!(x("${UNSET:-$HOME}").as_deref(), Some("$HOME"));
        assert_eq!(
            x("tcp://127.0.0.1:${RPC_PORT:-36643}").as_deref(),
            Some("tcp://127.0.0.1:36643")
        );
        // Not RoadRunner's quirk: `$HOST` stays independent of the `:-` elsewhere.
        assert_eq!(x("$HOME:${UNSET:-80}").as_deref(), Some("/home/rr:80"));
    }

    #[test]
    fn literal_dollars() {
        assert_eq!(x("$"), None);
        assert_eq!(x("a$"), None);
        assert_eq!(x("5$ each"), None);
        assert_eq!(x("$-x"), None);
        assert_eq!(x("${}"), None);
        assert_eq!(x("${unterminated"), None);
        assert_eq!(x("$$HOME").as_deref(), Some("$/home/rr"));
        assert_eq!(x("${} $HOME").as_deref(), Some("${} /home/rr"));
        assert_eq!(x("$HOME ${oops").as_deref(), Some("/home/rr ${oops"));
    }

    #[test]
    fn unicode_is_kept() {
        assert_eq!(x("ä$HOMEö€").as_deref(), Some("ä/home/rrö€"));
        assert_eq!(x("${ÜBER}").as_deref(), Some("u"));
        assert_eq!(x("$ÜBER"), None);
        assert_eq!(x("${A=B}").as_deref(), Some(""));
    }

    proptest! {
        #[test]
        fn never_panics(s in any::<String>()) {
            let _ = expand(&s, &env);
        }

        #[test]
        fn never_panics_dollar_heavy(s in "[${}:\\-A-Z_a-zä€0-9 ]{0,40}") {
            let out = expand(&s, &env);
            if !s.contains('$') {
                prop_assert_eq!(out, None);
            }
        }
    }
}
