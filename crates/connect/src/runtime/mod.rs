//! The Connect runtime: worker config, stores, the herder and task runners.

pub mod connector_config;
pub mod errors;
pub mod herder;
pub mod herder_api;
pub mod kafka;
pub mod offsets_api;
pub mod sink_task;
pub mod source_task;
pub mod store;
pub mod task;
pub mod worker;
pub mod worker_config;
