//! Go `time.Duration` syntax: parsing, formatting and serde helpers.
//!
//! RoadRunner decodes every duration key (`allocate_timeout`, `ttl`,
//! `grace_period`, ...) with mapstructure's `StringToTimeDurationHookFunc`,
//! i.e. Go's [`time.ParseDuration`](https://pkg.go.dev/time#ParseDuration):
//! an optional sign, then one or more `<decimal number><unit>` pairs with the
//! units `ns`, `us` (also `µs`/`μs`), `ms`, `s`, `m` and `h`. `"0"` alone is
//! zero, fractions are allowed (`1.5s`), spaces are not (`1h 30m` is an error
//! in Go and here). [`parse_go_duration`] is a port of Go's algorithm, including
//! its range: a duration is an `i64` count of nanoseconds (about ±292 years).
//!
//! A YAML *integer* in a duration field is a number of **nanoseconds**
//! (`allocate_timeout: 60` is 60 ns, not 60 s): that is what mapstructure
//! does, and the serde helpers here accept it for compatibility. Callers that
//! want to warn about it can use [`is_integer_nanos`] on the raw value or
//! [`crate::Config::integer_duration_warnings`].

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};

/// The hint appended to every syntax error.
const EXPECTED: &str = "expected a Go duration such as 500ms, 1s, 1m30s or 1h";

/// Nanoseconds per unit, as in Go's `unitMap`.
const UNITS: &[(&str, u64)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("\u{00b5}s", 1_000), // U+00B5 micro sign
    ("\u{03bc}s", 1_000), // U+03BC Greek letter mu
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60 * 1_000_000_000),
    ("h", 60 * 60 * 1_000_000_000),
];

/// A signed Go duration: an `i64` count of nanoseconds, exactly Go's
/// `time.Duration` (so its range is `i64::MIN..=i64::MAX` nanoseconds).
///
/// Config keys that must not be negative are usually read through
/// [`non_negative`]; this type is what [`parse_go_duration`] returns so that a
/// negative value can be reported rather than silently clamped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GoDuration {
    nanos: i64,
}

impl GoDuration {
    /// Zero.
    pub const ZERO: GoDuration = GoDuration { nanos: 0 };

    /// A duration of `nanos` nanoseconds (negative allowed).
    pub const fn from_nanos(nanos: i64) -> GoDuration {
        GoDuration { nanos }
    }

    /// The signed number of nanoseconds.
    pub const fn as_nanos(self) -> i64 {
        self.nanos
    }

    /// True when the duration is below zero.
    pub const fn is_negative(self) -> bool {
        self.nanos < 0
    }

    /// The duration as a [`std::time::Duration`], or `None` when it is negative.
    pub fn to_std(self) -> Option<Duration> {
        u64::try_from(self.nanos).ok().map(Duration::from_nanos)
    }

    /// The magnitude (absolute value) as a [`std::time::Duration`].
    pub fn abs(self) -> Duration {
        Duration::from_nanos(self.nanos.unsigned_abs())
    }
}

impl fmt::Display for GoDuration {
    /// Formats like Go's `Duration.String()` (`-1m30s`, `500ms`, `0s`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_negative() {
            f.write_str("-")?;
        }
        f.write_str(&format_nanos(u128::from(self.nanos.unsigned_abs())))
    }
}

impl std::str::FromStr for GoDuration {
    type Err = DurationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_go_duration(s)
    }
}

/// Why a duration could not be parsed or accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Not Go duration syntax.
    #[error("invalid duration \"{input}\": {EXPECTED}")]
    Syntax {
        /// The rejected text.
        input: String,
    },
    /// A number without a unit, e.g. `"10"` (Go: `missing unit in duration`).
    #[error("invalid duration \"{input}\": missing unit; {EXPECTED}")]
    MissingUnit {
        /// The rejected text.
        input: String,
    },
    /// A unit Go does not know, e.g. `"1d"`.
    #[error("invalid duration \"{input}\": unknown unit \"{unit}\" (valid units are ns, us, µs, ms, s, m, h)")]
    UnknownUnit {
        /// The rejected text.
        input: String,
        /// The unknown unit.
        unit: String,
    },
    /// The value does not fit in Go's `time.Duration` (`i64` nanoseconds, about 292 years).
    #[error("invalid duration \"{input}\": out of range (the maximum is about 292 years)")]
    Overflow {
        /// The rejected text.
        input: String,
    },
    /// A negative value where only non-negative durations make sense.
    #[error("invalid duration \"{input}\": must not be negative")]
    Negative {
        /// The rejected value, as written (or formatted when it was an integer).
        input: String,
    },
}

/// Parses Go `time.ParseDuration` syntax (`300ms`, `-1.5h`, `2h45m`, `0`).
///
/// This is a line-by-line port of Go's algorithm, so it accepts and rejects
/// exactly what Go does, with the same overflow limits.
pub fn parse_go_duration(s: &str) -> Result<GoDuration, DurationError> {
    let syntax = || DurationError::Syntax {
        input: s.to_owned(),
    };
    let overflow = || DurationError::Overflow {
        input: s.to_owned(),
    };

    let mut rest = s;
    let mut negative = false;
    if let Some(c) = rest.as_bytes().first() {
        if *c == b'-' || *c == b'+' {
            negative = *c == b'-';
            rest = &rest[1..];
        }
    }
    if rest == "0" {
        return Ok(GoDuration::ZERO);
    }
    if rest.is_empty() {
        return Err(syntax());
    }

    const LIMIT: u64 = 1 << 63;
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let first = rest.as_bytes()[0];
        if !(first == b'.' || first.is_ascii_digit()) {
            return Err(syntax());
        }

        // Integer part: [0-9]*
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let mut value: u64 = 0;
        for d in rest[..int_len].bytes() {
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(d - b'0')))
                .filter(|v| *v <= LIMIT)
                .ok_or_else(overflow)?;
        }
        let had_int = int_len > 0;
        rest = &rest[int_len..];

        // Fraction: (\.[0-9]*)?  Digits past u64 precision are consumed but ignored.
        let mut fraction: u64 = 0;
        let mut scale: f64 = 1.0;
        let mut had_fraction = false;
        if let Some(after_dot) = rest.strip_prefix('.') {
            let frac_len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
            let mut saturated = false;
            for d in after_dot[..frac_len].bytes() {
                if saturated {
                    continue;
                }
                match fraction
                    .checked_mul(10)
                    .and_then(|v| v.checked_add(u64::from(d - b'0')))
                    .filter(|v| *v <= LIMIT)
                {
                    Some(v) => {
                        fraction = v;
                        scale *= 10.0;
                    }
                    None => saturated = true,
                }
            }
            had_fraction = frac_len > 0;
            rest = &after_dot[frac_len..];
        }
        if !had_int && !had_fraction {
            return Err(syntax());
        }

        // Unit: everything up to the next '.' or digit.
        let unit_len = rest
            .bytes()
            .take_while(|c| !(*c == b'.' || c.is_ascii_digit()))
            .count();
        if unit_len == 0 {
            return Err(DurationError::MissingUnit {
                input: s.to_owned(),
            });
        }
        let unit_text = &rest[..unit_len];
        rest = &rest[unit_len..];
        let unit = UNITS
            .iter()
            .find(|(name, _)| *name == unit_text)
            .map(|(_, n)| *n)
            .ok_or_else(|| DurationError::UnknownUnit {
                input: s.to_owned(),
                unit: unit_text.to_owned(),
            })?;

        if value > LIMIT / unit {
            return Err(overflow());
        }
        value *= unit;
        if fraction > 0 {
            // Go uses float64 here too: nanosecond-accurate for fractions of hours.
            // The product is at most 3.6e12 (ns per hour), so the cast cannot saturate.
            let extra = (fraction as f64 * (unit as f64 / scale)) as u64;
            value = value.checked_add(extra).ok_or_else(overflow)?;
            if value > LIMIT {
                return Err(overflow());
            }
        }
        total = total.checked_add(value).ok_or_else(overflow)?;
        if total > LIMIT {
            return Err(overflow());
        }
    }

    let nanos = if negative {
        // total <= 2^63, so this is in range (i64::MIN when total == 2^63).
        0i64.checked_sub_unsigned(total).ok_or_else(overflow)?
    } else {
        i64::try_from(total).map_err(|_| overflow())?
    };
    Ok(GoDuration { nanos })
}

/// Formats a duration the way Go's `Duration.String()` does: `1h0m0s`,
/// `1m30s`, `1.5s`, `500ms`, `1.5µs`, `3ns`, `0s`.
///
/// Durations beyond Go's range (more than about 292 years) are still
/// formatted with the same rules; [`parse_go_duration`] rejects them.
pub fn format_go_duration(d: Duration) -> String {
    format_nanos(d.as_nanos())
}

/// Go's `Duration.format` on an unsigned nanosecond count.
fn format_nanos(nanos: u128) -> String {
    const SECOND: u128 = 1_000_000_000;
    if nanos == 0 {
        return "0s".to_owned();
    }
    if nanos < SECOND {
        let (prec, unit) = if nanos < 1_000 {
            (0, "ns")
        } else if nanos < 1_000_000 {
            (3, "\u{00b5}s")
        } else {
            (6, "ms")
        };
        let (int, frac) = split_fraction(nanos, prec);
        return format!("{int}{frac}{unit}");
    }
    let (secs, frac) = split_fraction(nanos, 9);
    let (mins, secs) = (secs / 60, secs % 60);
    let mut out = String::new();
    if mins > 0 {
        let (hours, mins) = (mins / 60, mins % 60);
        if hours > 0 {
            out.push_str(&format!("{hours}h"));
        }
        out.push_str(&format!("{mins}m"));
    }
    out.push_str(&format!("{secs}{frac}s"));
    out
}

/// Splits `v` into `v / 10^prec` and the fraction `.ddd` without trailing
/// zeros (empty when the fraction is zero), like Go's `fmtFrac`.
fn split_fraction(v: u128, prec: u32) -> (u128, String) {
    let div = 10u128.pow(prec);
    let (int, frac) = (v / div, v % div);
    if frac == 0 {
        return (int, String::new());
    }
    let digits = format!("{frac:0width$}", width = prec as usize);
    (int, format!(".{}", digits.trim_end_matches('0')))
}

/// True when `value` is a bare integer, which a duration field reads as
/// nanoseconds (`allocate_timeout: 60` is 60 ns). Useful to warn users.
pub fn is_integer_nanos(value: &serde_json::Value) -> bool {
    matches!(value, serde_json::Value::Number(n) if n.is_i64() || n.is_u64())
}

/// The accepted input shapes, before the sign check.
enum Raw {
    Text(String),
    Nanos(i128),
    Null,
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "a Go duration such as 500ms, 1s, 1m30s or 1h (or an integer number of nanoseconds)",
        )
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Raw, E> {
        Ok(Raw::Text(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Raw, E> {
        Ok(Raw::Text(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Raw, E> {
        Ok(Raw::Nanos(i128::from(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Raw, E> {
        Ok(Raw::Nanos(i128::from(v)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
        d.deserialize_any(RawVisitor)
    }
}

/// Turns a raw value into a non-negative duration; `Null` is `None`.
fn raw_to_non_negative(raw: Raw) -> Result<Option<Duration>, DurationError> {
    match raw {
        Raw::Null => Ok(None),
        Raw::Nanos(n) => {
            if n < 0 {
                return Err(DurationError::Negative {
                    input: n.to_string(),
                });
            }
            let n = i64::try_from(n).map_err(|_| DurationError::Overflow {
                input: n.to_string(),
            })?;
            Ok(Some(Duration::from_nanos(n.unsigned_abs())))
        }
        Raw::Text(s) => {
            let d = parse_go_duration(&s)?;
            d.to_std()
                .map(Some)
                .ok_or(DurationError::Negative { input: s })
        }
    }
}

/// Serde helper for non-negative `std::time::Duration` fields:
/// `#[serde(deserialize_with = "rr_config::duration::non_negative")]`.
///
/// Accepts a Go duration string or an integer (nanoseconds, as RoadRunner
/// does). A `null` value reads as zero (Go's zero value). Negative values are
/// rejected with `must not be negative`.
pub fn non_negative<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let raw = d.deserialize_any(RawVisitor)?;
    raw_to_non_negative(raw)
        .map(Option::unwrap_or_default)
        .map_err(de::Error::custom)
}

/// Serde helper for optional non-negative durations:
/// `#[serde(default, deserialize_with = "rr_config::duration::option_non_negative")]`.
///
/// Like [`non_negative`], but `null` reads as `None`.
pub fn option_non_negative<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let raw = d.deserialize_any(RawVisitor)?;
    raw_to_non_negative(raw).map_err(de::Error::custom)
}

/// Serde helper for signed durations (`GoDuration` fields):
/// `#[serde(deserialize_with = "rr_config::duration::signed")]`.
///
/// Integers are nanoseconds; `null` reads as zero.
pub fn signed<'de, D: Deserializer<'de>>(d: D) -> Result<GoDuration, D::Error> {
    match d.deserialize_any(RawVisitor)? {
        Raw::Null => Ok(GoDuration::ZERO),
        Raw::Nanos(n) => i64::try_from(n).map(GoDuration::from_nanos).map_err(|_| {
            de::Error::custom(DurationError::Overflow {
                input: n.to_string(),
            })
        }),
        Raw::Text(s) => parse_go_duration(&s).map_err(de::Error::custom),
    }
}

impl<'de> serde::Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        signed(d)
    }
}

impl serde::Serialize for GoDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ns(s: &str) -> i64 {
        match parse_go_duration(s) {
            Ok(d) => d.as_nanos(),
            Err(e) => panic!("{s:?} should parse: {e}"),
        }
    }

    #[test]
    fn parses_go_examples() {
        assert_eq!(ns("0"), 0);
        assert_eq!(ns("-0"), 0);
        assert_eq!(ns("+0"), 0);
        assert_eq!(ns("0s"), 0);
        assert_eq!(ns("5s"), 5_000_000_000);
        assert_eq!(ns("30s"), 30_000_000_000);
        assert_eq!(ns("1478s"), 1_478_000_000_000);
        assert_eq!(ns("-5s"), -5_000_000_000);
        assert_eq!(ns("+5s"), 5_000_000_000);
        assert_eq!(ns("1.5s"), 1_500_000_000);
        assert_eq!(ns("1.s"), 1_000_000_000);
        assert_eq!(ns(".5s"), 500_000_000);
        assert_eq!(ns("500ms"), 500_000_000);
        assert_eq!(ns("10ns"), 10);
        assert_eq!(ns("11us"), 11_000);
        assert_eq!(ns("12µs"), 12_000);
        assert_eq!(ns("12μs"), 12_000);
        assert_eq!(ns("1m"), 60_000_000_000);
        assert_eq!(ns("1m30s"), 90_000_000_000);
        assert_eq!(ns("1h30m"), 5_400_000_000_000);
        assert_eq!(ns("3h30m"), 12_600_000_000_000);
        assert_eq!(ns("10.5s4m"), 250_500_000_000);
        assert_eq!(ns("-2m3.4s"), -123_400_000_000);
        assert_eq!(ns("1h2m3s4ms5us6ns"), 3_723_004_005_006);
        assert_eq!(ns("0.3333333333333333333h"), 1_200_000_000_000);
        assert_eq!(ns("52763797000ns"), 52_763_797_000);
        assert_eq!(ns("9007199254740993ns"), (1 << 53) + 1);
        assert_eq!(ns("9223372036854775.807us"), i64::MAX);
        assert_eq!(ns("9223372036s854ms775us807ns"), i64::MAX);
        assert_eq!(ns("-9223372036854775.808us"), i64::MIN);
        assert_eq!(ns("-9223372036s854ms775us808ns"), i64::MIN);
        assert_eq!(ns("0.830103483285477580700h"), 2_988_372_539_827);
        assert_eq!(ns("9223372036854775807ns"), i64::MAX);
        assert_eq!(ns("-9223372036854775808ns"), i64::MIN);
        assert_eq!(ns("0.100000000000000000000h"), 360_000_000_000);
    }

    #[test]
    fn rejects_what_go_rejects() {
        for bad in [
            "", "3", "-", "s", ".", "-.", ".s", "+.s", "1h 30m", " 1s", "1s ", "1d", "1.5 s",
            "abc", "1sm", "--1s", "1e3s",
        ] {
            assert!(parse_go_duration(bad).is_err(), "{bad:?} should fail");
        }
        assert!(matches!(
            parse_go_duration("3"),
            Err(DurationError::MissingUnit { .. })
        ));
        assert!(matches!(
            parse_go_duration("1d"),
            Err(DurationError::UnknownUnit { .. })
        ));
        for big in [
            "9223372036854775808ns",
            "-9223372036854775809ns",
            "9223372036s854775808ns",
            "9223372036854775810ns",
            "9223372036854776us",
            "9223372036854775.808us",
            "9223372036854ms775us808ns",
            "3000000h",
            "99999999999999999999999s",
        ] {
            assert!(
                matches!(parse_go_duration(big), Err(DurationError::Overflow { .. })),
                "{big:?} should overflow"
            );
        }
    }

    #[test]
    fn error_texts() {
        assert_eq!(
            parse_go_duration("abc").map_err(|e| e.to_string()),
            Err(
                "invalid duration \"abc\": expected a Go duration such as 500ms, 1s, 1m30s or 1h"
                    .to_owned()
            )
        );
        assert_eq!(
            parse_go_duration("1d").map_err(|e| e.to_string()),
            Err("invalid duration \"1d\": unknown unit \"d\" (valid units are ns, us, µs, ms, s, m, h)"
                .to_owned())
        );
    }

    #[test]
    fn formats_like_go() {
        let cases: &[(u64, &str)] = &[
            (0, "0s"),
            (1, "1ns"),
            (1_100, "1.1µs"),
            (2_200_000, "2.2ms"),
            (500_000_000, "500ms"),
            (1_500_000_000, "1.5s"),
            (3_300_000_000, "3.3s"),
            (90_000_000_000, "1m30s"),
            (245_000_000_000, "4m5s"),
            (245_001_000_000, "4m5.001s"),
            (18_367_000_000_000, "5h6m7s"),
            (18_367_000_000_001, "5h6m7.000000001s"),
            (3_600_000_000_000, "1h0m0s"),
            (i64::MAX as u64, "2562047h47m16.854775807s"),
        ];
        for (n, want) in cases {
            assert_eq!(format_go_duration(Duration::from_nanos(*n)), *want);
        }
        assert_eq!(
            GoDuration::from_nanos(-90_000_000_000).to_string(),
            "-1m30s"
        );
        assert_eq!(
            GoDuration::from_nanos(i64::MIN).to_string(),
            "-2562047h47m16.854775808s"
        );
    }

    #[derive(serde::Deserialize, Debug)]
    struct T {
        #[serde(default, deserialize_with = "non_negative")]
        d: Duration,
        #[serde(default, deserialize_with = "option_non_negative")]
        o: Option<Duration>,
    }

    fn t(json: serde_json::Value) -> Result<T, String> {
        serde_json::from_value::<T>(json).map_err(|e| e.to_string())
    }

    #[test]
    fn serde_helpers() {
        let v = t(serde_json::json!({"d": "1m30s", "o": "2s"})).expect("valid");
        assert_eq!(v.d, Duration::from_secs(90));
        assert_eq!(v.o, Some(Duration::from_secs(2)));
        let v = t(serde_json::json!({"d": 60})).expect("valid");
        assert_eq!(v.d, Duration::from_nanos(60));
        assert_eq!(v.o, None);
        let v = t(serde_json::json!({"d": null, "o": null})).expect("valid");
        assert_eq!((v.d, v.o), (Duration::ZERO, None));
        assert_eq!(
            t(serde_json::json!({"d": "-1s"})).err(),
            Some("invalid duration \"-1s\": must not be negative".to_owned())
        );
        assert_eq!(
            t(serde_json::json!({"o": -5})).err(),
            Some("invalid duration \"-5\": must not be negative".to_owned())
        );
        let err = t(serde_json::json!({"d": true})).err().unwrap_or_default();
        assert!(err.contains("expected a Go duration"), "{err}");
        let err = t(serde_json::json!({"d": 1.5})).err().unwrap_or_default();
        assert!(err.contains("expected a Go duration"), "{err}");
    }

    #[test]
    fn integer_nanos_detection() {
        assert!(is_integer_nanos(&serde_json::json!(60)));
        assert!(!is_integer_nanos(&serde_json::json!("60s")));
        assert!(!is_integer_nanos(&serde_json::json!(1.5)));
    }

    proptest! {
        #[test]
        fn format_parse_round_trip(n in 0u64..=(i64::MAX as u64)) {
            let d = Duration::from_nanos(n);
            let text = format_go_duration(d);
            let parsed = parse_go_duration(&text);
            prop_assert_eq!(parsed.map(|g| g.to_std()), Ok(Some(d)), "{}", text);
        }

        #[test]
        fn signed_round_trip(n in any::<i64>()) {
            let g = GoDuration::from_nanos(n);
            prop_assert_eq!(parse_go_duration(&g.to_string()), Ok(g));
        }

        #[test]
        fn parse_never_panics(s in any::<String>()) {
            let _ = parse_go_duration(&s);
        }

        #[test]
        fn parse_never_panics_on_duration_like(s in "[-+]?([0-9.]{0,22}(ns|us|µs|ms|s|m|h|x)?){0,4}") {
            let _ = parse_go_duration(&s);
        }
    }
}
