//! The MQTT source connector.

use super::client::{connect, AckHandle, MqttClient, MqttEvent};
use super::settings::{connection_def, validate, MqttSettings};
use crate::error::{ConnectError, Result};
use crate::sdk::config::{split_list, ConfigDef, ConfigMap, ConfigType, Importance, Validator};
use crate::sdk::data::{Header, Record, Schema, SchemaType, SourceRecord, Value};
use crate::sdk::{
    Connector, ConnectorContext, ConnectorPlugin, ConnectorType, SourceTask, SourceTaskContext,
};
use async_trait::async_trait;
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;
use tokio::sync::mpsc;

pub struct MqttSourcePlugin;

fn source_def() -> ConfigDef {
    connection_def()
        .define_with("mqtt.topics", ConfigType::List, None, Importance::High, "MQTT topic filters to subscribe to, comma-separated; + and # wildcards allowed. Split across tasks.", Validator::NonEmpty)
        .define_with("kafka.topic", ConfigType::String, None, Importance::High, "The Kafka topic every message goes to.", Validator::NonEmpty)
        .define("mqtt.topic.as.key", ConfigType::Boolean, Some("true"), Importance::Medium, "Use the MQTT topic as the record key (a string).")
        .define("mqtt.headers.enable", ConfigType::Boolean, Some("true"), Importance::Low, "Add headers mqtt.topic, mqtt.qos and mqtt.retained.")
        .define_with("mqtt.max.batch.size", ConfigType::Int, Some("1000"), Importance::Low, "Largest number of messages per poll.", Validator::AtLeast(1.0))
        .in_group("MQTT source")
}

impl ConnectorPlugin for MqttSourcePlugin {
    fn class(&self) -> &'static str {
        "io.strom.connect.mqtt.MqttSourceConnector"
    }
    fn aliases(&self) -> &'static [&'static str] {
        &["MqttSource", "mqtt-source"]
    }
    fn connector_type(&self) -> ConnectorType {
        ConnectorType::Source
    }
    fn config_def(&self) -> ConfigDef {
        source_def()
    }
    fn validate(&self, config: &ConfigMap) -> BTreeMap<String, Vec<String>> {
        let mut errors = validate(config);
        for filter in split_list(config.get("mqtt.topics").map_or("", String::as_str)) {
            if let Err(e) = valid_filter(&filter) {
                errors
                    .entry("mqtt.topics".into())
                    .or_default()
                    .push(format!(
                        "Invalid value {filter} for configuration mqtt.topics: {e}"
                    ));
            }
        }
        errors
    }
    fn connector(&self) -> Box<dyn Connector> {
        Box::new(MqttSourceConnector::default())
    }
    fn source_task(&self) -> Option<Box<dyn SourceTask>> {
        Some(Box::new(MqttSourceTask::default()))
    }
}

/// MQTT's rules for topic filters: `#` only last and alone in its level,
/// `+` alone in its level.
pub fn valid_filter(filter: &str) -> std::result::Result<(), String> {
    if filter.is_empty() {
        return Err("empty topic filter".into());
    }
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        if level.contains('#') && (*level != "#" || i != levels.len() - 1) {
            return Err("# must be a whole level and the last one".into());
        }
        if level.contains('+') && *level != "+" {
            return Err("+ must be a whole level".into());
        }
    }
    Ok(())
}

#[derive(Default)]
struct MqttSourceConnector {
    config: ConfigMap,
}

#[async_trait]
impl Connector for MqttSourceConnector {
    async fn start(&mut self, config: &ConfigMap, _ctx: ConnectorContext) -> Result<()> {
        self.config = config.clone();
        Ok(())
    }

    /// Topic filters are shared out round-robin, one task at most per filter.
    fn task_configs(&self, max_tasks: usize) -> Result<Vec<ConfigMap>> {
        let filters = split_list(self.config.get("mqtt.topics").map_or("", String::as_str));
        let tasks = max_tasks.min(filters.len()).max(1);
        let mut groups = vec![Vec::new(); tasks];
        for (i, filter) in filters.into_iter().enumerate() {
            groups[i % tasks].push(filter);
        }
        Ok(groups
            .into_iter()
            .map(|group| {
                let mut config = self.config.clone();
                config.insert("mqtt.topics".into(), group.join(","));
                config
            })
            .collect())
    }
}

#[derive(Default)]
struct MqttSourceTask {
    client: Option<MqttClient>,
    events: Option<mpsc::Receiver<MqttEvent>>,
    driver: Option<tokio::task::JoinHandle<()>>,
    filters: Vec<String>,
    qos: u8,
    kafka_topic: String,
    key_from_topic: bool,
    headers: bool,
    max_batch: usize,
    /// Messages handed out, in arrival order: (tag, ack handle, Kafka has it).
    pending: VecDeque<(u64, Option<Box<AckHandle>>, bool)>,
    next_tag: u64,
    connected_once: bool,
}

#[async_trait]
impl SourceTask for MqttSourceTask {
    async fn start(&mut self, config: &ConfigMap, ctx: SourceTaskContext) -> Result<()> {
        let config = source_def().parse(config)?;
        let settings = MqttSettings::from_config(&config)?;
        self.filters = config.list("mqtt.topics");
        self.qos = settings.qos;
        self.kafka_topic = config.string("kafka.topic");
        self.key_from_topic = config.bool("mqtt.topic.as.key");
        self.headers = config.bool("mqtt.headers.enable");
        self.max_batch = config.int("mqtt.max.batch.size").max(1) as usize;
        let (client, events, driver) =
            connect(&settings, &settings.client_id(&ctx.connector, ctx.task))?;
        client.subscribe(&self.filters, self.qos).await?;
        self.client = Some(client);
        self.events = Some(events);
        self.driver = Some(driver);
        tracing::info!(connector = ctx.connector, task = ctx.task, filters = ?self.filters, "MQTT source started");
        Ok(())
    }

    async fn poll(&mut self) -> Result<Vec<SourceRecord>> {
        let mut records = Vec::new();
        let Some(events) = self.events.as_mut() else {
            return Err(ConnectError::Failed(
                "the MQTT source is not started".into(),
            ));
        };
        let first = match tokio::time::timeout(Duration::from_secs(1), events.recv()).await {
            Err(_) => return Ok(records),
            Ok(None) => return Err(ConnectError::Failed("the MQTT event loop ended".into())),
            Ok(Some(event)) => event,
        };
        let mut batch = vec![first];
        while batch.len() < self.max_batch {
            match events.try_recv() {
                Ok(event) => batch.push(event),
                Err(_) => break,
            }
        }
        let mut resubscribe = false;
        for event in batch {
            match event {
                MqttEvent::Publish {
                    topic,
                    payload,
                    qos,
                    retain,
                    ack,
                } => {
                    let tag = self.next_tag;
                    self.next_tag += 1;
                    self.pending
                        .push_back((tag, (qos > 0).then_some(ack), false));
                    let mut record = Record::new(self.kafka_topic.clone())
                        .with_value(Value::Bytes(payload.to_vec()));
                    record.value_schema = Some(Schema::new(SchemaType::Bytes).optional());
                    if self.key_from_topic {
                        record.key = Some(Value::String(topic.clone()));
                        record.key_schema = Some(Schema::new(SchemaType::String).optional());
                    }
                    record.timestamp = Some(now_millis());
                    if self.headers {
                        record.headers = vec![
                            Header {
                                key: "mqtt.topic".into(),
                                value: Some(topic.into_bytes()),
                            },
                            Header {
                                key: "mqtt.qos".into(),
                                value: Some(qos.to_string().into_bytes()),
                            },
                            Header {
                                key: "mqtt.retained".into(),
                                value: Some(retain.to_string().into_bytes()),
                            },
                        ];
                    }
                    records.push(SourceRecord {
                        record,
                        tag,
                        ..SourceRecord::default()
                    });
                }
                MqttEvent::Connected { session_present } => {
                    // Handles from the old connection must not be used: the
                    // broker redelivers those messages (session present) or
                    // they were never ours to ack.
                    for entry in &mut self.pending {
                        entry.1 = None;
                    }
                    if self.connected_once {
                        tracing::info!(session_present, "MQTT source reconnected");
                    }
                    self.connected_once = true;
                    if !session_present {
                        resubscribe = true;
                    }
                }
                MqttEvent::Disconnected(e) => tracing::warn!(error = e, "MQTT source disconnected"),
                MqttEvent::Refused(e) => {
                    return Err(ConnectError::Failed(format!(
                        "the MQTT broker refused the connection: {e}"
                    )))
                }
                MqttEvent::PubAck => {}
            }
        }
        if resubscribe {
            if let Some(client) = &self.client {
                client.subscribe(&self.filters, self.qos).await?;
            }
        }
        Ok(records)
    }

    /// Kafka has the record: acknowledge it (and any before it) upstream, in
    /// the order the broker sent them.
    async fn commit_record(&mut self, record: &SourceRecord) -> Result<()> {
        if let Some(entry) = self.pending.iter_mut().find(|e| e.0 == record.tag) {
            entry.2 = true;
        }
        while self.pending.front().is_some_and(|e| e.2) {
            let (_, handle, _) = self.pending.pop_front().expect("front");
            if let (Some(handle), Some(client)) = (handle, &self.client) {
                client.ack(&handle).await?;
            }
        }
        Ok(())
    }

    async fn stop(&mut self) {
        if let Some(client) = self.client.take() {
            client.disconnect().await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        if let Some(driver) = self.driver.take() {
            driver.abort();
        }
    }
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_filters_follow_mqtt_rules() {
        for ok in ["a/b", "a/+/c", "#", "a/#", "+", "+/+/#"] {
            assert!(valid_filter(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a/#/c", "a#", "a/b+", "#/a"] {
            assert!(valid_filter(bad).is_err(), "{bad}");
        }
    }
}
