//! The client side of `flotilla up`: takes a translated compose project (Kubernetes objects plus what the
//! objects cannot say: build instructions and the `depends_on` graph) and brings a cluster to it.
//!
//! It knows nothing of compose files (the translator does) nor of terminals (the CLI does): it talks to
//! the cluster through the Kubernetes API, to the local Docker Engine for images, and reports what
//! happens through [`Progress`].
//!
//! - [`objects`]: objects as dynamic JSON, their API resource, and the hash that tells whether an
//!   object changed since the last `up`.
//! - [`images`]: checks that images are present and builds the ones compose would build.
//! - [`up`]: preflight, then apply in dependency order, then wait.
//! - [`wait`]: what "started", "healthy" and "completed" mean for a service, and why one is not.
//! - [`down`], [`status`]: removing a project, and the rows of `flotilla ps`.

pub mod control;
pub mod down;
pub mod images;
pub mod objects;
pub mod status;
pub mod up;
pub mod wait;

use std::collections::BTreeMap;
use std::path::PathBuf;

/// Label every object of a project carries: the project's name.
pub const PART_OF: &str = "app.kubernetes.io/part-of";
/// Label every object of a project carries: made by flotilla.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Label on pods and workloads: the compose service.
pub const SERVICE_LABEL: &str = "compose.flotilla.dev/service";
/// The longest pause between two reads while waiting for pods: the server is local and a read is cheap,
/// and `up`/`down` return that much sooner after the moment they wait for.
pub const POLL_MAX: std::time::Duration = std::time::Duration::from_millis(100);
/// Annotation holding the hash of the object as `up` last wrote it.
pub const CONFIG_HASH: &str = "compose.flotilla.dev/config-hash";

/// A translated project, ready to apply.
#[derive(Debug, Clone)]
pub struct ProjectSpec {
    /// The compose project's name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// Every object the translator produced (the Namespace included), as JSON.
    pub objects: Vec<serde_json::Value>,
    /// The compose services, in file order.
    pub services: Vec<ServiceSpec>,
}

/// What `up` needs to know about one compose service beyond its objects.
#[derive(Debug, Clone)]
pub struct ServiceSpec {
    /// The name in the compose file.
    pub compose_name: String,
    /// The Kubernetes name (of its workload, Service and pods' label).
    pub name: String,
    /// The services it waits for, with compose's condition.
    pub depends_on: Vec<Dependency>,
    /// How to build its image, when the service has `build:`.
    pub build: Option<BuildSpec>,
}

/// One `depends_on` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    /// The compose name of the service waited for.
    pub service: String,
    pub condition: Condition,
}

/// Compose's `depends_on` conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    Started,
    Healthy,
    CompletedSuccessfully,
}

impl Condition {
    /// Parses compose's spelling; unknown conditions mean `service_started`, as compose does.
    pub fn from_compose(s: &str) -> Self {
        match s {
            "service_healthy" => Condition::Healthy,
            "service_completed_successfully" => Condition::CompletedSuccessfully,
            _ => Condition::Started,
        }
    }
}

/// A compose `build:` section, resolved (paths absolute).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildSpec {
    /// The image to produce (the service's `image:`, else `<project>-<service>`).
    pub image: String,
    pub context: PathBuf,
    /// Path of the Dockerfile relative to the context.
    pub dockerfile: Option<String>,
    pub args: BTreeMap<String, String>,
    pub target: Option<String>,
}

/// What `up` and `down` report, one line per service and step, as Docker Compose prints them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Building,
    Built,
    /// Sent to the server, which feeds it to the nodes that need it (no registry).
    Shipping,
    Shipped,
    Created,
    Updated,
    Unchanged,
    Waiting(String),
    Started,
    Healthy,
    Completed,
    Stopped,
    Removed,
    /// An orphan: in the cluster, no longer in the compose file.
    Orphan,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Building => f.write_str("Building"),
            Step::Built => f.write_str("Built"),
            Step::Shipping => f.write_str("Sending to the cluster"),
            Step::Shipped => f.write_str("Sent to the cluster"),
            Step::Created => f.write_str("Created"),
            Step::Updated => f.write_str("Recreated"),
            Step::Unchanged => f.write_str("Running"),
            Step::Waiting(on) => write!(f, "Waiting for {on}"),
            Step::Started => f.write_str("Started"),
            Step::Healthy => f.write_str("Healthy"),
            Step::Completed => f.write_str("Exited"),
            Step::Stopped => f.write_str("Stopped"),
            Step::Removed => f.write_str("Removed"),
            Step::Orphan => f.write_str("Orphan (not in the compose file; --remove-orphans removes it)"),
        }
    }
}

/// Receives progress; the CLI draws it.
pub trait Progress: Send + Sync {
    /// `what` is a kind and a name (`Service web`, `Volume data`), as compose prints `Container x`.
    fn step(&self, what: &str, step: Step);
}

/// Errors of the project client. Each says what failed and, where there is one, what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the cluster refused {what}: {source}")]
    Api {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("docker: {what}: {source}")]
    Docker {
        what: String,
        #[source]
        source: bollard::errors::Error,
    },
    /// A check before any change failed; nothing was changed.
    #[error("{0}")]
    Preflight(String),
    /// A service did not get where `up` waited for it to get.
    #[error("{0}")]
    Service(String),
    #[error("timed out after {secs} s waiting for {what}")]
    Timeout { secs: u64, what: String },
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn api_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let what = what.into();
    move |source| Error::Api { what, source }
}
