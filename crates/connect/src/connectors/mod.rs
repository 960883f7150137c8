//! The built-in connectors: file source and sink, MQTT source and sink,
//! PostgreSQL sink, HTTP sink.

pub mod file;
pub mod http;
pub mod mqtt;
pub mod postgres;

use crate::sdk::ConnectorPlugin;
use std::sync::Arc;

/// Every built-in connector plugin.
pub fn builtin() -> Vec<Arc<dyn ConnectorPlugin>> {
    vec![
        Arc::new(file::FileSourcePlugin),
        Arc::new(file::FileSinkPlugin),
        Arc::new(mqtt::MqttSourcePlugin),
        Arc::new(mqtt::MqttSinkPlugin),
        Arc::new(postgres::PostgresSinkPlugin),
        Arc::new(http::HttpSinkPlugin),
    ]
}
