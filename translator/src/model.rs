//! The typed compose model. Being written.
