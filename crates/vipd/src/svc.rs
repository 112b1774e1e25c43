//! Services mode (issue 5): LoadBalancer addresses announced by the node the
//! ownership core (`vipd_services`) picks, at O(nodes) API writes.
//!
//! - [`world`]: Kubernetes objects (Services, EndpointSlices, Nodes) → the
//!   addresses to serve and which nodes may own each.

pub mod world;
