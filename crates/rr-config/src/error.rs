//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong while loading or reading a configuration.
///
/// Texts that RoadRunner users know (and grep for) are copied verbatim from
/// roadrunner-server/config; they are pinned by tests.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The configuration (or an included) file could not be read.
    #[error("cannot read configuration file \"{}\": {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The dotenv file (`--dotenv` or `DOTENV_PATH`) could not be loaded.
    #[error("cannot load dotenv file \"{}\": {message}", path.display())]
    Dotenv {
        /// The dotenv file.
        path: PathBuf,
        /// What dotenvy reported.
        message: String,
    },

    /// The file has no content (or only comments).
    #[error("configuration file is empty{}", file_suffix(file))]
    Empty {
        /// The file, when the configuration came from one.
        file: Option<PathBuf>,
    },

    /// YAML syntax error.
    #[error(
        "invalid YAML{} at line {line}, column {column}: {message}",
        file_suffix(file)
    )]
    Yaml {
        /// The file, when the configuration came from one.
        file: Option<PathBuf>,
        /// 1-based line (0 when unknown).
        line: u64,
        /// 1-based column (0 when unknown).
        column: u64,
        /// The parser's message.
        message: String,
    },

    /// The document is valid YAML but not a map of keys (e.g. a list).
    #[error(
        "configuration file{} must contain a map of keys at the top level, found a {found}",
        file_suffix(file)
    )]
    NotAMap {
        /// The file, when the configuration came from one.
        file: Option<PathBuf>,
        /// What was found instead (`list`, `string`, ...).
        found: &'static str,
    },

    /// A `-o` override without `=`.
    #[error("invalid flag `{0}`")]
    InvalidFlag(String),

    /// A `-o` override with an empty key (`-o =value`).
    #[error("key should not be empty")]
    EmptyOverrideKey,

    /// A `-o` override with an empty value (`-o key=`).
    #[error("value should not be empty")]
    EmptyOverrideValue,

    /// No top-level `version` key.
    #[error("rr configuration file should contain a version e.g: version: 3")]
    MissingVersion,

    /// `version` is not a YAML string (e.g. `version: 3`).
    #[error("version should be a string: `version: \"3\"`, actual type is: {actual}")]
    VersionNotString {
        /// Go-style type name: `int`, `float`, `bool`, `list`, `map` or `null`.
        actual: &'static str,
    },

    /// `version` is a string we do not support (we accept `"3"` and `"2.x"`).
    #[error(
        "unsupported configuration version \"{0}\": supported versions are \"3\" and \"2.7\" (2.x)"
    )]
    UnsupportedVersion(String),

    /// An included file's version differs from the root's.
    #[error("version in included file must be the same as in root")]
    IncludeVersionMismatch {
        /// The included file.
        path: PathBuf,
    },

    /// `include` is neither a string nor a list of strings.
    #[error("include should be a string or a list of strings")]
    InvalidInclude,

    /// An included file failed a check (e.g. it has no version).
    #[error("in included file \"{}\": {source}", path.display())]
    Included {
        /// The included file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: Box<ConfigError>,
    },

    /// A value is present but wrong (type, range, syntax, plugin validation).
    #[error("invalid value at `{key}`: {message}")]
    Invalid {
        /// Full dotted key path, e.g. `ticker.pool.num_workers`.
        key: String,
        /// What is wrong.
        message: String,
    },

    /// A required value is absent or empty.
    #[error("missing value at `{key}`: {message}")]
    Missing {
        /// Full dotted key path, e.g. `server.command`.
        key: String,
        /// What is wrong.
        message: String,
    },
}

impl ConfigError {
    /// An invalid value at `key`, for plugins' own validation:
    /// ``invalid value at `KEY`: MESSAGE``.
    pub fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            key: key.into(),
            message: message.into(),
        }
    }

    /// A missing value at `key`, for plugins' own validation:
    /// ``missing value at `KEY`: MESSAGE``.
    pub fn missing(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::Missing {
            key: key.into(),
            message: message.into(),
        }
    }

    /// The dotted key path this error is about, when it is about one key.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { key, .. } | ConfigError::Missing { key, .. } => Some(key),
            ConfigError::MissingVersion
            | ConfigError::VersionNotString { .. }
            | ConfigError::UnsupportedVersion(_) => Some("version"),
            ConfigError::InvalidInclude => Some("include"),
            _ => None,
        }
    }
}

fn file_suffix(file: &Option<PathBuf>) -> String {
    match file {
        Some(path) => format!(" in \"{}\"", path.display()),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts() {
        assert_eq!(
            ConfigError::invalid("ticker.interval", "bad").to_string(),
            "invalid value at `ticker.interval`: bad"
        );
        assert_eq!(
            ConfigError::missing("server.command", "command should not be empty").to_string(),
            "missing value at `server.command`: command should not be empty"
        );
        assert_eq!(
            ConfigError::Empty { file: None }.to_string(),
            "configuration file is empty"
        );
        assert_eq!(
            ConfigError::Empty {
                file: Some(PathBuf::from("a.yaml"))
            }
            .to_string(),
            "configuration file is empty in \"a.yaml\""
        );
        assert_eq!(ConfigError::invalid("a.b", "x").key(), Some("a.b"));
    }
}
