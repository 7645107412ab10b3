//! The rr binary.
fn main() {}
