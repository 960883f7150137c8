//! Error tolerance (`errors.tolerance`, `errors.log.*`, `errors.retry.*`)
//! and the dead-letter queue of sink connectors, with Kafka Connect's
//! `__connect.errors.*` context headers.

use crate::error::{ConnectError, Result};
use crate::runtime::kafka::{client_config, ensure_topic, REQUEST_TIMEOUT};
use crate::sdk::config::{Config, ConfigMap};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Where in a task's pipeline an error happened (Kafka's `Stage`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    KeyConverter,
    ValueConverter,
    HeaderConverter,
    Transformation,
    TaskPut,
    TaskPoll,
    KafkaProduce,
    KafkaConsume,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::KeyConverter => "KEY_CONVERTER",
            Stage::ValueConverter => "VALUE_CONVERTER",
            Stage::HeaderConverter => "HEADER_CONVERTER",
            Stage::Transformation => "TRANSFORMATION",
            Stage::TaskPut => "TASK_PUT",
            Stage::TaskPoll => "TASK_POLL",
            Stage::KafkaProduce => "KAFKA_PRODUCE",
            Stage::KafkaConsume => "KAFKA_CONSUME",
        }
    }
}

/// The record an error is about, as read from Kafka (sinks) or about to be
/// written (sources).
pub struct FailedRecord<'a> {
    pub topic: &'a str,
    pub partition: Option<i32>,
    pub offset: Option<i64>,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: &'a [crate::sdk::data::Header],
}

struct DeadLetterQueue {
    topic: String,
    producer: FutureProducer,
    context_headers: bool,
}

/// Decides, per failed record, whether the task goes on, and reports it.
pub struct ErrorReporter {
    connector: String,
    task: u32,
    tolerate_all: bool,
    log: bool,
    log_messages: bool,
    retry_timeout: Option<Duration>,
    retry_delay_max: Duration,
    dlq: Option<DeadLetterQueue>,
    pub tolerated: AtomicU64,
}

impl ErrorReporter {
    /// From a connector's validated config; creates the DLQ topic if needed.
    pub async fn new(
        connector: &str,
        task: u32,
        config: &Config,
        producer_props: &ConfigMap,
        admin_props: &ConfigMap,
    ) -> Result<ErrorReporter> {
        let dlq_topic = config.optional_string("errors.deadletterqueue.topic.name");
        let dlq = match dlq_topic {
            None => None,
            Some(topic) => {
                ensure_topic(
                    admin_props,
                    &topic,
                    1,
                    config.int("errors.deadletterqueue.topic.replication.factor"),
                    &[],
                )
                .await?;
                let mut props = client_config(producer_props);
                props.set("acks", "all").set("enable.idempotence", "true");
                Some(DeadLetterQueue {
                    topic,
                    producer: props
                        .create()
                        .map_err(|e| ConnectError::kafka("creating the dead-letter producer", e))?,
                    context_headers: config.bool("errors.deadletterqueue.context.headers.enable"),
                })
            }
        };
        let retry = config.long("errors.retry.timeout");
        Ok(ErrorReporter {
            connector: connector.to_string(),
            task,
            tolerate_all: config
                .string("errors.tolerance")
                .eq_ignore_ascii_case("all"),
            log: config.bool("errors.log.enable"),
            log_messages: config.bool("errors.log.include.messages"),
            retry_timeout: match retry {
                0 => None,
                r if r < 0 => Some(Duration::MAX),
                r => Some(Duration::from_millis(r as u64)),
            },
            retry_delay_max: Duration::from_millis(
                config.long("errors.retry.delay.max.ms").max(1) as u64
            ),
            dlq,
            tolerated: AtomicU64::new(0),
        })
    }

    /// Runs `operation`, retrying retriable failures for `errors.retry.timeout`.
    pub async fn retry<T>(&self, mut operation: impl FnMut() -> Result<T>) -> Result<T> {
        let Some(timeout) = self.retry_timeout else {
            return operation();
        };
        let deadline = tokio::time::Instant::now().checked_add(timeout);
        let mut delay = Duration::from_millis(300);
        loop {
            match operation() {
                Err(e)
                    if e.is_retriable()
                        && deadline.is_none_or(|d| tokio::time::Instant::now() + delay < d) =>
                {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(self.retry_delay_max);
                }
                other => return other,
            }
        }
    }

    /// A failure at `stage`: `Ok(())` if tolerated (the record is skipped,
    /// logged and sent to the DLQ as configured), `Err` if the task must fail.
    pub async fn report(
        &self,
        stage: Stage,
        class: &str,
        error: &ConnectError,
        record: &FailedRecord<'_>,
    ) -> Result<()> {
        if !self.tolerate_all {
            return Err(ConnectError::Failed(format!(
                "Tolerance exceeded in error handler: {} failed in {} ({class}): {error}",
                record.topic,
                stage.name()
            )));
        }
        self.tolerated.fetch_add(1, Ordering::Relaxed);
        if self.log {
            if self.log_messages {
                tracing::error!(
                    connector = self.connector, task = self.task, stage = stage.name(), class,
                    topic = record.topic, partition = ?record.partition, offset = ?record.offset,
                    key = ?record.key.map(String::from_utf8_lossy),
                    value = ?record.value.map(String::from_utf8_lossy),
                    error = %error, "error tolerated"
                );
            } else {
                tracing::error!(
                    connector = self.connector, task = self.task, stage = stage.name(), class,
                    topic = record.topic, partition = ?record.partition, offset = ?record.offset,
                    error = %error, "error tolerated"
                );
            }
        }
        if let Some(dlq) = &self.dlq {
            self.send_to_dlq(dlq, stage, class, error, record).await?;
        }
        Ok(())
    }

    async fn send_to_dlq(
        &self,
        dlq: &DeadLetterQueue,
        stage: Stage,
        class: &str,
        error: &ConnectError,
        record: &FailedRecord<'_>,
    ) -> Result<()> {
        let mut headers = OwnedHeaders::new();
        for h in record.headers {
            headers = headers.insert(Header {
                key: &h.key,
                value: h.value.as_deref(),
            });
        }
        if dlq.context_headers {
            let partition = record.partition.map(|p| p.to_string());
            let offset = record.offset.map(|o| o.to_string());
            let task = self.task.to_string();
            let message = error.to_string();
            let exception = exception_class(error);
            let mut add = |key: &str, value: Option<&str>| {
                if let Some(value) = value {
                    headers = std::mem::replace(&mut headers, OwnedHeaders::new()).insert(Header {
                        key,
                        value: Some(value.as_bytes()),
                    });
                }
            };
            add("__connect.errors.topic", Some(record.topic));
            add("__connect.errors.partition", partition.as_deref());
            add("__connect.errors.offset", offset.as_deref());
            add("__connect.errors.connector.name", Some(&self.connector));
            add("__connect.errors.task.id", Some(&task));
            add("__connect.errors.stage", Some(stage.name()));
            add("__connect.errors.class.name", Some(class));
            add("__connect.errors.exception.class.name", Some(exception));
            add("__connect.errors.exception.message", Some(&message));
            add(
                "__connect.errors.exception.stacktrace",
                Some(&format!("{error:?}")),
            );
        }
        let mut out: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&dlq.topic).headers(headers);
        if let Some(key) = record.key {
            out = out.key(key);
        }
        if let Some(value) = record.value {
            out = out.payload(value);
        }
        dlq.producer
            .send(out, REQUEST_TIMEOUT)
            .await
            .map(|_| ())
            .map_err(|(e, _)| {
                ConnectError::kafka(format!("writing to the dead-letter queue {}", dlq.topic), e)
            })
    }
}

/// A Java-like exception class name for the error kind, for the DLQ header.
fn exception_class(error: &ConnectError) -> &'static str {
    match error {
        ConnectError::Conversion(_) => "org.apache.kafka.connect.errors.DataException",
        ConnectError::Retriable(_) => "org.apache.kafka.connect.errors.RetriableException",
        ConnectError::InvalidConfig(_) | ConnectError::BadRequest(_) => {
            "org.apache.kafka.common.config.ConfigException"
        }
        _ => "org.apache.kafka.connect.errors.ConnectException",
    }
}
