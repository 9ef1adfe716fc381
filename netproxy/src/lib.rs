//! Services and EndpointSlices to one nftables table per node. Empty until issue 2 of 5; see
//! ARCHITECTURE.md for the ruleset shape this crate will hold.
