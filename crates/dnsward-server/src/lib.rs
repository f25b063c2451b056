//! dnsward's DNS front: UDP and TCP listeners, the request engine that runs the verdict pipeline
//! concurrently with the upstream lookup, the answer cache and the upstream client.
//!
//! Layout: [`wire`] (bytes on the hot path) → [`engine::Engine`] (one query, start to answer) →
//! [`listener`] (sockets). [`upstream`] and [`cache`] are used by the engine.

pub mod access;
pub mod answer;
pub mod cache;
pub mod config;
pub mod encrypted;
pub mod engine;
pub mod events;
pub mod fuzzing;
pub mod hist;
pub mod listener;
pub mod stats;
pub mod upstream;
pub mod wire;

pub use config::{AnyQueries, ServerConfig};
pub use engine::{Engine, EngineParts, Transport};
pub use events::{EventSink, QueryEvent, TracingSink};
pub use listener::{start, RunningServer};
