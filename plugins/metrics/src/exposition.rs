//! Prometheus text exposition format 0.0.4.

use std::collections::HashSet;
use std::fmt::Write as _;

use rr_plugin::{HistogramSample, Labels};

/// The `Content-Type` of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Whether `name` is a valid metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`).
pub fn valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Whether `name` is a valid label name (`[a-zA-Z_][a-zA-Z0-9_]*`, not `__`-prefixed).
pub fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    !name.starts_with("__")
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A sample value as Prometheus writes it (`+Inf`, `-Inf`, `NaN`).
pub fn format_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value == f64::INFINITY {
        "+Inf".to_owned()
    } else if value == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        format!("{value}")
    }
}

fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

fn escape_label_value(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Builds one exposition; families with invalid or repeated names are
/// left out (the first one wins) and reported by [`Exposition::skipped`].
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
    names: HashSet<String>,
    skipped: Vec<String>,
}

impl Exposition {
    /// Starts family `name` of `kind` (`counter`, `gauge`, `histogram`,
    /// `summary`); false when it must be skipped.
    pub fn family(&mut self, name: &str, help: &str, kind: &str) -> bool {
        if !valid_metric_name(name) || !self.names.insert(name.to_owned()) {
            self.skipped.push(name.to_owned());
            return false;
        }
        let _ = writeln!(self.text, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
        true
    }

    /// One sample line; labels with invalid names are dropped.
    pub fn sample(&mut self, name: &str, labels: &[(String, String)], value: f64) {
        self.text.push_str(name);
        let labels: Vec<&(String, String)> =
            labels.iter().filter(|(k, _)| valid_label_name(k)).collect();
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (key, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{key}=\"{}\"", escape_label_value(value));
            }
            self.text.push('}');
        }
        self.text.push(' ');
        self.text.push_str(&format_value(value));
        self.text.push('\n');
    }

    /// A family of plain samples.
    pub fn simple(&mut self, name: &str, help: &str, kind: &str, samples: &[(Labels, f64)]) {
        if self.family(name, help, kind) {
            for (labels, value) in samples {
                self.sample(name, labels, *value);
            }
        }
    }

    /// The `_bucket`, `_sum` and `_count` lines of one histogram.
    pub fn histogram_sample(&mut self, name: &str, labels: &Labels, sample: &HistogramSample) {
        let bucket = format!("{name}_bucket");
        let with_le = |le: String| {
            let mut labels = labels.clone();
            labels.retain(|(k, _)| k != "le");
            labels.push(("le".to_owned(), le));
            labels
        };
        for (bound, count) in &sample.buckets {
            if bound.is_finite() {
                self.sample(&bucket, &with_le(format_value(*bound)), *count as f64);
            }
        }
        self.sample(&bucket, &with_le("+Inf".to_owned()), sample.count as f64);
        self.sample(&format!("{name}_sum"), labels, sample.sum);
        self.sample(&format!("{name}_count"), labels, sample.count as f64);
    }

    /// The names of the families left out.
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }

    /// The text.
    pub fn finish(self) -> String {
        self.text
    }
}
