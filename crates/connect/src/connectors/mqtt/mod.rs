//! MQTT source and sink connectors (MQTT 3.1.1 and 5, QoS 0 and 1).
//!
//! The source subscribes to topic filters (with `+` and `#` wildcards) and
//! produces each message to one Kafka topic, the MQTT topic as the record
//! key: many MQTT topics merge into one Kafka topic. A QoS 1 message is
//! acknowledged to the broker only once Kafka has acknowledged the record,
//! and with a persistent session (`mqtt.clean.session=false`, the default)
//! the broker redelivers what was not acknowledged after a reconnect: no
//! loss, possibly duplicates (at-least-once).
//!
//! The sink publishes each record to the MQTT topic its key names (or a
//! template), and only lets the runtime commit offsets once the broker has
//! acknowledged every QoS 1 publish; a reconnect that lost the session makes
//! the runtime send the records again.

mod client;
pub mod settings;
mod sink;
mod source;

pub use sink::MqttSinkPlugin;
pub use source::MqttSourcePlugin;
