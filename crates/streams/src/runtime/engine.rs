//! The stream thread: poll, process, commit; tasks created and closed in
//! the consumer's rebalance callbacks; stores restored from changelogs.

use super::setup::{
    client_config, create_internal_topics, process_id, producer_config, subtopology_partitions,
};
use super::{ProcessingGuarantee, Shared, State, StreamsConfig};
use crate::error::{Result, StreamsError};
use crate::record::TaskId;
use crate::store::backend::{Backend, FjallProvider, StoreProvider};
use crate::store::Collector;
use crate::task::Task;
use crate::topology::Topology;
use parking_lot::Mutex;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Message, Timestamp};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const TIMEOUT: Duration = Duration::from_secs(30);
const RESTORE_TIMEOUT: Duration = Duration::from_secs(120);

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Remembers the first failed delivery: it fails the next commit.
#[derive(Default)]
pub(crate) struct DeliveryContext {
    failed: Mutex<Option<String>>,
}

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, m)) = result {
            let mut failed = self.failed.lock();
            if failed.is_none() {
                *failed = Some(format!("to {}-{}: {e}", m.topic(), m.partition()));
            }
        }
    }
}

type StreamsProducer = ThreadedProducer<DeliveryContext>;

struct ProducerCollector {
    producer: Arc<StreamsProducer>,
}

impl Collector for ProducerCollector {
    fn send(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        timestamp: i64,
    ) -> Result<()> {
        if let Some(e) = self.producer.context().failed.lock().clone() {
            return Err(StreamsError::Produce(e));
        }
        let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic).timestamp(timestamp);
        if let Some(p) = partition {
            record = record.partition(p);
        }
        if let Some(k) = key {
            record = record.key(k);
        }
        if let Some(v) = value {
            record = record.payload(v);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err((e, _)) => return Err(StreamsError::kafka(format!("producing to {topic}"), e)),
            }
        }
    }
}

/// The consumer's context: runs the engine's rebalance handling inside
/// `poll`, as Kafka Streams' `onPartitionsRevoked`/`onPartitionsAssigned`.
pub(crate) struct StreamsConsumerContext {
    engine: Arc<Mutex<Engine>>,
}

impl ClientContext for StreamsConsumerContext {}

impl ConsumerContext for StreamsConsumerContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let mut engine = self.engine.lock();
            tracing::info!(partitions = tpl.count(), "partitions revoked");
            engine.shared.set_state(State::Rebalancing);
            if let Err(e) = engine
                .commit(consumer)
                .and_then(|()| engine.close_all(true))
            {
                engine.fail(e);
            }
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let mut engine = self.engine.lock();
                tracing::info!(partitions = tpl.count(), "partitions assigned");
                if let Err(e) = engine.assign(consumer, tpl) {
                    engine.fail(e);
                } else if !engine.shared.shutdown.load(Ordering::SeqCst) {
                    engine.shared.set_state(State::Running);
                }
            }
            Rebalance::Error(e) => tracing::warn!("rebalance error: {e}"),
            Rebalance::Revoke(_) => {}
        }
    }
}

type StreamsConsumer = BaseConsumer<StreamsConsumerContext>;

pub(crate) struct Engine {
    topology: Arc<Topology>,
    app_id: Arc<str>,
    guarantee: ProcessingGuarantee,
    app_dir: PathBuf,
    topic_sub: HashMap<String, usize>,
    tasks: BTreeMap<TaskId, Task>,
    provider: FjallProvider,
    producer: Arc<StreamsProducer>,
    collector: Arc<dyn Collector>,
    restore: BaseConsumer,
    shared: Arc<Shared>,
    in_transaction: bool,
    /// Records processed (or punctuations run) since the last commit.
    dirty: bool,
    fatal: Option<StreamsError>,
}

impl Engine {
    fn fail(&mut self, e: StreamsError) {
        tracing::error!("stream thread: {e}");
        if self.fatal.is_none() {
            self.fatal = Some(e);
        }
    }

    fn ensure_transaction(&mut self) -> Result<()> {
        if self.guarantee == ProcessingGuarantee::ExactlyOnce && !self.in_transaction {
            self.producer
                .begin_transaction()
                .map_err(|e| StreamsError::kafka("begin_transaction", e))?;
            self.in_transaction = true;
        }
        Ok(())
    }

    fn process(&mut self, message: &rdkafka::message::BorrowedMessage<'_>) -> Result<()> {
        let topic = message.topic();
        let Some(sub) = self.topic_sub.get(topic).copied() else {
            return Ok(());
        };
        let id = TaskId {
            subtopology: sub,
            partition: message.partition(),
        };
        self.ensure_transaction()?;
        let Some(task) = self.tasks.get_mut(&id) else {
            tracing::warn!(%id, topic, "record for a task this instance does not run; skipped");
            return Ok(());
        };
        let ts = match message.timestamp() {
            Timestamp::CreateTime(t) | Timestamp::LogAppendTime(t) => t,
            Timestamp::NotAvailable => -1,
        };
        let dropped = task.ctx.dropped_records;
        task.process(
            topic,
            message.partition(),
            message.offset(),
            ts,
            message.key(),
            message.payload(),
        )?;
        let c = &self.shared.counters;
        c.processed.fetch_add(1, Ordering::Relaxed);
        c.dropped
            .fetch_add(task.ctx.dropped_records - dropped, Ordering::Relaxed);
        self.dirty = true;
        Ok(())
    }

    fn punctuate_wall_clock(&mut self) -> Result<()> {
        let now = now_ms();
        let due = self.tasks.values().any(|t| {
            t.ctx
                .schedules
                .iter()
                .any(|s| s.kind == crate::PunctuationType::WallClockTime && s.next <= now)
        });
        if !due {
            return Ok(());
        }
        self.ensure_transaction()?;
        for task in self.tasks.values_mut() {
            task.advance_wall_clock(now)?;
        }
        self.dirty = true;
        Ok(())
    }

    fn offsets(&self) -> Result<TopicPartitionList> {
        let mut tpl = TopicPartitionList::new();
        for task in self.tasks.values() {
            for (topic, partitions) in &task.consumed {
                for (partition, offset) in partitions {
                    tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset))
                        .map_err(|e| StreamsError::kafka("offsets", e))?;
                }
            }
        }
        Ok(tpl)
    }

    /// Commits what was processed since the last commit.
    pub fn commit(&mut self, consumer: &StreamsConsumer) -> Result<()> {
        if !self.dirty {
            return Ok(());
        }
        let offsets = self.offsets()?;
        match self.guarantee {
            ProcessingGuarantee::ExactlyOnce => {
                if self.in_transaction {
                    let metadata = consumer.group_metadata().ok_or_else(|| {
                        StreamsError::Processor("no consumer group metadata".into())
                    })?;
                    if offsets.count() > 0 {
                        self.producer
                            .send_offsets_to_transaction(&offsets, &metadata, TIMEOUT)
                            .map_err(|e| StreamsError::kafka("send_offsets_to_transaction", e))?;
                    }
                    self.producer
                        .commit_transaction(TIMEOUT)
                        .map_err(|e| StreamsError::kafka("commit_transaction", e))?;
                    self.in_transaction = false;
                }
            }
            ProcessingGuarantee::AtLeastOnce => {
                self.producer
                    .flush(TIMEOUT)
                    .map_err(|e| StreamsError::kafka("flushing the producer", e))?;
                if let Some(e) = self.producer.context().failed.lock().clone() {
                    return Err(StreamsError::Produce(e));
                }
                if offsets.count() > 0 {
                    consumer
                        .commit(&offsets, CommitMode::Sync)
                        .map_err(|e| StreamsError::kafka("committing offsets", e))?;
                }
            }
        }
        self.dirty = false;
        self.shared.counters.commits.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn task_dir(&self, id: TaskId) -> PathBuf {
        self.app_dir.join(id.to_string())
    }

    /// Closes every task; a clean close writes each store's checkpoint (the
    /// changelog offset the local store is complete up to).
    pub fn close_all(&mut self, clean: bool) -> Result<()> {
        self.shared.tasks.lock().clear();
        for (id, task) in std::mem::take(&mut self.tasks) {
            self.shared.registry.unregister_task(id);
            if !clean {
                continue;
            }
            let mut checkpoint = BTreeMap::new();
            for store in task.ctx.stores.values() {
                if let Some((topic, partition)) = &store.changelog {
                    let (_, high) = self
                        .restore
                        .fetch_watermarks(topic, *partition, TIMEOUT)
                        .map_err(|e| StreamsError::kafka(format!("end offset of {topic}"), e))?;
                    checkpoint.insert(store.name.clone(), high);
                }
            }
            let dir = self.task_dir(id);
            std::fs::create_dir_all(&dir).map_err(|e| StreamsError::io("task directory", e))?;
            let tmp = dir.join(".checkpoint.tmp");
            std::fs::write(
                &tmp,
                serde_json::to_vec(&checkpoint).expect("checkpoint JSON"),
            )
            .map_err(|e| StreamsError::io("writing a checkpoint", e))?;
            std::fs::rename(&tmp, dir.join(".checkpoint"))
                .map_err(|e| StreamsError::io("writing a checkpoint", e))?;
        }
        Ok(())
    }

    /// Creates the tasks of a new assignment, restoring their stores.
    fn assign(&mut self, consumer: &StreamsConsumer, tpl: &TopicPartitionList) -> Result<()> {
        if tpl.count() == 0 {
            return Ok(());
        }
        if self.guarantee == ProcessingGuarantee::ExactlyOnce {
            // Waits until no transaction holds offsets of these partitions
            // (read_committed: OffsetFetch with require_stable), so that the
            // previous owner's last transaction is complete, markers
            // included, before its changelogs are read.
            consumer
                .committed_offsets(tpl.clone(), RESTORE_TIMEOUT)
                .map_err(|e| StreamsError::kafka("fetching committed offsets", e))?;
        }
        let ids: BTreeSet<TaskId> = tpl
            .elements()
            .iter()
            .filter_map(|e| {
                self.topic_sub.get(e.topic()).map(|s| TaskId {
                    subtopology: *s,
                    partition: e.partition(),
                })
            })
            .collect();
        for id in ids {
            if !self.tasks.contains_key(&id) {
                self.create_task(id)?;
            }
        }
        Ok(())
    }

    fn create_task(&mut self, id: TaskId) -> Result<()> {
        let started = Instant::now();
        let dir = self.task_dir(id);
        std::fs::create_dir_all(&dir).map_err(|e| StreamsError::io("task directory", e))?;
        let checkpoint_path = dir.join(".checkpoint");
        let checkpoint: BTreeMap<String, i64> = std::fs::read(&checkpoint_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        // From now on the local stores run ahead of the changelog's committed
        // state: only a clean close vouches for them again.
        let _ = std::fs::remove_file(&checkpoint_path);
        let sub = self.topology.subtopology(id.subtopology)?;
        let mut restored = 0u64;
        for spec in sub.stores.iter().map(|i| &self.topology.stores[*i]) {
            let from = checkpoint.get(&spec.name).copied();
            if from.is_none() {
                self.provider.wipe(id, &spec.name)?;
            }
            if spec.logged {
                let backend = self.provider.open(id, &spec.name)?;
                let topic = self.topology.changelog_topic(&self.app_id, &spec.name);
                restored += self.restore_store(&*backend, &topic, id.partition, from)?;
            }
        }
        let task = Task::create(
            &self.topology,
            &self.app_id,
            id,
            &self.provider,
            self.collector.clone(),
            now_ms(),
        )?;
        for (name, store) in &task.ctx.stores {
            self.shared
                .registry
                .register(name, id, store.backend.clone());
        }
        self.shared
            .counters
            .restored
            .fetch_add(restored, Ordering::Relaxed);
        tracing::info!(task = %id, restored, took = ?started.elapsed(), "task created");
        self.tasks.insert(id, task);
        *self.shared.tasks.lock() = self.tasks.keys().copied().collect();
        Ok(())
    }

    /// Replays `topic`-`partition` (read_committed) from `from` (or the
    /// beginning) to its end into `backend`.
    fn restore_store(
        &self,
        backend: &dyn Backend,
        topic: &str,
        partition: i32,
        from: Option<i64>,
    ) -> Result<u64> {
        let (low, high) = self
            .restore
            .fetch_watermarks(topic, partition, TIMEOUT)
            .map_err(|e| StreamsError::kafka(format!("end offset of {topic}"), e))?;
        let start = from.unwrap_or(low).max(low);
        if start >= high {
            return Ok(0);
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, Offset::Offset(start))
            .map_err(|e| StreamsError::kafka("restore assignment", e))?;
        self.restore
            .assign(&tpl)
            .map_err(|e| StreamsError::kafka("restore assignment", e))?;
        let deadline = Instant::now() + RESTORE_TIMEOUT;
        let mut n = 0u64;
        let result = loop {
            if Instant::now() > deadline {
                break Err(StreamsError::store(topic, "restoring timed out"));
            }
            match self.restore.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => {
                    let key = m.key().unwrap_or_default();
                    match m.payload() {
                        Some(v) => backend.put(key, v)?,
                        None => backend.delete(key)?,
                    }
                    n += 1;
                    if m.offset() + 1 >= high {
                        break Ok(n);
                    }
                }
                Some(Err(KafkaError::PartitionEOF(_))) => break Ok(n),
                Some(Err(e)) => tracing::warn!(topic, "restore consumer: {e}"),
                None => {}
            }
        };
        let _ = self.restore.unassign();
        result
    }
}

pub(crate) fn run(topology: Topology, config: StreamsConfig, shared: Arc<Shared>) -> Result<()> {
    let app_id: Arc<str> = Arc::from(config.application_id.as_str());
    let app_dir = config.state_dir.join(&config.application_id);
    std::fs::create_dir_all(&app_dir)
        .map_err(|e| StreamsError::io(format!("creating {}", app_dir.display()), e))?;
    let process_id = process_id(&app_dir)?;
    let partitions = subtopology_partitions(&topology, &config)?;
    create_internal_topics(&topology, &config, &partitions)?;
    let topology = Arc::new(topology);

    let exactly_once = config.guarantee == ProcessingGuarantee::ExactlyOnce;
    let mut producer_config = producer_config(&config);
    // Defaults the application may override with `StreamsConfig::set`
    // (Kafka Streams sets transaction.timeout.ms to 10 s under EOS).
    let mut defaults = vec![("partitioner", "murmur2_random"), ("linger.ms", "5")];
    if exactly_once {
        defaults.push(("transaction.timeout.ms", "10000"));
    }
    for (key, value) in defaults {
        if !config.client.contains_key(key) {
            producer_config.set(key, value);
        }
    }
    producer_config.set("enable.idempotence", "true");
    if exactly_once {
        producer_config.set("transactional.id", format!("{app_id}-{process_id}-1"));
    }
    let producer: Arc<StreamsProducer> = Arc::new(
        producer_config
            .create_with_context(DeliveryContext::default())
            .map_err(|e| StreamsError::kafka("creating the producer", e))?,
    );
    if exactly_once {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match producer.init_transactions(TIMEOUT) {
                Ok(()) => break,
                Err(KafkaError::Transaction(e))
                    if e.is_retriable() && Instant::now() < deadline =>
                {
                    tracing::warn!("init_transactions: {e}; retrying");
                }
                Err(e) => return Err(StreamsError::kafka("init_transactions", e)),
            }
        }
    }
    let isolation = if exactly_once {
        "read_committed"
    } else {
        "read_uncommitted"
    };
    let restore: BaseConsumer = client_config(&config)
        .set("group.id", format!("{app_id}-restore-consumer"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", isolation)
        .create()
        .map_err(|e| StreamsError::kafka("creating the restore consumer", e))?;
    let topic_sub: HashMap<String, usize> = (0..topology.subtopologies.len())
        .flat_map(|s| {
            topology
                .source_topics(s, &app_id)
                .into_iter()
                .map(move |t| (t, s))
        })
        .collect();
    let engine = Arc::new(Mutex::new(Engine {
        topology: topology.clone(),
        app_id: app_id.clone(),
        guarantee: config.guarantee,
        app_dir,
        topic_sub: topic_sub.clone(),
        tasks: BTreeMap::new(),
        provider: FjallProvider::open(
            &config.state_dir.join(&config.application_id).join("fjall"),
        )?,
        producer: producer.clone(),
        collector: Arc::new(ProducerCollector {
            producer: producer.clone(),
        }),
        restore,
        shared: shared.clone(),
        in_transaction: false,
        dirty: false,
        fatal: None,
    }));
    let consumer: StreamsConsumer = client_config(&config)
        .set("group.id", app_id.as_ref())
        .set("partition.assignment.strategy", "range")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("isolation.level", isolation)
        .create_with_context(StreamsConsumerContext {
            engine: engine.clone(),
        })
        .map_err(|e| StreamsError::kafka("creating the consumer", e))?;
    let topics: Vec<&str> = topic_sub.keys().map(String::as_str).collect();
    consumer
        .subscribe(&topics)
        .map_err(|e| StreamsError::kafka("subscribing", e))?;
    tracing::info!(application_id = %app_id, %process_id, ?topics, "stream thread started");

    let commit_interval = config.effective_commit_interval();
    let mut last_commit = Instant::now();
    let result = (|| -> Result<()> {
        while !shared.shutdown.load(Ordering::SeqCst) {
            let polled = consumer.poll(Duration::from_millis(50));
            let mut engine = engine.lock();
            if let Some(e) = engine.fatal.take() {
                return Err(e);
            }
            match polled {
                Some(Ok(message)) => engine.process(&message)?,
                Some(Err(e)) => tracing::warn!("consumer: {e}"),
                None => {}
            }
            engine.punctuate_wall_clock()?;
            if last_commit.elapsed() >= commit_interval {
                engine.commit(&consumer)?;
                last_commit = Instant::now();
            }
        }
        let mut engine = engine.lock();
        engine.commit(&consumer)?;
        engine.close_all(true)
    })();
    if let Err(e) = &result {
        let mut engine = engine.lock();
        if engine.in_transaction {
            let _ = producer.abort_transaction(Duration::from_secs(5));
            engine.in_transaction = false;
        }
        // Local stores may hold writes that were never committed: no
        // checkpoints, so the next start restores from the changelogs.
        let _ = engine.close_all(false);
        tracing::error!("stream thread stopping: {e}");
    }
    // Leave the group; tasks are already closed, so the revoke callback has
    // nothing left to commit.
    consumer.unsubscribe();
    drop(consumer);
    result
}
