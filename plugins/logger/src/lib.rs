//! The logs plugin.
