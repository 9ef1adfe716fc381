//! The translator: compose projects in, Kubernetes objects out.
//!
//! Two halves, joined by the typed [`model::Project`] and its [`source::SourceMap`]:
//! - [`load`] reads compose files exactly as Docker Compose v2 does (discovery, interpolation, merge,
//!   `extends`, `include`, profiles, normalisation to the canonical long form) and reports problems at
//!   `file:line:col`;
//! - [`convert`] turns the model into Kubernetes objects, with a warning for every key that does not carry
//!   over.
//!
//! **Invariant:** no I/O but reading the project's own files (compose files, `.env`, `env_file`s, config
//! and secret files), no printing, no panics on bad input: every entry point returns a value plus
//! diagnostics, or errors.

pub mod convert;
pub mod diag;
pub mod load;
pub mod model;
pub mod project;
pub mod source;
