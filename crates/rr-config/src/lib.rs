//! Loads a RoadRunner `.rr.yaml` into a tree and hands typed sections to plugins.
//!
//! Mirrors roadrunner-server/config (`plugin.go`, `expand.go`, `include.go`)
//! and the CLI's handling of `--dotenv`, `-o` and `endure`. The pipeline, in
//! RoadRunner's order, is documented on [`Config::load`]:
//! dotenv → parse → lower-case keys → env expansion → `-o` overrides →
//! version check → includes.
//!
//! ```
//! use rr_config::Config;
//!
//! #[derive(serde::Deserialize, Default)]
//! #[serde(default)]
//! struct Pool { num_workers: u32 }
//!
//! let yaml = "version: '3'\nticker:\n  pool:\n    num_workers: ${WORKERS:-4}\n";
//! let cfg = Config::from_yaml_str_with_env(yaml, &[], &|_| None)?;
//! assert!(cfg.has("ticker"));
//! assert_eq!(cfg.section::<Pool>("ticker.pool")?.num_workers, 4);
//! # Ok::<(), rr_config::ConfigError>(())
//! ```
//!
//! # Weak decoding
//!
//! [`Config::section`] decodes like mapstructure's `WeaklyTypedInput` with
//! viper's hooks, because real configurations rely on it:
//!
//! | target | accepted besides its own type |
//! |---|---|
//! | string | numbers (`8080` → `"8080"`), bools (`true` → `"1"`, `false` → `"0"`, as mapstructure does), `null` → `""` |
//! | integers | decimal strings (also `0x`/`0o`/`0b`), `""` → 0, bools → 1/0, whole floats, `null` → 0 |
//! | floats | numeric strings, `""` → 0, bools, `null` |
//! | bool | Go `strconv.ParseBool` strings (`1`, `t`, `true`, `0`, `f`, `false`, ...), `""` → false, numbers (≠ 0) |
//! | list | a string split on `,` (`""` → empty), a single scalar → one-element list, `null` → empty |
//! | struct / map | `null` → empty |
//!
//! Inside a struct, a key whose value is `null` is skipped, so the field keeps
//! its default (mapstructure leaves a field alone when the input is nil).
//! Deliberate difference: a float with a fraction is not truncated into an
//! integer field. Untagged enums and `#[serde(flatten)]` see values as they are.
//!
//! Durations use Go syntax, see [`duration`]; command lines use
//! [`StringOrList`].

#![forbid(unsafe_code)]

mod command;
mod config;
pub mod duration;
mod endure;
mod error;
mod expand;
mod overrides;
mod tree;
mod weak;

pub use command::StringOrList;
pub use config::{Config, LoadOptions};
pub use endure::EndureConfig;
pub use error::ConfigError;

#[cfg(test)]
mod tests;
