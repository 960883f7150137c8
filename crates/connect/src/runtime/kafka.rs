//! Kafka plumbing shared by the runtime: client configs, topic creation, and
//! [`TopicLog`], a topic read from the beginning and followed (Kafka
//! Connect's KafkaBasedLog) that the config, offset and status stores sit on.

use crate::error::{ConnectError, Result};
use crate::sdk::config::ConfigMap;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How long a metadata or admin request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

pub fn client_config(props: &ConfigMap) -> ClientConfig {
    let mut config = ClientConfig::new();
    for (k, v) in props {
        config.set(k, v);
    }
    config
}

/// Creates `topic` if it does not exist (an existing one is fine).
pub async fn ensure_topic(
    admin_props: &ConfigMap,
    topic: &str,
    partitions: i32,
    replication: i32,
    configs: &[(&str, &str)],
) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = client_config(admin_props)
        .create()
        .map_err(|e| ConnectError::kafka("creating an admin client", e))?;
    let mut new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(replication));
    for (k, v) in configs {
        new_topic = new_topic.set(k, v);
    }
    let options = AdminOptions::new().operation_timeout(Some(REQUEST_TIMEOUT));
    let results = admin
        .create_topics([&new_topic], &options)
        .await
        .map_err(|e| ConnectError::kafka(format!("creating topic {topic}"), e))?;
    for result in results {
        match result {
            Ok(_) => tracing::info!(topic, partitions, "created topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(ConnectError::Failed(format!(
                    "creating topic {name}: {code}"
                )))
            }
        }
    }
    Ok(())
}

/// The number of partitions of `topic`, `None` if it does not exist.
pub async fn partition_count(props: &ConfigMap, topic: &str) -> Result<Option<i32>> {
    let consumer: rdkafka::consumer::BaseConsumer = client_config(props)
        .create()
        .map_err(|e| ConnectError::kafka("creating a metadata client", e))?;
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || {
        let metadata = consumer
            .fetch_metadata(Some(&topic), REQUEST_TIMEOUT)
            .map_err(|e| ConnectError::kafka(format!("metadata of {topic}"), e))?;
        Ok(metadata.topics().first().and_then(|t| {
            if t.error().is_some() || t.partitions().is_empty() {
                None
            } else {
                Some(t.partitions().len() as i32)
            }
        }))
    })
    .await
    .map_err(ConnectError::failed)?
}

/// Something applied, in order, to every record of a [`TopicLog`].
pub type Apply = Box<dyn FnMut(i64, &[u8], Option<&[u8]>) + Send>;

/// A compacted topic read from the beginning and followed: every record is
/// handed to the `apply` callback, in order per partition; `read_to_end`
/// waits until everything written before the call has been applied.
pub struct TopicLog {
    topic: String,
    producer: FutureProducer,
    consumer: Arc<StreamConsumer>,
    partitions: i32,
    /// Bumped after every applied record, so `read_to_end` can wait.
    progress: watch::Receiver<u64>,
    follower: tokio::task::JoinHandle<()>,
}

impl TopicLog {
    /// Starts following `topic` (which must exist) from the beginning.
    pub async fn start(
        consumer_props: &ConfigMap,
        producer_props: &ConfigMap,
        topic: &str,
        mut apply: Apply,
    ) -> Result<TopicLog> {
        let partitions = partition_count(consumer_props, topic)
            .await?
            .ok_or_else(|| ConnectError::Failed(format!("topic {topic} does not exist")))?;
        let mut config = client_config(consumer_props);
        config
            .set("group.id", format!("strom-connect-log-{topic}"))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("isolation.level", "read_committed")
            .set("fetch.wait.max.ms", "100");
        let consumer: StreamConsumer = config
            .create()
            .map_err(|e| ConnectError::kafka(format!("creating a consumer of {topic}"), e))?;
        let mut assignment = TopicPartitionList::new();
        for p in 0..partitions {
            assignment
                .add_partition_offset(topic, p, Offset::Beginning)
                .map_err(|e| ConnectError::kafka("assignment", e))?;
        }
        consumer
            .assign(&assignment)
            .map_err(|e| ConnectError::kafka(format!("assigning {topic}"), e))?;
        let consumer = Arc::new(consumer);
        let mut producer_config = client_config(producer_props);
        producer_config
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("linger.ms", "0");
        let producer: FutureProducer = producer_config
            .create()
            .map_err(|e| ConnectError::kafka(format!("creating a producer for {topic}"), e))?;
        let (progress_tx, progress) = watch::channel(0u64);
        let follower_consumer = consumer.clone();
        let name = topic.to_string();
        let follower = tokio::spawn(async move {
            let mut applied = 0u64;
            loop {
                match follower_consumer.recv().await {
                    Ok(message) => {
                        apply(
                            message.offset(),
                            message.key().unwrap_or_default(),
                            message.payload(),
                        );
                        applied += 1;
                        progress_tx.send_replace(applied);
                    }
                    Err(e) => {
                        tracing::warn!(topic = name, error = %e, "reading the topic");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        });
        Ok(TopicLog {
            topic: topic.to_string(),
            producer,
            consumer,
            partitions,
            progress,
            follower,
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Waits until every record written before this call has been applied.
    pub async fn read_to_end(&self) -> Result<()> {
        let consumer = self.consumer.clone();
        let topic = self.topic.clone();
        let partitions = self.partitions;
        let ends = tokio::task::spawn_blocking(move || {
            (0..partitions)
                .map(|p| {
                    consumer
                        .fetch_watermarks(&topic, p, REQUEST_TIMEOUT)
                        .map(|(low, high)| if high > low { high } else { 0 })
                        .map_err(|e| ConnectError::kafka(format!("end offsets of {topic}"), e))
                })
                .collect::<Result<Vec<i64>>>()
        })
        .await
        .map_err(ConnectError::failed)??;
        let deadline = tokio::time::Instant::now() + REQUEST_TIMEOUT;
        let mut progress = self.progress.clone();
        loop {
            let positions = self
                .consumer
                .position()
                .map_err(|e| ConnectError::kafka("consumer position", e))?;
            let behind = (0..self.partitions).any(|p| {
                let end = ends[p as usize];
                let position = positions
                    .find_partition(&self.topic, p)
                    .and_then(|e| e.offset().to_raw())
                    .unwrap_or(-1);
                end > 0 && position < end
            });
            if !behind {
                return Ok(());
            }
            // Woken by progress, or re-checked every 50 ms (the position also
            // moves over transaction markers, which apply nothing).
            let _ = tokio::time::timeout_at(
                deadline.min(tokio::time::Instant::now() + Duration::from_millis(50)),
                progress.changed(),
            )
            .await;
            if tokio::time::Instant::now() >= deadline {
                return Err(ConnectError::retriable(format!(
                    "reading {} to its end took longer than {REQUEST_TIMEOUT:?}",
                    self.topic
                )));
            }
        }
    }

    /// Writes a record (`None` = tombstone) and waits for the ack.
    pub async fn send(&self, key: &[u8], value: Option<&[u8]>) -> Result<()> {
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&self.topic).key(key);
        if let Some(value) = value {
            record = record.payload(value);
        }
        self.producer
            .send(record, REQUEST_TIMEOUT)
            .await
            .map(|_| ())
            .map_err(|(e, _)| ConnectError::kafka(format!("writing to {}", self.topic), e))
    }

    pub fn flush(&self) {
        let _ = self.producer.flush(Duration::from_secs(5));
    }
}

impl Drop for TopicLog {
    fn drop(&mut self) {
        self.follower.abort();
    }
}
