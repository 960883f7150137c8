//! The MQTT sink connector.

use super::client::{connect, MqttClient, MqttEvent};
use super::settings::{connection_def, validate, MqttSettings};
use crate::error::{ConnectError, Result};
use crate::sdk::config::{ConfigDef, ConfigMap, ConfigType, Importance, Validator};
use crate::sdk::data::{SinkRecord, Value};
use crate::sdk::{
    Connector, ConnectorPlugin, ConnectorType, CopyConfigConnector, SinkTask, SinkTaskContext,
};
use async_trait::async_trait;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::mpsc;

pub struct MqttSinkPlugin;

fn sink_def() -> ConfigDef {
    connection_def()
        .define_with("mqtt.topic", ConfigType::String, Some("${key}"), Importance::High, "MQTT topic to publish to: a template with ${key} (the record key as text), ${topic} and ${partition}. The default publishes each record to the MQTT topic its key names.", Validator::NonEmpty)
        .define("mqtt.retain", ConfigType::Boolean, Some("false"), Importance::Low, "Publish with the retain flag.")
        .define_with("mqtt.flush.timeout.ms", ConfigType::Long, Some("30000"), Importance::Low, "How long a flush waits for the broker to acknowledge every QoS 1 publish before the records are sent again.", Validator::AtLeast(100.0))
        .in_group("MQTT sink")
}

impl ConnectorPlugin for MqttSinkPlugin {
    fn class(&self) -> &'static str {
        "io.strom.connect.mqtt.MqttSinkConnector"
    }
    fn aliases(&self) -> &'static [&'static str] {
        &["MqttSink", "mqtt-sink"]
    }
    fn connector_type(&self) -> ConnectorType {
        ConnectorType::Sink
    }
    fn config_def(&self) -> ConfigDef {
        sink_def()
    }
    fn validate(&self, config: &ConfigMap) -> BTreeMap<String, Vec<String>> {
        validate(config)
    }
    fn connector(&self) -> Box<dyn Connector> {
        Box::new(CopyConfigConnector::per_task())
    }
    fn sink_task(&self) -> Option<Box<dyn SinkTask>> {
        Some(Box::new(MqttSinkTask::default()))
    }
}

#[derive(Default)]
struct MqttSinkTask {
    client: Option<MqttClient>,
    events: Option<mpsc::Receiver<MqttEvent>>,
    driver: Option<tokio::task::JoinHandle<()>>,
    ctx: Option<SinkTaskContext>,
    template: String,
    qos: u8,
    retain: bool,
    flush_timeout: Duration,
    /// QoS 1 publishes handed to the client, and acknowledgements received.
    /// Publishes that time out stay outstanding (their acks may still come);
    /// only a lost session forgets them (the runtime sends them again).
    submitted: u64,
    acked: u64,
    /// A reconnect without the session lost unacknowledged publishes.
    lost: bool,
    refused: Option<String>,
}

impl MqttSinkTask {
    fn handle(&mut self, event: MqttEvent) {
        match event {
            MqttEvent::Refused(e) => {
                tracing::error!(error = e, "the MQTT broker refused the connection");
                self.refused = Some(e);
            }
            MqttEvent::PubAck => self.acked += 1,
            MqttEvent::Connected { session_present } => {
                if !session_present && self.acked < self.submitted {
                    self.lost = true;
                }
            }
            MqttEvent::Disconnected(e) => tracing::warn!(error = e, "MQTT sink disconnected"),
            MqttEvent::Publish { .. } => {}
        }
    }

    fn drain(&mut self) {
        while let Some(event) = self.events.as_mut().and_then(|e| e.try_recv().ok()) {
            self.handle(event);
        }
    }

    fn topic_for(&self, record: &SinkRecord) -> Option<String> {
        let key = record.record.key.as_ref().map(Value::to_text);
        if self.template.contains("${key}") && key.as_deref().is_none_or(str::is_empty) {
            return None;
        }
        let topic = self
            .template
            .replace("${key}", key.as_deref().unwrap_or(""))
            .replace("${topic}", &record.record.topic)
            .replace(
                "${partition}",
                &record.record.partition.unwrap_or(0).to_string(),
            );
        (!topic.is_empty() && !topic.contains(['+', '#'])).then_some(topic)
    }
}

#[async_trait]
impl SinkTask for MqttSinkTask {
    async fn start(&mut self, config: &ConfigMap, ctx: SinkTaskContext) -> Result<()> {
        let config = sink_def().parse(config)?;
        let settings = MqttSettings::from_config(&config)?;
        self.template = config.string("mqtt.topic");
        self.qos = settings.qos;
        self.retain = config.bool("mqtt.retain");
        self.flush_timeout = Duration::from_millis(config.long("mqtt.flush.timeout.ms") as u64);
        let (client, events, driver) =
            connect(&settings, &settings.client_id(&ctx.connector, ctx.task))?;
        self.client = Some(client);
        self.events = Some(events);
        self.driver = Some(driver);
        self.ctx = Some(ctx);
        Ok(())
    }

    async fn put(&mut self, records: Vec<SinkRecord>) -> Result<()> {
        for record in records {
            let Some(topic) = self.topic_for(&record) else {
                let ctx = self.ctx.clone().expect("started");
                ctx.errant_record_reporter
                    .report(
                        &record,
                        "no valid MQTT topic for this record (null key, or wildcards in the topic)",
                    )
                    .await?;
                continue;
            };
            let payload = match &record.record.value {
                None => Bytes::new(),
                Some(Value::Bytes(b)) => Bytes::from(b.clone()),
                Some(Value::String(s)) => Bytes::from(s.clone().into_bytes()),
                Some(other) => Bytes::from(
                    serde_json::to_vec(other)
                        .map_err(|e| ConnectError::Conversion(e.to_string()))?,
                ),
            };
            let client = self.client.as_ref().expect("started");
            client
                .publish(topic, self.qos, self.retain, payload)
                .await?;
            if self.qos > 0 {
                self.submitted += 1;
            }
            self.drain();
        }
        Ok(())
    }

    /// Waits until the broker has acknowledged every QoS 1 publish.
    async fn flush(&mut self) -> Result<()> {
        let deadline = tokio::time::Instant::now() + self.flush_timeout;
        loop {
            self.drain();
            if let Some(e) = self.refused.take() {
                return Err(ConnectError::Failed(format!(
                    "the MQTT broker refused the connection: {e}"
                )));
            }
            if self.lost {
                self.forget_outstanding();
                return Err(ConnectError::retriable(
                    "the MQTT session was lost with publishes unacknowledged",
                ));
            }
            if self.acked >= self.submitted {
                return Ok(());
            }
            let events = self.events.as_mut().expect("started");
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(Some(event)) => self.handle(event),
                Ok(None) => return Err(ConnectError::Failed("the MQTT event loop ended".into())),
                Err(_) => {
                    let missing = self.submitted - self.acked;
                    return Err(ConnectError::retriable(format!(
                        "{missing} MQTT publishes not acknowledged within {:?}",
                        self.flush_timeout
                    )));
                }
            }
        }
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

impl MqttSinkTask {
    /// The session is gone: no acks will come for what is outstanding.
    fn forget_outstanding(&mut self) {
        self.submitted = self.acked;
        self.lost = false;
    }
}
