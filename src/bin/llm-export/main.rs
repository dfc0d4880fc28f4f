//! The `llm-export` command line.
fn main() {}
