//! The server plugin.
