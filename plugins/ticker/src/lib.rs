//! The ticker plugin.
