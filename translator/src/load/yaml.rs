//! Located YAML trees. Being written.
