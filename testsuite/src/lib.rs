//! The integration tests (`tests/`) and benchmarks (`benches/`) of
//! `rocket_sqlite_sessions`, in a workspace member of their own so that the
//! crate's examples build none of their dependencies. Nothing here is
//! published; run everything with `cargo test` from the workspace root.
