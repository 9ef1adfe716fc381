//! The bundled cluster runtime: API server, store, scheduler, controllers, node agent and the client side
//! that deploys a translated project. Empty until issue 2 of 5 (`flotilla up`); the crate exists now so the
//! workspace has the layout ARCHITECTURE.md describes and dependency directions are fixed from the start.
