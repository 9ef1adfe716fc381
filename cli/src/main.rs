//! The `flotilla` binary. Being written.
fn main() {}
