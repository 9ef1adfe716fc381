//! The bundled cluster runtime: API server, store, scheduler, controllers, node agent and the client side
//! that deploys a translated project. Built up by issue 2 of 5 (`flotilla up`); so far it holds the
//! [`store`], the revisioned key-value log the API server will keep its objects in.

pub mod store;
