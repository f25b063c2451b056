//! The dnsward application: configuration, building the verdict pipeline from it, and running
//! the resolver. `main.rs` is only the command line on top of this.

pub mod app;
pub mod config;
pub mod stages;
pub mod watch;

pub use app::{build_policy, App, Detectors};
pub use config::Config;
