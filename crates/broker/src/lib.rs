//! Strom's broker: the Kafka wire protocol over [`strom_log`] partitions.
//!
//! ```no_run
//! # async fn run() -> Result<(), strom_broker::BrokerError> {
//! let config = strom_broker::BrokerConfig {
//!     listen: "127.0.0.1:0".into(),
//!     ..Default::default()
//! };
//! let broker = strom_broker::start(config).await?;
//! println!("listening on {}", broker.local_addr());
//! broker.shutdown().await?;
//! # Ok(()) }
//! ```
//!
//! Layout: [`server`] accepts connections and runs background tasks
//! (interval flushes, retention); [`connection`] frames requests;
//! [`handlers`] has one module per Kafka API; [`topics`] is the partition
//! manager, persisted through [`metadata`] (an internal log);
//! [`topic_config`] maps Kafka's config names onto log settings;
//! [`admin_http`] serves health, readiness and [`metrics`] over HTTP.

pub mod admin_http;
pub mod alloc;
pub mod config;
pub mod connection;
pub mod data_dir_lock;
pub mod error;
pub mod fuzzing;
pub mod groups;
pub mod handlers;
pub mod internal_log;
pub mod metadata;
pub mod metrics;
pub mod rate_limit;
pub mod response;
pub mod server;
pub mod topic_config;
pub mod topics;
pub mod transactions;

pub use config::BrokerConfig;
pub use error::BrokerError;
pub use server::{start, BrokerContext, RunningBroker};

/// Every binary linking the broker gets the hardened allocator: see [`alloc`].
#[global_allocator]
static ALLOCATOR: alloc::GuardedAllocator = alloc::GuardedAllocator;
