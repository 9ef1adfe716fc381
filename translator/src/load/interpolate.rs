//! Variable interpolation (compose-spec `12-interpolation.md`). Being written.
