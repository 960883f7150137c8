//! Producer threads: each runs one librdkafka producer, sends its share of
//! the run's records on schedule, and measures every acknowledgement.

use super::latency::LatencyHistogram;
use super::options::ProducerOptions;
use super::report::{Produced, Throughput};
use super::schedule::{duration_nanos, share, Pace, RunClock};
use crate::client::common::{ClientArgs, REQUEST_TIMEOUT};
use anyhow::{anyhow, Context as _};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::util::Timeout;
use rdkafka::ClientContext;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Delivery errors logged one by one before they are only counted.
const LOGGED_ERRORS: u64 = 5;
/// How long to back off when librdkafka's send queue is full.
const QUEUE_FULL_BACKOFF: Duration = Duration::from_micros(500);

/// When a run stops sending.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Limit {
    /// After this many records over all producers.
    Count(u64),
    /// Once this much time has passed since the first record was due; with a
    /// fixed pace, the records due within it.
    Duration(Duration),
}

/// What the producers do.
#[derive(Debug, Clone)]
pub struct ProducePlan {
    pub topic: String,
    pub options: ProducerOptions,
    pub pace: Pace,
    pub limit: Limit,
    /// Write each record's due time (nanoseconds since the UNIX epoch,
    /// big-endian) into the first 8 bytes of its value, for `e2e`.
    pub stamp_due_time: bool,
}

/// Running totals over all producers, read by the progress lines.
#[derive(Debug, Default)]
pub struct ProduceCounters {
    pub sent: AtomicU64,
    pub delivered: AtomicU64,
    pub delivered_bytes: AtomicU64,
    pub failed: AtomicU64,
    /// When the latest delivery report came, in nanoseconds after the clock's
    /// start: the end of the run for throughput. (Flushing returns up to
    /// 100 ms late, as rdkafka's flush polls in 100 ms steps.)
    pub last_report_nanos: AtomicU64,
}

/// Counts deliveries and records their latency. librdkafka calls it on the
/// producer's polling thread, so the histogram's lock is uncontended.
struct DeliveryRecorder {
    clock: RunClock,
    counters: Arc<ProduceCounters>,
    latency: Mutex<LatencyHistogram>,
}

impl ClientContext for DeliveryRecorder {}

impl ProducerContext for DeliveryRecorder {
    /// The record's due time in nanoseconds after the run's start. A plain
    /// integer, so sending allocates nothing per record.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, due_nanos: usize) {
        let now = self.clock.elapsed();
        self.counters
            .last_report_nanos
            .fetch_max(duration_nanos(now), Ordering::Relaxed);
        match result {
            Ok(message) => {
                let bytes = message.key_len() + message.payload_len();
                self.counters.delivered.fetch_add(1, Ordering::Relaxed);
                self.counters
                    .delivered_bytes
                    .fetch_add(bytes as u64, Ordering::Relaxed);
                let due = Duration::from_nanos(due_nanos as u64);
                self.latency
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .record(now.saturating_sub(due));
            }
            Err((err, _)) => {
                let failed = self.counters.failed.fetch_add(1, Ordering::Relaxed) + 1;
                if failed <= LOGGED_ERRORS {
                    tracing::error!("record not delivered: {err}");
                } else if failed == LOGGED_ERRORS + 1 {
                    tracing::error!("more records not delivered; only counting them from now on");
                }
            }
        }
    }
}

type BenchProducer = ThreadedProducer<DeliveryRecorder>;

/// The producer threads of a run.
pub struct ProducerFleet {
    workers: Vec<JoinHandle<anyhow::Result<()>>>,
    producers: Vec<Arc<BenchProducer>>,
    counters: Arc<ProduceCounters>,
    origin: Duration,
}

impl ProducerFleet {
    /// Connects the producers (fetching the topic's metadata, so connection
    /// set-up is not measured), then starts sending: the schedule's origin
    /// is when this returns.
    pub fn start(
        client: &ClientArgs,
        plan: &ProducePlan,
        clock: RunClock,
        stop: &Arc<AtomicBool>,
    ) -> anyhow::Result<ProducerFleet> {
        if plan.stamp_due_time && plan.options.record_size < 8 {
            anyhow::bail!("--record-size must be at least 8 to carry a timestamp");
        }
        let counters = Arc::new(ProduceCounters::default());
        let properties = plan.options.client_properties();
        let defaults: Vec<(&str, &str)> = properties
            .iter()
            .map(|(key, value)| (*key, value.as_str()))
            .collect();
        let mut producers = Vec::new();
        for _ in 0..plan.options.producers {
            let producer: BenchProducer = client
                .config(&defaults)
                .create_with_context(DeliveryRecorder {
                    clock,
                    counters: Arc::clone(&counters),
                    latency: Mutex::new(LatencyHistogram::default()),
                })
                .context("creating the Kafka producer")?;
            producer
                .client()
                .fetch_metadata(Some(&plan.topic), REQUEST_TIMEOUT)
                .context("fetching metadata")?;
            producers.push(Arc::new(producer));
        }

        let origin = clock.elapsed();
        let workers = producers
            .iter()
            .enumerate()
            .map(|(worker, producer)| {
                let job = SendJob {
                    producer: Arc::clone(producer),
                    plan: plan.clone(),
                    worker: worker as u64,
                    clock,
                    origin,
                    stop: Arc::clone(stop),
                    counters: Arc::clone(&counters),
                };
                std::thread::Builder::new()
                    .name(format!("bench-producer-{worker}"))
                    .spawn(move || job.run())
                    .context("starting a producer thread")
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(ProducerFleet {
            workers,
            producers,
            counters,
            origin,
        })
    }

    pub fn counters(&self) -> &ProduceCounters {
        &self.counters
    }

    /// True once every producer has sent its share and flushed.
    pub fn is_finished(&self) -> bool {
        self.workers.iter().all(JoinHandle::is_finished)
    }

    /// Waits for the producers and sums up; throughput counts from the
    /// schedule's origin to the last delivery report.
    pub fn finish(self) -> anyhow::Result<Produced> {
        let mut first_error = None;
        for worker in self.workers {
            match worker.join() {
                Ok(Ok(())) => {}
                Ok(Err(err)) => {
                    first_error.get_or_insert(err);
                }
                Err(_) => {
                    first_error.get_or_insert(anyhow!("a producer thread panicked"));
                }
            }
        }
        if let Some(err) = first_error {
            return Err(err);
        }
        let mut latency = LatencyHistogram::default();
        for producer in &self.producers {
            let recorded = producer
                .context()
                .latency
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            latency.merge(&recorded);
        }
        let counters = &self.counters;
        let end = Duration::from_nanos(counters.last_report_nanos.load(Ordering::Relaxed));
        Ok(Produced {
            throughput: Throughput::new(
                counters.delivered.load(Ordering::Relaxed),
                counters.delivered_bytes.load(Ordering::Relaxed),
                end.saturating_sub(self.origin),
            ),
            failed: counters.failed.load(Ordering::Relaxed),
            latency_ms: latency.summary(),
        })
    }
}

/// One producer thread's work.
struct SendJob {
    producer: Arc<BenchProducer>,
    plan: ProducePlan,
    worker: u64,
    clock: RunClock,
    origin: Duration,
    stop: Arc<AtomicBool>,
    counters: Arc<ProduceCounters>,
}

impl SendJob {
    /// Sends this worker's records, then waits for all delivery reports.
    fn run(self) -> anyhow::Result<()> {
        let plan = &self.plan;
        let mut value = payload(plan.options.record_size, self.worker);
        for index in share(self.worker, plan.options.producers) {
            if self.stop.load(Ordering::Relaxed) {
                break;
            }
            if let Limit::Count(count) = plan.limit {
                if index >= count {
                    break;
                }
            }
            let due = match plan.pace.due(index) {
                Some(offset) => {
                    if matches!(plan.limit, Limit::Duration(window) if offset >= window) {
                        break;
                    }
                    let due = self.origin + offset;
                    self.clock.sleep_until(due);
                    due
                }
                None => {
                    let now = self.clock.elapsed();
                    if matches!(plan.limit, Limit::Duration(window) if now - self.origin >= window)
                    {
                        break;
                    }
                    now
                }
            };
            if plan.stamp_due_time {
                value[..8].copy_from_slice(&self.clock.unix_nanos_at(due).to_be_bytes());
            }
            // Nanoseconds fit a 64-bit usize for 584 years.
            let opaque = duration_nanos(due) as usize;
            self.send(BaseRecord::with_opaque_to(&plan.topic, opaque).payload(&value[..]));
        }
        // Every queued record is acknowledged or fails by message.timeout.ms,
        // so this ends; Ctrl-C twice exits the process without waiting.
        self.producer
            .flush(Timeout::Never)
            .context("flushing the producer")
    }

    /// Queues a record, waiting while librdkafka's queue is full. A record it
    /// refuses outright counts as failed.
    fn send(&self, mut record: BaseRecord<'_, (), [u8], usize>) {
        loop {
            match self.producer.send(record) {
                Ok(()) => {
                    self.counters.sent.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    std::thread::sleep(QUEUE_FULL_BACKOFF);
                }
                Err((err, _)) => {
                    self.counters.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::error!("cannot queue a record: {err}");
                    return;
                }
            }
        }
    }
}

/// A record value of `size` bytes: pseudo-random upper-case letters, as
/// Kafka's perf tool sends, so compression sees realistic-ish text rather
/// than all zeros. Each producer gets a different one.
fn payload(size: usize, seed: u64) -> Vec<u8> {
    // xorshift64*: plenty for filler bytes.
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..size)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let random = state.wrapping_mul(0x2545_F491_4F6C_DD1D);
            b'A' + (random >> 59) as u8 % 26
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_letters_of_the_asked_size() {
        let value = payload(1000, 0);
        assert_eq!(value.len(), 1000);
        assert!(value.iter().all(u8::is_ascii_uppercase));
        // Not constant, so compression has something to do.
        assert!(value.iter().any(|&b| b != value[0]));
        assert_ne!(payload(64, 1), payload(64, 2));
        assert!(payload(0, 0).is_empty());
    }
}
