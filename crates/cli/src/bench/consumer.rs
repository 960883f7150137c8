//! Consumer threads: each assigns itself a share of the partitions (no
//! consumer group), reads as fast as it can, and in `e2e` measures how long
//! each record took from its due time to its arrival.

use super::latency::LatencyHistogram;
use super::report::{Consumed, Throughput};
use super::schedule::RunClock;
use crate::client::common::{ClientArgs, REQUEST_TIMEOUT};
use anyhow::{anyhow, bail, Context as _};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

const POLL_WAIT: Duration = Duration::from_millis(100);

/// What the consumers read and when they stop; the first condition met ends
/// a consumer's run.
#[derive(Debug, Clone)]
pub struct ConsumePlan {
    pub topic: String,
    /// Each partition and where to start reading it.
    pub partitions: Vec<(i32, Offset)>,
    pub consumers: usize,
    /// Stop after this many records over all consumers.
    pub count: Option<u64>,
    /// Stop this long after starting.
    pub duration: Option<Duration>,
    /// Stop once every partition has been read to its end.
    pub until_end: bool,
    /// Stop when nothing has arrived for this long.
    pub idle_timeout: Option<Duration>,
    /// Read each record's due time from its first 8 bytes and record the
    /// end-to-end latency.
    pub measure_end_to_end: bool,
}

/// Running totals over all consumers.
#[derive(Debug)]
pub struct ConsumeCounters {
    pub records: AtomicU64,
    pub bytes: AtomicU64,
    /// How many records the consumers are to read in all; `u64::MAX` for no
    /// limit. `e2e` sets it once it knows how many were acknowledged.
    pub target: AtomicU64,
}

/// Keeps librdkafka from logging the end of a partition as an error: it is
/// how `--until-end` reading learns it is done.
struct QuietEofContext;

impl ClientContext for QuietEofContext {
    fn error(&self, error: KafkaError, reason: &str) {
        if !matches!(
            error,
            KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF)
        ) {
            tracing::error!("librdkafka: {error}: {reason}");
        }
    }
}

impl ConsumerContext for QuietEofContext {}

type BenchConsumer = BaseConsumer<QuietEofContext>;

/// Why a consumer stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    Done,
    Idle,
}

struct WorkerEnd {
    finished_at: Duration,
    latency: LatencyHistogram,
    reason: StopReason,
}

/// The consumer threads of a run.
pub struct ConsumerFleet {
    workers: Vec<JoinHandle<anyhow::Result<WorkerEnd>>>,
    counters: Arc<ConsumeCounters>,
    halt: Arc<AtomicBool>,
    started: Duration,
}

/// The outcome of the consumers' run.
pub struct ConsumeResult {
    pub consumed: Consumed,
    pub end_to_end: LatencyHistogram,
    /// Some consumer stopped because nothing arrived for the idle timeout.
    pub went_idle: bool,
}

impl ConsumerFleet {
    /// Creates the consumers, assigns each its partitions and starts reading.
    /// With more consumers than partitions the extra ones are not started.
    pub fn start(
        client: &ClientArgs,
        plan: &ConsumePlan,
        clock: RunClock,
        stop: &Arc<AtomicBool>,
    ) -> anyhow::Result<ConsumerFleet> {
        let counters = Arc::new(ConsumeCounters {
            records: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            target: AtomicU64::new(plan.count.unwrap_or(u64::MAX)),
        });
        let halt = Arc::new(AtomicBool::new(false));
        let consumers = plan.consumers.clamp(1, plan.partitions.len().max(1));
        if consumers < plan.consumers {
            eprintln!(
                "note: {} partitions for {} consumers; starting {consumers}",
                plan.partitions.len(),
                plan.consumers
            );
        }
        let started = clock.elapsed();
        let mut workers = Vec::with_capacity(consumers);
        for worker in 0..consumers {
            let mine: Vec<(i32, Offset)> = plan
                .partitions
                .iter()
                .skip(worker)
                .step_by(consumers)
                .copied()
                .collect();
            let consumer = connect(client, plan.until_end)?;
            let mut assignment = TopicPartitionList::new();
            for (partition, offset) in &mine {
                assignment.add_partition_offset(&plan.topic, *partition, *offset)?;
            }
            consumer
                .assign(&assignment)
                .context("assigning partitions")?;
            let job = ReadJob {
                consumer,
                plan: plan.clone(),
                partitions: mine.iter().map(|(partition, _)| *partition).collect(),
                clock,
                started,
                counters: Arc::clone(&counters),
                stop: Arc::clone(stop),
                halt: Arc::clone(&halt),
            };
            workers.push(
                std::thread::Builder::new()
                    .name(format!("bench-consumer-{worker}"))
                    .spawn(move || job.run())
                    .context("starting a consumer thread")?,
            );
        }
        Ok(ConsumerFleet {
            workers,
            counters,
            halt,
            started,
        })
    }

    pub fn counters(&self) -> &ConsumeCounters {
        &self.counters
    }

    pub fn is_finished(&self) -> bool {
        self.workers.iter().all(JoinHandle::is_finished)
    }

    /// Counts throughput from `offset` after the clock's start instead of
    /// from when the consumers started (`e2e` lets them warm up first).
    pub fn measure_from(&mut self, offset: Duration) {
        self.started = offset;
    }

    /// Makes every consumer stop at its next poll.
    pub fn halt(&self) {
        self.halt.store(true, Ordering::Relaxed);
    }

    /// Waits for the consumers and sums up; throughput counts from the start
    /// to the last consumer's last record (or its stop, if it got none).
    pub fn finish(self) -> anyhow::Result<ConsumeResult> {
        let mut end = self.started;
        let mut latency = LatencyHistogram::default();
        let mut went_idle = false;
        for worker in self.workers {
            let finished = worker
                .join()
                .map_err(|_| anyhow!("a consumer thread panicked"))??;
            end = end.max(finished.finished_at);
            latency.merge(&finished.latency);
            went_idle |= finished.reason == StopReason::Idle;
        }
        Ok(ConsumeResult {
            consumed: Consumed {
                throughput: Throughput::new(
                    self.counters.records.load(Ordering::Relaxed),
                    self.counters.bytes.load(Ordering::Relaxed),
                    end.saturating_sub(self.started),
                ),
            },
            end_to_end: latency,
            went_idle,
        })
    }
}

/// A consumer for direct assignment: no group membership, nothing committed.
fn connect(client: &ClientArgs, until_end: bool) -> anyhow::Result<BenchConsumer> {
    client
        .config(&[
            // librdkafka refuses assign() without a group.id, though this
            // consumer never joins the group or commits.
            ("group.id", "strom-bench"),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            (
                "enable.partition.eof",
                if until_end { "true" } else { "false" },
            ),
            // librdkafka stops prefetching once 100k records wait in its queue
            // and then backs off for a whole second (fetch.queue.backoff.ms),
            // which caps a fast reader at a fraction of what the broker
            // serves. Keep fetching; queued.max.messages.kbytes still bounds
            // the memory.
            ("queued.min.messages", "1000000"),
            ("fetch.queue.backoff.ms", "10"),
        ])
        .create_with_context(QuietEofContext)
        .context("creating the Kafka consumer")
}

/// Looks up where each partition ends now, so that `e2e` reads exactly the
/// records produced after it started.
pub fn end_offsets(
    client: &ClientArgs,
    topic: &str,
    partitions: &[i32],
) -> anyhow::Result<Vec<(i32, Offset)>> {
    let consumer = connect(client, false)?;
    partitions
        .iter()
        .map(|&partition| {
            let (_, high) = consumer
                .fetch_watermarks(topic, partition, REQUEST_TIMEOUT)
                .with_context(|| format!("reading the end offset of partition {partition}"))?;
            Ok((partition, Offset::Offset(high)))
        })
        .collect()
}

/// One consumer thread's work.
struct ReadJob {
    consumer: BenchConsumer,
    plan: ConsumePlan,
    partitions: Vec<i32>,
    clock: RunClock,
    started: Duration,
    counters: Arc<ConsumeCounters>,
    stop: Arc<AtomicBool>,
    halt: Arc<AtomicBool>,
}

impl ReadJob {
    fn run(self) -> anyhow::Result<WorkerEnd> {
        let plan = &self.plan;
        let mut latency = LatencyHistogram::default();
        let mut at_end: BTreeSet<i32> = BTreeSet::new();
        let mut last_record = self.clock.elapsed();
        let mut finished_at = None;
        let reason = loop {
            let now = self.clock.elapsed();
            let target = self.counters.target.load(Ordering::Relaxed);
            let done = self.stop.load(Ordering::Relaxed)
                || self.halt.load(Ordering::Relaxed)
                || self.counters.records.load(Ordering::Relaxed) >= target
                || plan
                    .duration
                    .is_some_and(|duration| now >= self.started + duration)
                || (plan.until_end && self.partitions.iter().all(|p| at_end.contains(p)));
            if done {
                break StopReason::Done;
            }
            if plan
                .idle_timeout
                .is_some_and(|idle| now.saturating_sub(last_record) >= idle)
            {
                break StopReason::Idle;
            }
            match self.consumer.poll(POLL_WAIT) {
                None => {}
                Some(Ok(message)) => {
                    let received = self.clock.unix_nanos_now();
                    // Claim the record against the target, so that several
                    // consumers together stop at exactly the count.
                    let claimed = self
                        .counters
                        .records
                        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |records| {
                            (records < target).then_some(records + 1)
                        })
                        .is_ok();
                    if !claimed {
                        continue;
                    }
                    at_end.remove(&message.partition());
                    let value = message.payload().unwrap_or_default();
                    let bytes = message.key_len() + value.len();
                    self.counters
                        .bytes
                        .fetch_add(bytes as u64, Ordering::Relaxed);
                    if plan.measure_end_to_end {
                        if let Some(stamp) = value.first_chunk::<8>() {
                            let due = u64::from_be_bytes(*stamp);
                            latency.record(Duration::from_nanos(received.saturating_sub(due)));
                        }
                    }
                    last_record = self.clock.elapsed();
                    finished_at = Some(last_record);
                }
                Some(Err(KafkaError::PartitionEOF(partition))) => {
                    at_end.insert(partition);
                }
                Some(Err(KafkaError::MessageConsumption(
                    code @ (RDKafkaErrorCode::UnknownTopicOrPartition
                    | RDKafkaErrorCode::TopicAuthorizationFailed),
                ))) => bail!("cannot consume {}: {code}", plan.topic),
                Some(Err(err)) => tracing::warn!("{err}"),
            }
        };
        Ok(WorkerEnd {
            finished_at: finished_at.unwrap_or_else(|| self.clock.elapsed()),
            latency,
            reason,
        })
    }
}
