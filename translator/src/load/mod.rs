//! Loading a compose project the way Docker Compose v2 (compose-go) does.
//!
//! The pipeline, in compose-go's order (see its `parsing.md`):
//! 1. [`discover`]: which files, which project directory, which project name;
//! 2. [`yaml`]: each file parsed into a located [`yaml::Node`] tree (anchors resolved, `<<` merged,
//!    `!reset`/`!override` tags kept);
//! 3. [`dotenv`] + [`interpolate`]: `.env`/`--env-file` read, then every string interpolated;
//! 4. [`schema`]: each file validated against the Compose JSON schema, errors at `file:line:col`;
//! 5. [`extends`], [`include`], [`merge`]: the files combined by the compose-spec merge rules;
//! 6. [`profiles`]: services outside the active profiles dropped;
//! 7. [`normalize`]: short syntax rewritten to the canonical long form with compose's defaults;
//! 8. the result converted to JSON (recording a [`SourceMap`]) and decoded into the typed [`Project`].

pub mod dotenv;
pub mod interpolate;
pub mod yaml;
