//! The service proxy: Services and EndpointSlices in, one nftables table per node out (kube-proxy's
//! nftables shape), plus userspace listeners for published ports on 127.0.0.1.
//!
//! - [`model`]: Services + EndpointSlices → [`Model`] (service ports with their ready endpoints).
//! - [`render`]: [`Model`] → [`render::Ruleset`] → [`render::Transaction`], pure data; the ruleset is
//!   described hook by hook in `netproxy/README.md`.
//! - [`apply`]: runs `nft -j -f -` (atomic), reads a table back.
//! - [`proxy`]: keeps what the kernel holds and sends only what changed.
//! - [`userspace`]: the docker-proxy-like listeners on 127.0.0.1, where DNAT cannot reach pods without
//!   `route_localnet` (CVE-2020-8558).
//!
//! **Invariant:** only tables whose name starts with `flotilla` are ever touched.

pub mod apply;
pub mod model;
pub mod proxy;
pub mod render;
pub mod userspace;

pub use apply::Nft;
pub use model::{Model, Protocol, ServicePort};
pub use proxy::{Proxy, SyncKind};
pub use render::RenderConfig;
pub use userspace::{BindError, LocalPorts};

/// Errors of the proxy.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("nft failed: {0}")]
    Nft(String),
    #[error("table {0:?} is not ours: netproxy only touches tables named flotilla*")]
    BadTable(String),
}
