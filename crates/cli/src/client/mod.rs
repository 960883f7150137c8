//! The Kafka client commands of `strom`: `topic`, `produce`, `consume`,
//! `group`, `txn` and `producers`.
//!
//! They use librdkafka (through `rdkafka`) and nothing from the broker crates,
//! so they work against any Kafka cluster, not only Strom. `txn` and
//! `producers` need requests librdkafka cannot send; [`wire`] sends those.

pub mod common;
pub mod consume;
pub mod group;
pub mod group_reset;
pub mod produce;
pub mod record_format;
pub mod start;
pub mod topic;
pub mod topic_config;
pub mod txn;
pub mod wire;
