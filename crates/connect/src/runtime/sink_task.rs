//! Running a sink task: consume (group `connect-NAME`) → convert →
//! transform → `put`; every `offset.flush.interval.ms`, `flush` and only
//! then commit the consumed offsets (at-least-once). A retriable failure in
//! `put` or `flush` rewinds to the last committed offsets and tries again.

use crate::error::{ConnectError, Result};
use crate::runtime::connector_config::ConnectorSettings;
use crate::runtime::errors::{ErrorReporter, FailedRecord, Stage};
use crate::runtime::kafka::client_config;
use crate::runtime::store::{State, StatusId, TaskId};
use crate::runtime::task::{record_headers, trace, Control, WorkerContext};
use crate::sdk::config::ConfigMap;
use crate::sdk::converter::Converter;
use crate::sdk::data::{Record, SinkRecord};
use crate::sdk::{ErrantRecordReporter, SinkTask, SinkTaskContext};
use crate::transforms::TransformChain;
use async_trait::async_trait;
use futures::FutureExt as _;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::BorrowedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

type Partition = (String, i32);

/// Up to `max_batch` messages: waits up to 500 ms for the first, then takes
/// what is already there.
async fn next_batch<'c>(
    consumer: &'c StreamConsumer,
    id: &TaskId,
    max_batch: usize,
) -> Vec<BorrowedMessage<'c>> {
    let mut out = Vec::new();
    match tokio::time::timeout(Duration::from_millis(500), consumer.recv()).await {
        Err(_) => return out,
        Ok(Err(e)) => {
            tracing::warn!(task = %id, error = %e, "consumer error");
            return out;
        }
        Ok(Ok(m)) => out.push(m),
    }
    while out.len() < max_batch {
        match consumer.recv().now_or_never() {
            Some(Ok(m)) => out.push(m),
            Some(Err(e)) => {
                tracing::warn!(task = %id, error = %e, "consumer error");
                break;
            }
            None => break,
        }
    }
    out
}

/// The consumer group of a sink connector (Kafka Connect's default).
pub fn group_id(connector: &str) -> String {
    format!("connect-{connector}")
}

struct Reporter {
    errors: Arc<ErrorReporter>,
    class: String,
}

#[async_trait]
impl ErrantRecordReporter for Reporter {
    async fn report(&self, record: &SinkRecord, error: &str) -> Result<()> {
        self.errors
            .report(
                Stage::TaskPut,
                &self.class,
                &ConnectError::Failed(error.to_string()),
                &FailedRecord {
                    topic: &record.original_topic,
                    partition: Some(record.original_partition),
                    offset: Some(record.kafka_offset),
                    key: record.original_key.as_deref(),
                    value: record.original_value.as_deref(),
                    headers: &record.record.headers,
                },
            )
            .await
    }
}

struct Runner {
    id: TaskId,
    context: Arc<WorkerContext>,
    task: Box<dyn SinkTask>,
    consumer: Arc<StreamConsumer>,
    key_converter: Box<dyn Converter>,
    value_converter: Box<dyn Converter>,
    chain: TransformChain,
    errors: Arc<ErrorReporter>,
    class: String,
    /// Next offset per partition, consumed since the last commit.
    consumed: HashMap<Partition, i64>,
    /// Last committed (or first seen) offset per partition: where a rewind goes.
    rewind_to: HashMap<Partition, i64>,
    last_flush: Instant,
    max_batch: usize,
}

pub async fn run(
    context: Arc<WorkerContext>,
    id: TaskId,
    settings: ConnectorSettings,
    task_config: ConfigMap,
    mut control: Control,
) {
    let status_id = StatusId::Task(id.clone());
    let mut runner = match Runner::start(context.clone(), id.clone(), &settings, &task_config).await
    {
        Ok(runner) => runner,
        Err(e) => {
            tracing::error!(task = %id, error = %e, "sink task failed to start");
            context
                .set_status(status_id, State::Failed, Some(trace(&e)))
                .await;
            return;
        }
    };
    let result = runner.run(&mut control).await;
    let result = match result {
        Ok(()) => runner.flush_and_commit().await,
        Err(e) => Err(e),
    };
    runner.task.stop().await;
    if let Err(e) = result {
        tracing::error!(task = %id, error = %e, "sink task failed");
        context
            .set_status(status_id, State::Failed, Some(trace(&e)))
            .await;
    } else {
        tracing::info!(task = %id, "sink task stopped");
    }
}

impl Runner {
    async fn start(
        context: Arc<WorkerContext>,
        id: TaskId,
        settings: &ConnectorSettings,
        task_config: &ConfigMap,
    ) -> Result<Runner> {
        let raw = settings.config.raw();
        let (key_converter, value_converter) = context.converters(raw)?;
        let chain = TransformChain::from_config(raw)?;
        let producer_props = context.client_props("producer", raw);
        let admin_props = context.client_props("admin", raw);
        let errors = Arc::new(
            ErrorReporter::new(
                &id.connector,
                id.task,
                &settings.config,
                &producer_props,
                &admin_props,
            )
            .await?,
        );
        let consumer_props = context.client_props("consumer", raw);
        let mut config = client_config(&ConfigMap::new());
        config
            .set("group.id", group_id(&id.connector))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("client.id", format!("connector-consumer-{}", id));
        for (k, v) in &consumer_props {
            config.set(k, v);
        }
        let max_batch = consumer_props
            .get("max.poll.records")
            .and_then(|v| v.parse().ok())
            .unwrap_or(500);
        config.remove("max.poll.records");
        let consumer: StreamConsumer = config
            .create()
            .map_err(|e| ConnectError::kafka("creating the sink consumer", e))?;
        let topics = settings.config.list("topics");
        let subscription: Vec<String> = if topics.is_empty() {
            vec![format!(
                "^{}",
                settings
                    .config
                    .string("topics.regex")
                    .trim_start_matches('^')
            )]
        } else {
            topics
        };
        let subscription_refs: Vec<&str> = subscription.iter().map(String::as_str).collect();
        consumer
            .subscribe(&subscription_refs)
            .map_err(|e| ConnectError::kafka("subscribing", e))?;
        let mut task = settings.plugin.sink_task().ok_or_else(|| {
            ConnectError::Failed(format!("{} has no sink task", settings.plugin.class()))
        })?;
        let ctx = SinkTaskContext {
            connector: id.connector.clone(),
            task: id.task,
            errant_record_reporter: Arc::new(Reporter {
                errors: errors.clone(),
                class: settings.plugin.class().to_string(),
            }),
        };
        task.start(task_config, ctx).await?;
        context
            .set_status(StatusId::Task(id.clone()), State::Running, None)
            .await;
        tracing::info!(task = %id, "sink task started");
        Ok(Runner {
            id,
            task,
            consumer: Arc::new(consumer),
            key_converter,
            value_converter,
            chain,
            errors,
            class: settings.plugin.class().to_string(),
            consumed: HashMap::new(),
            rewind_to: HashMap::new(),
            last_flush: Instant::now(),
            max_batch,
            context,
        })
    }

    async fn run(&mut self, control: &mut Control) -> Result<()> {
        let flush_interval = self.context.config.offset_flush_interval;
        let mut backoff = Duration::from_millis(100);
        loop {
            if control.stopping() {
                return Ok(());
            }
            if control.paused() {
                self.pause(control).await?;
                continue;
            }
            let consumer = self.consumer.clone();
            let messages = next_batch(&consumer, &self.id, self.max_batch).await;
            let mut records = Vec::with_capacity(messages.len());
            let mut batch_offsets: Vec<(Partition, i64)> = Vec::with_capacity(messages.len());
            for message in &messages {
                let partition = (message.topic().to_string(), message.partition());
                self.rewind_to
                    .entry(partition.clone())
                    .or_insert(message.offset());
                batch_offsets.push((partition, message.offset() + 1));
                if let Some(record) = self.convert(message).await? {
                    records.push(record);
                }
            }
            drop(messages);
            if !records.is_empty() {
                match self.task.put(records).await {
                    Ok(()) => backoff = Duration::from_millis(100),
                    Err(e) if e.is_retriable() => {
                        tracing::warn!(task = %self.id, error = %e, "put failed; rewinding to retry");
                        self.rewind().await;
                        if control.sleep(backoff).await {
                            return Ok(());
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(10));
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            for (partition, next) in batch_offsets {
                self.consumed.insert(partition, next);
            }
            if self.last_flush.elapsed() >= flush_interval {
                match self.flush_and_commit().await {
                    Ok(()) => {}
                    Err(e) if e.is_retriable() => {
                        tracing::warn!(task = %self.id, error = %e, "flush failed; rewinding to retry");
                        self.rewind().await;
                        if control.sleep(backoff).await {
                            return Ok(());
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(10));
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }

    /// Converts and transforms one message; `None` if dropped or tolerated.
    async fn convert(&self, message: &BorrowedMessage<'_>) -> Result<Option<SinkRecord>> {
        let topic = message.topic();
        let headers = record_headers(message);
        fn failed<'a>(
            message: &'a BorrowedMessage<'_>,
            headers: &'a [crate::sdk::data::Header],
        ) -> FailedRecord<'a> {
            FailedRecord {
                topic: message.topic(),
                partition: Some(message.partition()),
                offset: Some(message.offset()),
                key: message.key(),
                value: message.payload(),
                headers,
            }
        }
        let (key_schema, key) = match self.key_converter.to_connect(topic, message.key()) {
            Ok(k) => k,
            Err(e) => {
                let class = format!("{} key.converter", self.class);
                self.errors
                    .report(Stage::KeyConverter, &class, &e, &failed(message, &headers))
                    .await?;
                return Ok(None);
            }
        };
        let (value_schema, value) = match self.value_converter.to_connect(topic, message.payload())
        {
            Ok(v) => v,
            Err(e) => {
                let class = format!("{} value.converter", self.class);
                self.errors
                    .report(
                        Stage::ValueConverter,
                        &class,
                        &e,
                        &failed(message, &headers),
                    )
                    .await?;
                return Ok(None);
            }
        };
        let record = Record {
            topic: topic.to_string(),
            partition: Some(message.partition()),
            key_schema,
            key,
            value_schema,
            value,
            timestamp: message.timestamp().to_millis(),
            headers: headers.clone(),
        };
        let transformed = match self
            .errors
            .retry(|| self.chain.apply(record.clone(), Some(message.offset())))
            .await
        {
            Ok(t) => t,
            Err(e) => {
                let class = format!("{} transforms", self.class);
                self.errors
                    .report(
                        Stage::Transformation,
                        &class,
                        &e,
                        &failed(message, &headers),
                    )
                    .await?;
                return Ok(None);
            }
        };
        Ok(transformed.map(|record| SinkRecord {
            record,
            kafka_offset: message.offset(),
            original_key: message.key().map(<[u8]>::to_vec),
            original_value: message.payload().map(<[u8]>::to_vec),
            original_topic: topic.to_string(),
            original_partition: message.partition(),
        }))
    }

    /// Flushes the task and commits what it has written.
    async fn flush_and_commit(&mut self) -> Result<()> {
        self.last_flush = Instant::now();
        self.task.flush().await?;
        if self.consumed.is_empty() {
            return Ok(());
        }
        let assignment = self
            .consumer
            .assignment()
            .map_err(|e| ConnectError::kafka("reading the assignment", e))?;
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), next) in &self.consumed {
            if assignment.find_partition(topic, *partition).is_some() {
                tpl.add_partition_offset(topic, *partition, Offset::Offset(*next))
                    .map_err(|e| ConnectError::kafka("building the commit", e))?;
            }
        }
        if tpl.count() > 0 {
            let consumer = self.consumer.clone();
            let commit_list = tpl.clone();
            let result = tokio::task::spawn_blocking(move || {
                consumer.commit(&commit_list, CommitMode::Sync)
            })
            .await
            .map_err(ConnectError::failed)?;
            if let Err(e) = result {
                // Not fatal: the records are written; a later commit covers them.
                tracing::warn!(task = %self.id, error = %e, "committing offsets failed");
                return Ok(());
            }
        }
        for (partition, next) in self.consumed.drain() {
            self.rewind_to.insert(partition, next);
        }
        Ok(())
    }

    /// Seeks every partition back to its last committed offset.
    async fn rewind(&mut self) {
        self.consumed.clear();
        let consumer = self.consumer.clone();
        let targets: Vec<(Partition, i64)> = self
            .rewind_to
            .iter()
            .map(|(p, o)| (p.clone(), *o))
            .collect();
        let _ = tokio::task::spawn_blocking(move || {
            for ((topic, partition), offset) in targets {
                if let Err(e) = consumer.seek(
                    &topic,
                    partition,
                    Offset::Offset(offset),
                    Duration::from_secs(5),
                ) {
                    tracing::debug!(topic, partition, error = %e, "seek for rewind failed");
                }
            }
        })
        .await;
    }

    async fn pause(&mut self, control: &mut Control) -> Result<()> {
        self.flush_and_commit().await?;
        self.context
            .set_status(StatusId::Task(self.id.clone()), State::Paused, None)
            .await;
        while control.paused() && !control.stopping() {
            // Keep polling (so the group membership stays alive) with every
            // assigned partition paused; anything that slips through is
            // rewound to.
            if let Ok(assignment) = self.consumer.assignment() {
                let _ = self.consumer.pause(&assignment);
            }
            tokio::select! {
                _ = control.changed() => {}
                message = self.consumer.recv() => {
                    if let Ok(m) = message {
                        let (topic, partition, offset) = (m.topic().to_string(), m.partition(), m.offset());
                        drop(m);
                        let _ = self.consumer.seek(&topic, partition, Offset::Offset(offset), Duration::from_secs(5));
                    }
                }
            }
        }
        if let Ok(assignment) = self.consumer.assignment() {
            let _ = self.consumer.resume(&assignment);
        }
        if !control.stopping() {
            self.context
                .set_status(StatusId::Task(self.id.clone()), State::Running, None)
                .await;
        }
        Ok(())
    }
}
