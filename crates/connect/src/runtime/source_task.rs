//! Running a source task: poll → transform → convert → produce, then
//! acknowledge upstream (`commit_record`) and store source offsets once
//! Kafka has the records. With exactly-once enabled (distributed mode,
//! KIP-618), each batch and its offsets go in one Kafka transaction.

use crate::error::{ConnectError, Result};
use crate::runtime::connector_config::ConnectorSettings;
use crate::runtime::errors::{ErrorReporter, FailedRecord, Stage};
use crate::runtime::kafka::{client_config, ensure_topic, REQUEST_TIMEOUT};
use crate::runtime::store::{offset_key, JsonObject, State, StatusId, TaskId};
use crate::runtime::task::{kafka_headers, trace, Control, WorkerContext};
use crate::runtime::worker_config::ExactlyOnceSourceSupport;
use crate::sdk::config::ConfigMap;
use crate::sdk::converter::Converter;
use crate::sdk::data::SourceRecord;
use crate::sdk::{OffsetReader, SourceTask, SourceTaskContext};
use crate::transforms::TransformChain;
use async_trait::async_trait;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct StoreReader {
    context: Arc<WorkerContext>,
    connector: String,
}

#[async_trait]
impl OffsetReader for StoreReader {
    async fn offset(&self, partition: &JsonObject) -> Result<Option<JsonObject>> {
        Ok(self.context.offsets.get(&self.connector, partition))
    }
}

/// Transactions per poll batch or per interval.
enum Boundary {
    Poll,
    Interval(Duration),
}

struct Runner {
    id: TaskId,
    context: Arc<WorkerContext>,
    task: Box<dyn SourceTask>,
    producer: FutureProducer,
    key_converter: Box<dyn Converter>,
    value_converter: Box<dyn Converter>,
    chain: TransformChain,
    errors: ErrorReporter,
    /// `Some` with exactly-once.
    transactions: Option<Boundary>,
    create_topics: Option<(i32, i32)>,
    admin_props: ConfigMap,
    known_topics: HashSet<String>,
    /// Latest offset per source partition not yet stored.
    pending_offsets: BTreeMap<String, (JsonObject, JsonObject)>,
    last_offset_flush: Instant,
    class: String,
}

/// Runs a source task until stopped; reports its status.
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
            tracing::error!(task = %id, error = %e, "source task failed to start");
            context
                .set_status(status_id, State::Failed, Some(trace(&e)))
                .await;
            return;
        }
    };
    let result = runner.run(&mut control).await;
    runner.shutdown().await;
    match result {
        Ok(()) => {}
        Err(e) => {
            tracing::error!(task = %id, error = %e, "source task failed");
            context
                .set_status(status_id, State::Failed, Some(trace(&e)))
                .await;
        }
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
        let errors = ErrorReporter::new(
            &id.connector,
            id.task,
            &settings.config,
            &producer_props,
            &admin_props,
        )
        .await?;
        let eos = context.config.exactly_once_source_support == ExactlyOnceSourceSupport::Enabled
            && context.offsets_topic.is_some()
            && settings.plugin.exactly_once_support(raw);
        if !eos
            && settings
                .config
                .string("exactly.once.support")
                .eq_ignore_ascii_case("required")
        {
            return Err(ConnectError::Failed(
                "exactly.once.support=required but exactly-once is not available on this worker"
                    .into(),
            ));
        }
        let mut producer_config = client_config(&producer_props);
        producer_config
            .set("acks", "all")
            .set("enable.idempotence", "true");
        for (k, v) in &producer_props {
            producer_config.set(k, v);
        }
        let transactions = if eos {
            let transactional_id =
                format!("{}-{}-{}", context.config.group_id, id.connector, id.task);
            producer_config.set("transactional.id", &transactional_id);
            Some(
                match settings
                    .config
                    .string("transaction.boundary")
                    .to_ascii_lowercase()
                    .as_str()
                {
                    "interval" => {
                        let ms = settings.config.string("transaction.boundary.interval.ms");
                        let ms = ms.trim().parse::<u64>().ok().map(Duration::from_millis);
                        Boundary::Interval(ms.unwrap_or(context.config.offset_flush_interval))
                    }
                    _ => Boundary::Poll,
                },
            )
        } else {
            None
        };
        let producer: FutureProducer = producer_config
            .create()
            .map_err(|e| ConnectError::kafka("creating the source producer", e))?;
        if transactions.is_some() {
            // Fences any older incarnation of this task (a zombie).
            let p = producer.clone();
            tokio::task::spawn_blocking(move || p.init_transactions(REQUEST_TIMEOUT))
                .await
                .map_err(ConnectError::failed)?
                .map_err(|e| ConnectError::kafka("initialising transactions", e))?;
        }
        context.offsets.refresh().await?;
        let mut task = settings.plugin.source_task().ok_or_else(|| {
            ConnectError::Failed(format!("{} has no source task", settings.plugin.class()))
        })?;
        let ctx = SourceTaskContext {
            connector: id.connector.clone(),
            task: id.task,
            offsets: Arc::new(StoreReader {
                context: context.clone(),
                connector: id.connector.clone(),
            }),
        };
        task.start(task_config, ctx).await?;
        context
            .set_status(StatusId::Task(id.clone()), State::Running, None)
            .await;
        tracing::info!(task = %id, exactly_once = eos, "source task started");
        let partitions = settings.config.int("topic.creation.default.partitions");
        Ok(Runner {
            id,
            task,
            producer,
            key_converter,
            value_converter,
            chain,
            errors,
            transactions,
            create_topics: (partitions > 0).then(|| {
                (
                    partitions,
                    settings
                        .config
                        .int("topic.creation.default.replication.factor"),
                )
            }),
            admin_props,
            known_topics: HashSet::new(),
            pending_offsets: BTreeMap::new(),
            last_offset_flush: Instant::now(),
            class: settings.plugin.class().to_string(),
            context,
        })
    }

    async fn run(&mut self, control: &mut Control) -> Result<()> {
        let flush_interval = self.context.config.offset_flush_interval;
        let mut txn_open: Option<(Instant, Vec<SourceRecord>)> = None;
        loop {
            if control.stopping() {
                break;
            }
            if control.paused() {
                if let Some((_, records)) = txn_open.take() {
                    self.commit_transaction(records).await?;
                }
                self.flush_offsets().await?;
                self.context
                    .set_status(StatusId::Task(self.id.clone()), State::Paused, None)
                    .await;
                while control.paused() && !control.stopping() {
                    control.changed().await;
                }
                if control.stopping() {
                    break;
                }
                self.context
                    .set_status(StatusId::Task(self.id.clone()), State::Running, None)
                    .await;
                continue;
            }
            let records = match self.task.poll().await {
                Ok(records) => records,
                Err(e) if e.is_retriable() => {
                    tracing::warn!(task = %self.id, error = %e, "poll failed; retrying");
                    if control.sleep(Duration::from_millis(500)).await {
                        break;
                    }
                    continue;
                }
                Err(e) => return Err(e),
            };
            if self.transactions.is_some() {
                if !records.is_empty() && txn_open.is_none() {
                    self.begin_transaction().await?;
                    txn_open = Some((Instant::now(), Vec::new()));
                }
                if let Some((started, batch)) = txn_open.as_mut() {
                    let sent = self.send_batch(records).await?;
                    batch.extend(sent);
                    let due = match &self.transactions {
                        Some(Boundary::Interval(interval)) => started.elapsed() >= *interval,
                        _ => true,
                    };
                    if due {
                        let (_, batch) = txn_open.take().expect("open transaction");
                        self.commit_transaction(batch).await?;
                    }
                }
            } else {
                if !records.is_empty() {
                    let sent = self.send_batch(records).await?;
                    for record in &sent {
                        self.task.commit_record(record).await?;
                    }
                }
                if self.last_offset_flush.elapsed() >= flush_interval {
                    self.flush_offsets().await?;
                }
            }
        }
        if let Some((_, records)) = txn_open.take() {
            self.commit_transaction(records).await?;
        }
        self.flush_offsets().await
    }

    fn note_offset(&mut self, record: &SourceRecord) {
        if record.source_partition.is_empty() && record.source_offset.is_empty() {
            return;
        }
        let key = serde_json::to_string(&record.source_partition).expect("JSON");
        self.pending_offsets.insert(
            key,
            (
                record.source_partition.clone(),
                record.source_offset.clone(),
            ),
        );
    }

    /// Transforms, converts and produces a batch; returns the records Kafka
    /// acknowledged (or that were dropped or tolerated), in poll order.
    /// Without transactions the acks are awaited here.
    async fn send_batch(&mut self, records: Vec<SourceRecord>) -> Result<Vec<SourceRecord>> {
        let mut in_flight: Vec<(SourceRecord, Option<DeliveryFuture>)> =
            Vec::with_capacity(records.len());
        for source in records {
            let transformed = match self
                .errors
                .retry(|| self.chain.apply(source.record.clone(), None))
                .await
            {
                Ok(t) => t,
                Err(e) => {
                    self.tolerate(Stage::Transformation, "transforms", &e, &source)
                        .await?;
                    None
                }
            };
            let Some(record) = transformed else {
                in_flight.push((source, None));
                continue;
            };
            let key = match self.key_converter.from_connect(
                &record.topic,
                record.key_schema.as_ref(),
                record.key.as_ref(),
            ) {
                Ok(k) => k,
                Err(e) => {
                    self.tolerate(Stage::KeyConverter, "key.converter", &e, &source)
                        .await?;
                    in_flight.push((source, None));
                    continue;
                }
            };
            let value = match self.value_converter.from_connect(
                &record.topic,
                record.value_schema.as_ref(),
                record.value.as_ref(),
            ) {
                Ok(v) => v,
                Err(e) => {
                    self.tolerate(Stage::ValueConverter, "value.converter", &e, &source)
                        .await?;
                    in_flight.push((source, None));
                    continue;
                }
            };
            if let Some((partitions, replication)) = self.create_topics {
                if self.known_topics.insert(record.topic.clone()) {
                    ensure_topic(
                        &self.admin_props,
                        &record.topic,
                        partitions,
                        replication,
                        &[],
                    )
                    .await?;
                }
            }
            let future = self
                .enqueue(&record, key.as_deref(), value.as_deref())
                .await?;
            in_flight.push((source, Some(future)));
        }
        let mut done = Vec::with_capacity(in_flight.len());
        for (source, future) in in_flight {
            if let Some(future) = future {
                match future.await {
                    Ok(Ok(_)) => {}
                    Ok(Err((e, _))) => {
                        let e =
                            ConnectError::kafka(format!("producing to {}", source.record.topic), e);
                        self.tolerate(Stage::KafkaProduce, "producer", &e, &source)
                            .await?;
                    }
                    Err(_) => return Err(ConnectError::Failed("the producer was closed".into())),
                }
            }
            self.note_offset(&source);
            done.push(source);
        }
        Ok(done)
    }

    async fn enqueue(
        &self,
        record: &crate::sdk::data::Record,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> Result<DeliveryFuture> {
        loop {
            let mut out: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&record.topic);
            if let Some(k) = key {
                out = out.key(k);
            }
            if let Some(v) = value {
                out = out.payload(v);
            }
            if let Some(p) = record.partition {
                out = out.partition(p);
            }
            if let Some(t) = record.timestamp {
                out = out.timestamp(t);
            }
            if let Some(h) = kafka_headers(&record.headers) {
                out = out.headers(h);
            }
            match self.producer.send_result(out) {
                Ok(future) => return Ok(future),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((e, _)) => {
                    return Err(ConnectError::kafka(
                        format!("producing to {}", record.topic),
                        e,
                    ))
                }
            }
        }
    }

    async fn tolerate(
        &self,
        stage: Stage,
        class: &str,
        error: &ConnectError,
        source: &SourceRecord,
    ) -> Result<()> {
        let class = format!("{} {class}", self.class);
        self.errors
            .report(
                stage,
                &class,
                error,
                &FailedRecord {
                    topic: &source.record.topic,
                    partition: source.record.partition,
                    offset: None,
                    key: None,
                    value: None,
                    headers: &source.record.headers,
                },
            )
            .await
    }

    async fn begin_transaction(&self) -> Result<()> {
        self.producer
            .begin_transaction()
            .map_err(|e| ConnectError::kafka("beginning a transaction", e))
    }

    /// Adds the batch's offsets to the open transaction and commits it.
    async fn commit_transaction(&mut self, batch: Vec<SourceRecord>) -> Result<()> {
        let topic = self
            .context
            .offsets_topic
            .clone()
            .expect("exactly-once needs the offsets topic");
        let offsets: Vec<(JsonObject, JsonObject)> = std::mem::take(&mut self.pending_offsets)
            .into_values()
            .collect();
        let mut acks = Vec::new();
        for (partition, offset) in &offsets {
            let key = offset_key(&self.id.connector, partition);
            let value = serde_json::to_vec(offset).expect("JSON");
            let record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&topic)
                .key(key.as_slice())
                .payload(value.as_slice());
            let future = self
                .producer
                .send_result(record)
                .map_err(|(e, _)| ConnectError::kafka("writing offsets in the transaction", e))?;
            acks.push(future);
        }
        let producer = self.producer.clone();
        let committed =
            tokio::task::spawn_blocking(move || producer.commit_transaction(REQUEST_TIMEOUT))
                .await
                .map_err(ConnectError::failed)?;
        if let Err(e) = committed {
            let producer = self.producer.clone();
            let _ =
                tokio::task::spawn_blocking(move || producer.abort_transaction(REQUEST_TIMEOUT))
                    .await;
            return Err(ConnectError::kafka("committing the transaction", e));
        }
        for ack in acks {
            let _ = ack.await;
        }
        // Already durable in Kafka; make them visible to this worker now.
        if !offsets.is_empty() {
            self.context.offsets.put_local(
                &self.id.connector,
                offsets.into_iter().map(|(p, o)| (p, Some(o))).collect(),
            );
        }
        for record in &batch {
            self.task.commit_record(record).await?;
        }
        self.task.commit().await
    }

    async fn flush_offsets(&mut self) -> Result<()> {
        self.last_offset_flush = Instant::now();
        if self.transactions.is_some() || self.pending_offsets.is_empty() {
            return Ok(());
        }
        let offsets: Vec<(JsonObject, Option<JsonObject>)> =
            std::mem::take(&mut self.pending_offsets)
                .into_values()
                .map(|(p, o)| (p, Some(o)))
                .collect();
        let timeout = self
            .context
            .config
            .offset_flush_timeout
            .max(Duration::from_secs(1));
        match tokio::time::timeout(
            timeout * 6,
            self.context.offsets.put(&self.id.connector, offsets),
        )
        .await
        {
            Ok(result) => result?,
            Err(_) => return Err(ConnectError::retriable("storing source offsets timed out")),
        }
        self.task.commit().await
    }

    async fn shutdown(&mut self) {
        self.task.stop().await;
        let producer = self.producer.clone();
        let _ = tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(10))).await;
        tracing::info!(task = %self.id, tolerated = self.errors.tolerated.load(std::sync::atomic::Ordering::Relaxed), "source task stopped");
    }
}
