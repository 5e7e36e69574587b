//! Two Rust nodes in the Go seed's dialect.
