//! The bundled cluster runtime behind `flotilla up`: API server, store, scheduler, controllers, node agent
//! and the client side that deploys a translated project.
//!
//! The control plane and the agent talk only through the Kubernetes API (a `kube::Client`), never through
//! shared memory, even when `flotilla server` runs them in one process: the same code then works when they
//! run on different machines (issue 4 of 5).

pub mod agent;
pub mod api;
pub mod controllers;
pub mod dns;
pub mod images;
pub mod join;
pub mod leader;
pub mod pki;
pub mod project;
pub mod scheduler;
pub mod server;
pub mod store;
