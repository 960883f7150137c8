//! Strom Connect: configured, reusable source and sink connectors, run by a
//! Kafka Connect-shaped runtime with its REST API.
//!
//! It is a Kafka client (librdkafka through `rdkafka`, plus `kafka-protocol`
//! for the group membership librdkafka cannot do) and works against any
//! Kafka cluster, not only Strom.
//!
//! ```no_run
//! # async fn run() -> Result<(), strom_connect::ConnectError> {
//! use strom_connect::{PluginRegistry, Worker, WorkerConfig};
//! let config = WorkerConfig::from_toml(r#"
//!     "bootstrap.servers" = "127.0.0.1:9092"
//!     listeners = "http://127.0.0.1:8083"
//!     "offset.storage.file.filename" = "/tmp/connect.offsets"
//! "#)?;
//! let connector = strom_connect::read_connector_file("file-source.json".as_ref())?;
//! let worker = Worker::standalone(config, PluginRegistry::builtin(), vec![connector]).await?;
//! println!("REST API on {}", worker.rest_url());
//! worker.stop().await;
//! # Ok(()) }
//! ```
//!
//! - [`sdk`]: what a connector implements (plugins, connectors, source and
//!   sink tasks, config definitions, records, converters).
//! - [`transforms`]: single message transforms and predicates.
//! - [`runtime`]: the worker, herder, stores and task runners.
//! - [`distributed`]: the group member and the topic-backed stores.
//! - [`rest`]: the REST API.
//! - [`connectors`]: file, MQTT, PostgreSQL and HTTP connectors.

pub mod connectors;
pub mod distributed;
mod error;
pub mod rest;
pub mod runtime;
pub mod sdk;
pub mod transforms;

pub use error::{ConnectError, Result};
pub use runtime::connector_config::PluginRegistry;
pub use runtime::worker::{read_connector_file, Worker};
pub use runtime::worker_config::WorkerConfig;

/// Installs rustls' ring crypto provider for the process (TLS to MQTT
/// brokers and HTTP endpoints). Safe to call more than once.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
