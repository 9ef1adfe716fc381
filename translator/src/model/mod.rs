//! The typed compose model: serde types shaped exactly like the canonical JSON that
//! `docker-compose config --format json` (Compose v2) prints.
//!
//! The loader builds that JSON document (plus a [`crate::source::SourceMap`] keyed by its paths) and
//! decodes it with [`from_json`]; conversion reads only these types. Because the shapes follow compose's
//! output, `serde_json::to_value(&project)` gives back the document it was decoded from (tested on every
//! awesome-compose project and on files that use every key of the compose spec). Short syntaxes never
//! reach this model: the loader normalises them to the long form first.
//!
//! Strings are in compose's canonical form, as `docker-compose config` prints them: every literal `$`
//! is written `$$` (`command: ["echo", "$$HOME"]` means the container gets `$HOME`). The loader keeps
//! that form; conversion undoes it ([`crate::convert::unescape`]).
//!
//! Conventions: `Option` for a key that may be absent; `Option<Option<T>>` where compose prints an
//! explicit `null` (`command: null`); [`Scalar`], [`Bytes`] and [`Duration`] for values whose JSON type
//! varies; `IndexMap` wherever order is kept; every struct that the spec lets carry `x-*` keys has a
//! flattened `extensions` map, which also keeps any key this model does not know, so nothing is lost.

mod elements;
mod scalar;
mod service;

pub use elements::*;
pub use scalar::{Bytes, Duration, Scalar, lenient, parse_bytes, parse_duration};
pub use service::*;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

/// Extension (`x-*`) and otherwise unknown keys of one mapping, in document order.
///
/// Decoding notes every key that is not an extension, so [`from_json_reporting_unknown`] can tell a
/// key this model does not know (a new compose release, a typo in a hand-made document) from an `x-*`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Extensions(pub IndexMap<String, serde_json::Value>);

impl std::ops::Deref for Extensions {
    type Target = IndexMap<String, serde_json::Value>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Extensions {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

thread_local! {
    static UNKNOWN: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl<'de> Deserialize<'de> for Extensions {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = IndexMap::<String, serde_json::Value>::deserialize(d)?;
        UNKNOWN.with(|u| u.borrow_mut().extend(map.keys().filter(|k| !k.starts_with("x-")).cloned()));
        Ok(Extensions(map))
    }
}

/// A string-to-string mapping (labels, `driver_opts`, `sysctls`, ...).
pub type StringMap = IndexMap<String, String>;

/// A resolved compose project: the root of the model.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Project {
    /// Obsolete; compose ignores it and does not print it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Resolved away by the loader; kept so a document that still has it decodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include: Option<serde_json::Value>,
    pub services: IndexMap<String, Service>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub networks: Option<IndexMap<String, Network>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<IndexMap<String, Volume>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets: Option<IndexMap<String, Secret>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configs: Option<IndexMap<String, Config>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models: Option<IndexMap<String, Model>>,
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// Decodes the canonical compose JSON document into the typed model.
pub fn from_json(value: serde_json::Value) -> Result<Project, serde_json::Error> {
    serde_json::from_value(value)
}

/// [`from_json`] without taking the document (the loader keeps it for `config`).
pub fn from_json_ref(value: &serde_json::Value) -> Result<Project, serde_json::Error> {
    Project::deserialize(value)
}

/// Like [`from_json`], also returning the keys that landed in an `extensions` map without being `x-*`
/// (keys the model does not know). They are kept, not dropped, either way.
pub fn from_json_reporting_unknown(value: serde_json::Value) -> Result<(Project, Vec<String>), serde_json::Error> {
    UNKNOWN.with(|u| u.borrow_mut().clear());
    let project = from_json(value);
    let unknown = UNKNOWN.with(|u| std::mem::take(&mut *u.borrow_mut()));
    Ok((project?, unknown))
}

impl Project {
    /// The top-level network, volume, secret or config that a service refers to by its key.
    pub fn network(&self, key: &str) -> Option<&Network> {
        self.networks.as_ref()?.get(key)
    }

    pub fn volume(&self, key: &str) -> Option<&Volume> {
        self.volumes.as_ref()?.get(key)
    }

    pub fn secret(&self, key: &str) -> Option<&Secret> {
        self.secrets.as_ref()?.get(key)
    }

    pub fn config(&self, key: &str) -> Option<&Config> {
        self.configs.as_ref()?.get(key)
    }
}
