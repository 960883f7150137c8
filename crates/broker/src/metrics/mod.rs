//! The broker's Prometheus metrics, served by [`crate::admin_http`] at
//! `GET /metrics` (OpenMetrics text, encoded by `prometheus-client`).
//!
//! Counters and histograms are updated where things happen (one call per
//! request, connection, produced or fetched partition). What the broker
//! already knows — partition offsets and sizes, fsync counts, consumer
//! groups, process statistics — is read at scrape time by
//! [`Metrics::refresh`], so the hot paths pay nothing for it.
//!
//! Labels are bounded: API key and version (only supported ones), Kafka
//! error names, close reasons, topics and partitions, group ids and states.
//! No client ids, no peer addresses. Every metric is documented in
//! `docs/operations.md`.

use crate::connection::ConnectionError;
use crate::rate_limit::RateLimiter;
use crate::server::BrokerContext;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::ApiKey;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

mod process;
mod response_errors;
mod series;

pub use process::ProcessStats;
pub use response_errors::for_each_error_code;

/// A Kafka API key as a label value (`Produce`, `Fetch`, ...).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct ApiName(pub ApiKey);

impl EncodeLabelValue for ApiName {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        write!(encoder, "{:?}", self.0)
    }
}

/// A Kafka error code as a label value, by Kafka's name for it
/// (`UnknownTopicOrPartition`); codes Strom does not know stay numeric.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct ErrorName(pub i16);

impl EncodeLabelValue for ErrorName {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        match ResponseError::try_from_code(self.0) {
            Some(error) => write!(encoder, "{error:?}"),
            None => write!(encoder, "{}", self.0),
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    api: ApiName,
    version: i16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiLabels {
    api: ApiName,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    api: ApiName,
    error: ErrorName,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TopicLabels {
    topic: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartitionLabels {
    topic: String,
    partition: i32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupLabels {
    group: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupPartitionLabels {
    group: String,
    topic: String,
    partition: i32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    version: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn request_histogram() -> Histogram {
    // 100 µs .. ~105 s: covers a cached Metadata answer and a long-polling Fetch.
    Histogram::new(exponential_buckets(0.0001, 4.0, 11))
}

fn stage_histogram() -> Histogram {
    // 10 µs .. ~2.6 s: waits that are normally short (queueing, socket writes).
    Histogram::new(exponential_buckets(0.00001, 4.0, 10))
}

/// When one request passed each stage on its connection, for the latency
/// histograms (Kafka's RequestQueueTimeMs, LocalTimeMs, ResponseSendTimeMs
/// and TotalTimeMs).
#[derive(Clone, Copy, Debug)]
pub struct RequestTimes {
    /// The request's queue time starts: the frame read from the socket,
    /// moved back by the time it waited for request memory
    /// (`queued.max.request.bytes`) before its body was read.
    pub received: Instant,
    /// The handler starts.
    pub dispatched: Instant,
    /// The handler has built and encoded the response.
    pub processed: Instant,
    /// The response has been written to the socket; `None` when no
    /// response was sent (acks=0, or the connection is being closed).
    pub sent: Option<Instant>,
}

/// Bad-input log lines per second, all peers together; the rest are counted
/// and reported with the next line that gets through.
const BAD_INPUT_LOG_LINES_PER_SECOND: u32 = 10;

/// Every metric of one broker (each broker in a process has its own).
pub struct Metrics {
    registry: Registry,
    started: Instant,
    start_time: SystemTime,
    ready: AtomicBool,
    bad_input_log: RateLimiter,

    api_slots: series::ApiSlots,
    topic_slots: series::TopicSlots,
    requests: Family<RequestLabels, Counter>,
    request_seconds: HistogramFamily<ApiLabels>,
    request_queue_seconds: HistogramFamily<ApiLabels>,
    request_processing_seconds: HistogramFamily<ApiLabels>,
    response_send_seconds: HistogramFamily<ApiLabels>,
    errors: Family<ErrorLabels, Counter>,
    connections_open: Gauge,
    connections_accepted: Counter,
    connections_refused: Counter,
    connection_errors: Family<ReasonLabels, Counter>,
    produce_bytes: Family<TopicLabels, Counter>,
    produce_records: Family<TopicLabels, Counter>,
    fetch_bytes: Family<TopicLabels, Counter>,
    fetch_records: Family<TopicLabels, Counter>,

    // Read at scrape time.
    log_start_offset: Family<PartitionLabels, Gauge>,
    log_end_offset: Family<PartitionLabels, Gauge>,
    log_size: Family<PartitionLabels, Gauge>,
    log_segments: Family<PartitionLabels, Gauge>,
    log_fsyncs: Family<PartitionLabels, Counter>,
    groups: Family<StateLabels, Gauge>,
    group_members: Family<GroupLabels, Gauge>,
    group_lag: Family<GroupPartitionLabels, Gauge>,
    log_last_stable_offset: Family<PartitionLabels, Gauge>,
    fsync_seconds: Histogram,
    transactions: Family<StateLabels, Gauge>,
    oldest_open_transaction: Gauge<f64, std::sync::atomic::AtomicU64>,
    topics: Gauge,
    partitions: Gauge,
    ready_gauge: Gauge,
    uptime: Gauge<f64, std::sync::atomic::AtomicU64>,
    process_rss: Gauge,
    process_cpu: Counter<f64, std::sync::atomic::AtomicU64>,
    process_open_fds: Gauge,
    process_max_fds: Gauge,
    process_start_time: Gauge,
    log_dir_free: Gauge,
    log_dir_size: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut m = Metrics {
            registry: Registry::with_prefix("strom"),
            started: Instant::now(),
            start_time: SystemTime::now(),
            ready: AtomicBool::new(false),
            bad_input_log: RateLimiter::new(BAD_INPUT_LOG_LINES_PER_SECOND, Duration::from_secs(1)),
            api_slots: series::ApiSlots::new(),
            topic_slots: series::TopicSlots::default(),
            requests: Family::default(),
            request_seconds: Family::new_with_constructor(request_histogram),
            request_queue_seconds: Family::new_with_constructor(stage_histogram),
            request_processing_seconds: Family::new_with_constructor(request_histogram),
            response_send_seconds: Family::new_with_constructor(stage_histogram),
            errors: Family::default(),
            connections_open: Gauge::default(),
            connections_accepted: Counter::default(),
            connections_refused: Counter::default(),
            connection_errors: Family::default(),
            produce_bytes: Family::default(),
            produce_records: Family::default(),
            fetch_bytes: Family::default(),
            fetch_records: Family::default(),
            log_start_offset: Family::default(),
            log_end_offset: Family::default(),
            log_size: Family::default(),
            log_segments: Family::default(),
            log_fsyncs: Family::default(),
            groups: Family::default(),
            group_members: Family::default(),
            group_lag: Family::default(),
            log_last_stable_offset: Family::default(),
            fsync_seconds: Histogram::new(exponential_buckets(0.00005, 4.0, 10)),
            transactions: Family::default(),
            oldest_open_transaction: Gauge::default(),
            topics: Gauge::default(),
            partitions: Gauge::default(),
            ready_gauge: Gauge::default(),
            uptime: Gauge::default(),
            process_rss: Gauge::default(),
            process_cpu: Counter::default(),
            process_open_fds: Gauge::default(),
            process_max_fds: Gauge::default(),
            process_start_time: Gauge::default(),
            log_dir_free: Gauge::default(),
            log_dir_size: Gauge::default(),
        };
        m.register_all();
        m
    }

    fn register_all(&mut self) {
        let r = &mut self.registry;
        let info: Family<VersionLabels, Gauge> = Family::default();
        info.get_or_create(&VersionLabels {
            version: env!("CARGO_PKG_VERSION"),
        })
        .set(1);
        r.register("build_info", "Strom's version, as a label; always 1", info);
        r.register(
            "ready",
            "1 once log recovery has finished and the Kafka listener is open",
            self.ready_gauge.clone(),
        );
        r.register_with_unit(
            "uptime",
            "Time since the broker started",
            Unit::Seconds,
            self.uptime.clone(),
        );
        r.register(
            "requests",
            "Requests received, by API key and version",
            self.requests.clone(),
        );
        r.register_with_unit(
            "request_duration",
            "Time from the whole request frame read to the response written to the socket, by API (a Fetch includes its long-poll wait)",
            Unit::Seconds,
            self.request_seconds.clone(),
        );
        r.register_with_unit(
            "request_queue_duration",
            "Time a request waited between being read and its handler starting, by API",
            Unit::Seconds,
            self.request_queue_seconds.clone(),
        );
        r.register_with_unit(
            "request_processing_duration",
            "Time the handler took from the start to the encoded response, by API (a Fetch includes its long-poll wait; an acks=all Produce its fsync)",
            Unit::Seconds,
            self.request_processing_seconds.clone(),
        );
        r.register_with_unit(
            "response_send_duration",
            "Time to write a response to the socket, by API",
            Unit::Seconds,
            self.response_send_seconds.clone(),
        );
        r.register(
            "errors",
            "Error codes returned, by API and Kafka error name (per partition where the API answers per partition)",
            self.errors.clone(),
        );
        r.register(
            "connections_open",
            "Client connections open now",
            self.connections_open.clone(),
        );
        r.register(
            "connections_accepted",
            "Client connections accepted",
            self.connections_accepted.clone(),
        );
        r.register(
            "connections_refused",
            "Client connections refused because max.connections were open",
            self.connections_refused.clone(),
        );
        r.register(
            "connection_errors",
            "Connections closed by the broker because of an error, by reason",
            self.connection_errors.clone(),
        );
        r.register_with_unit(
            "produce",
            "Record batch bytes appended by Produce, by topic",
            Unit::Bytes,
            self.produce_bytes.clone(),
        );
        r.register(
            "produce_records",
            "Records appended by Produce, by topic (re-sent duplicates not counted)",
            self.produce_records.clone(),
        );
        r.register_with_unit(
            "fetch",
            "Record batch bytes returned by Fetch, by topic",
            Unit::Bytes,
            self.fetch_bytes.clone(),
        );
        r.register(
            "fetch_records",
            "Offsets Fetch advanced consumers by, by topic: records, plus control records and offsets removed by compaction",
            self.fetch_records.clone(),
        );
        r.register(
            "topics",
            "Topics, internal ones included",
            self.topics.clone(),
        );
        r.register(
            "partitions",
            "Partitions of all topics",
            self.partitions.clone(),
        );
        r.register(
            "log_start_offset",
            "First offset still in the partition's log",
            self.log_start_offset.clone(),
        );
        r.register(
            "log_end_offset",
            "Offset the next appended record gets (= high watermark on one node)",
            self.log_end_offset.clone(),
        );
        r.register_with_unit(
            "log_size",
            "Bytes in the partition's segment files",
            Unit::Bytes,
            self.log_size.clone(),
        );
        r.register(
            "log_segments",
            "Segments of the partition's log",
            self.log_segments.clone(),
        );
        r.register(
            "log_fsyncs",
            "fsyncs of the partition's segment files since the broker started",
            self.log_fsyncs.clone(),
        );
        r.register("groups", "Consumer groups, by state", self.groups.clone());
        r.register(
            "group_members",
            "Members of each consumer group",
            self.group_members.clone(),
        );
        r.register(
            "group_lag",
            "Log end offset minus the group's committed offset, by group and partition",
            self.group_lag.clone(),
        );
        r.register(
            "log_last_stable_offset",
            "The partition's last stable offset: read_committed consumers read up to here",
            self.log_last_stable_offset.clone(),
        );
        r.register(
            "transactions",
            "Transactional ids, by transaction state",
            self.transactions.clone(),
        );
        r.register_with_unit(
            "log_fsync_duration",
            "Duration of each fdatasync of a segment file (all partitions)",
            Unit::Seconds,
            self.fsync_seconds.clone(),
        );
        r.register_with_unit(
            "oldest_open_transaction_age",
            "Age of the oldest ongoing transaction (0 when none is open)",
            Unit::Seconds,
            self.oldest_open_transaction.clone(),
        );
        r.register_with_unit(
            "process_resident_memory",
            "Resident set size of the broker process",
            Unit::Bytes,
            self.process_rss.clone(),
        );
        r.register_with_unit(
            "process_cpu",
            "User and system CPU time of the broker process",
            Unit::Seconds,
            self.process_cpu.clone(),
        );
        r.register(
            "process_open_fds",
            "File descriptors open in the broker process",
            self.process_open_fds.clone(),
        );
        r.register(
            "process_max_fds",
            "The process's limit on open file descriptors",
            self.process_max_fds.clone(),
        );
        r.register_with_unit(
            "log_dir_free",
            "Space available to the broker on the data dir's filesystem",
            Unit::Bytes,
            self.log_dir_free.clone(),
        );
        r.register_with_unit(
            "log_dir_size",
            "Size of the data dir's filesystem",
            Unit::Bytes,
            self.log_dir_size.clone(),
        );
        r.register_with_unit(
            "process_start_time",
            "When the broker started, in seconds since the Unix epoch",
            Unit::Seconds,
            self.process_start_time.clone(),
        );
    }

    /// Called once log recovery has finished and the Kafka listener is open.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
        self.ready_gauge.set(ready as i64);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// One request answered (or failed): counts it by API and version and
    /// records how long each stage took. Requests whose key or version
    /// Strom does not support are not counted here (they close the
    /// connection and are counted under
    /// [`connection_error`](Self::connection_error)), which keeps the
    /// version label bounded.
    pub fn request_done(&self, header: Option<(i16, i16, i32)>, times: RequestTimes) {
        let Some((raw_key, version, _)) = header else {
            return;
        };
        let Some(api) = self.api_slots.get(raw_key, || self.api_series(raw_key)) else {
            return;
        };
        let Some(requests) = api.version_counter(version, || {
            self.requests
                .get_or_create(&RequestLabels {
                    api: ApiName(api.key),
                    version,
                })
                .clone()
        }) else {
            return;
        };
        requests.inc();
        let seconds = |from: Instant, to: Instant| to.saturating_duration_since(from).as_secs_f64();
        api.queue.observe(seconds(times.received, times.dispatched));
        api.processing
            .observe(seconds(times.dispatched, times.processed));
        if let Some(sent) = times.sent {
            api.send.observe(seconds(times.processed, sent));
        }
        api.total.observe(seconds(
            times.received,
            times.sent.unwrap_or(times.processed),
        ));
    }

    /// The series of one API Strom serves (`None` for any other key).
    fn api_series(&self, raw_key: i16) -> Option<series::ApiSeries> {
        let key = ApiKey::try_from(raw_key).ok()?;
        let (min, max) = crate::handlers::supported_range(key)?;
        let labels = ApiLabels { api: ApiName(key) };
        Some(series::ApiSeries {
            key,
            total: self.request_seconds.get_or_create(&labels).clone(),
            queue: self.request_queue_seconds.get_or_create(&labels).clone(),
            processing: self
                .request_processing_seconds
                .get_or_create(&labels)
                .clone(),
            send: self.response_send_seconds.get_or_create(&labels).clone(),
            min_version: min,
            versions: (min..=max).map(|_| std::sync::OnceLock::new()).collect(),
        })
    }

    fn with_topic_series(&self, topic: &str, update: impl FnOnce(&series::TopicSeries)) {
        let make = || {
            let labels = TopicLabels {
                topic: topic.to_string(),
            };
            series::TopicSeries {
                produce_bytes: self.produce_bytes.get_or_create(&labels).clone(),
                produce_records: self.produce_records.get_or_create(&labels).clone(),
                fetch_bytes: self.fetch_bytes.get_or_create(&labels).clone(),
                fetch_records: self.fetch_records.get_or_create(&labels).clone(),
            }
        };
        self.topic_slots.with(topic, make, update)
    }

    /// Counts every error code in a response about to be sent for `api`.
    pub fn response_errors(&self, api: ApiKey, response: &kafka_protocol::messages::ResponseKind) {
        for_each_error_code(response, |code| self.error(api, code));
    }

    /// An error code sent back for `api`. Zero (no error) is ignored.
    pub fn error(&self, api: ApiKey, code: i16) {
        if code != 0 {
            self.errors
                .get_or_create(&ErrorLabels {
                    api: ApiName(api),
                    error: ErrorName(code),
                })
                .inc();
        }
    }

    /// A connection was accepted; the guard counts it as open until dropped.
    pub fn connection_opened(self: &Arc<Self>) -> OpenConnection {
        self.connections_accepted.inc();
        self.connections_open.inc();
        OpenConnection(self.clone())
    }

    pub fn connection_refused(&self) {
        self.connections_refused.inc();
    }

    /// The broker closes a connection because of `error`: counted by reason
    /// and logged with the peer and API, at most
    /// [`BAD_INPUT_LOG_LINES_PER_SECOND`] lines a second, so a flood of bad
    /// frames cannot fill the disk. I/O errors (the peer went away) are
    /// counted and logged at debug level only.
    pub fn connection_error(&self, peer: SocketAddr, api: Option<i16>, error: &ConnectionError) {
        let reason = close_reason(error);
        self.connection_errors
            .get_or_create(&ReasonLabels { reason })
            .inc();
        let api = api.map(|raw| match ApiKey::try_from(raw) {
            Ok(key) => format!("{key:?}"),
            Err(_) => format!("unknown key {raw}"),
        });
        let api = api.as_deref().unwrap_or("-");
        if matches!(error, ConnectionError::Io(_)) {
            tracing::debug!(%peer, api, %error, "connection error");
            return;
        }
        let Some(suppressed) = self.bad_input_log.admit(Instant::now()) else {
            return;
        };
        if matches!(error, ConnectionError::Encode(_)) {
            tracing::error!(%peer, api, reason, %error, suppressed, "closing connection");
        } else {
            tracing::warn!(%peer, api, reason, %error, suppressed, "closing connection");
        }
    }

    /// One partition of a Produce appended (`records` = 0 for a duplicate).
    pub fn produced(&self, topic: &str, bytes: usize, records: i64) {
        self.with_topic_series(topic, |series| {
            series.produce_bytes.inc_by(bytes as u64);
            series.produce_records.inc_by(records.max(0) as u64);
        });
    }

    /// Counts what a Fetch response returns for one topic: bytes of
    /// batches and the offsets they span (records, plus control records
    /// and offsets compaction removed; counted without reading the batches).
    pub fn fetched(&self, topic: &str, bytes: u64, offsets: u64) {
        self.with_topic_series(topic, |series| {
            series.fetch_bytes.inc_by(bytes);
            series.fetch_records.inc_by(offsets);
        });
    }

    /// Reads partition, group and process state into the scrape-time
    /// metrics. Touches only in-memory state (and /proc), no log files.
    pub fn refresh(&self, context: Option<&BrokerContext>) {
        self.uptime.set(self.started.elapsed().as_secs_f64());
        if let Ok(since_epoch) = self.start_time.duration_since(SystemTime::UNIX_EPOCH) {
            self.process_start_time.set(since_epoch.as_secs() as i64);
        }
        let process = ProcessStats::read();
        self.process_rss.set(process.rss_bytes as i64);
        self.process_cpu.inner().store(
            process.cpu_seconds.to_bits(),
            std::sync::atomic::Ordering::Relaxed,
        );
        self.process_open_fds.set(process.open_fds as i64);
        self.process_max_fds.set(process.max_fds as i64);
        let Some(context) = context else { return };
        if let Ok(fs) = rustix::fs::statvfs(&context.config.data_dir) {
            let block = fs.f_frsize.max(1);
            self.log_dir_free
                .set(fs.f_bavail.saturating_mul(block).min(i64::MAX as u64) as i64);
            self.log_dir_size
                .set(fs.f_blocks.saturating_mul(block).min(i64::MAX as u64) as i64);
        }

        self.log_start_offset.clear();
        self.log_end_offset.clear();
        self.log_size.clear();
        self.log_segments.clear();
        self.log_fsyncs.clear();
        self.log_last_stable_offset.clear();
        let topics = context.topics.list();
        let mut partitions = 0;
        let mut end_offsets = std::collections::HashMap::new();
        for topic in &topics {
            for partition in &topic.partitions {
                partitions += 1;
                let Ok(log) = partition.log() else { continue };
                let labels = PartitionLabels {
                    topic: topic.name.clone(),
                    partition: partition.index,
                };
                let end = log.log_end_offset();
                self.log_start_offset
                    .get_or_create(&labels)
                    .set(log.log_start_offset());
                self.log_end_offset.get_or_create(&labels).set(end);
                self.log_last_stable_offset
                    .get_or_create(&labels)
                    .set(log.last_stable_offset());
                self.log_size
                    .get_or_create(&labels)
                    .set(log.size_bytes() as i64);
                self.log_segments
                    .get_or_create(&labels)
                    .set(log.segment_count() as i64);
                self.log_fsyncs
                    .get_or_create(&labels)
                    .inner()
                    .store(log.fsync_count(), Ordering::Relaxed);
                end_offsets.insert((topic.name.clone(), partition.index), end);
            }
        }
        self.topics.set(topics.len() as i64);
        self.partitions.set(partitions);

        self.transactions.clear();
        let now_ms = crate::metadata::now_ms();
        let oldest = context.txns.read(|coordinator| {
            let mut oldest: Option<i64> = None;
            for txn in coordinator.transactions() {
                self.transactions
                    .get_or_create(&StateLabels {
                        state: txn.state.name(),
                    })
                    .inc();
                if txn.state == strom_coordinator::txn::TxnState::Ongoing
                    && txn.start_timestamp >= 0
                {
                    oldest =
                        Some(oldest.map_or(txn.start_timestamp, |o| o.min(txn.start_timestamp)));
                }
            }
            oldest
        });
        self.oldest_open_transaction
            .set(oldest.map_or(0.0, |start| (now_ms - start).max(0) as f64 / 1000.0));

        self.groups.clear();
        self.group_members.clear();
        self.group_lag.clear();
        context.groups.read(|coordinator| {
            for id in coordinator.group_ids() {
                let Some(group) = coordinator.group(&id) else {
                    continue;
                };
                self.groups
                    .get_or_create(&StateLabels {
                        state: group.state_name(),
                    })
                    .inc();
                let members =
                    group.members.len() + group.consumer.as_ref().map_or(0, |c| c.members.len());
                self.group_members
                    .get_or_create(&GroupLabels { group: id.clone() })
                    .set(members as i64);
                for ((topic, partition), committed) in &group.offsets {
                    let Some(end) = end_offsets.get(&(topic.clone(), *partition)) else {
                        continue;
                    };
                    self.group_lag
                        .get_or_create(&GroupPartitionLabels {
                            group: id.clone(),
                            topic: topic.clone(),
                            partition: *partition,
                        })
                        .set((end - committed.offset).max(0));
                }
            }
        });
    }

    /// A hook for the logs: every segment fdatasync lands in the histogram.
    pub fn fsync_observer(&self) -> strom_log::FsyncObserver {
        let histogram = self.fsync_seconds.clone();
        std::sync::Arc::new(move |elapsed: Duration| histogram.observe(elapsed.as_secs_f64()))
    }

    pub fn connections_open(&self) -> i64 {
        self.connections_open.get()
    }

    /// Produce and Fetch totals of one topic since the broker started.
    pub fn topic_totals(&self, topic: &str) -> TopicTotals {
        let labels = TopicLabels {
            topic: topic.to_string(),
        };
        let read =
            |family: &Family<TopicLabels, Counter>| family.get(&labels).map_or(0, |c| c.get());
        TopicTotals {
            produce_bytes: read(&self.produce_bytes),
            produce_records: read(&self.produce_records),
            fetch_bytes: read(&self.fetch_bytes),
            fetch_records: read(&self.fetch_records),
        }
    }

    /// The OpenMetrics text of every metric (call [`refresh`](Self::refresh) first).
    pub fn encode(&self) -> String {
        let mut text = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        text
    }
}

/// See [`Metrics::topic_totals`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TopicTotals {
    pub produce_bytes: u64,
    pub produce_records: u64,
    pub fetch_bytes: u64,
    pub fetch_records: u64,
}

/// Keeps a connection counted in `strom_connections_open` while it lives.
pub struct OpenConnection(Arc<Metrics>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.connections_open.dec();
    }
}

/// The `reason` label of `strom_connection_errors_total`.
pub fn close_reason(error: &ConnectionError) -> &'static str {
    match error {
        ConnectionError::FrameTooLarge { .. } => "frame_too_large",
        ConnectionError::NegativeFrameSize(_) => "negative_frame_size",
        ConnectionError::Idle(_) => "idle",
        ConnectionError::Malformed(_) => "malformed",
        ConnectionError::UnknownApiKey(_) => "unknown_api_key",
        ConnectionError::UnsupportedVersion { .. } => "unsupported_version",
        ConnectionError::Encode(_) => "encode",
        ConnectionError::Io(_) => "io",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_units_and_labels() {
        let metrics = Metrics::new();
        let now = Instant::now();
        let times = RequestTimes {
            received: now,
            dispatched: now + Duration::from_micros(50),
            processed: now + Duration::from_millis(3),
            sent: Some(now + Duration::from_millis(4)),
        };
        metrics.request_done(Some((ApiKey::Produce as i16, 9, 1)), times);
        metrics.request_done(Some((ApiKey::Produce as i16, 99, 1)), times);
        metrics.request_done(Some((-5, 0, 1)), times);
        let no_response = RequestTimes {
            sent: None,
            ..times
        };
        metrics.request_done(Some((ApiKey::Produce as i16, 3, 2)), no_response);
        metrics.error(ApiKey::Fetch, ResponseError::OffsetOutOfRange.code());
        metrics.error(ApiKey::Fetch, 0);
        metrics.produced("orders", 100, 3);
        metrics.set_ready(true);
        metrics.refresh(None);
        let text = metrics.encode();
        assert!(
            text.contains("strom_requests_total{api=\"Produce\",version=\"9\"} 1"),
            "{text}"
        );
        assert!(
            !text.contains("version=\"99\""),
            "unsupported versions are not labels"
        );
        assert!(text.contains("strom_request_duration_seconds_count{api=\"Produce\"} 2"));
        assert!(text.contains("strom_request_queue_duration_seconds_count{api=\"Produce\"} 2"));
        assert!(text.contains("strom_request_processing_duration_seconds_count{api=\"Produce\"} 2"));
        // The acks=0 request sent nothing: one send sample only.
        assert!(text.contains("strom_response_send_duration_seconds_count{api=\"Produce\"} 1"));
        // 4 ms + 3 ms (to `processed` when nothing was sent).
        let total = text
            .lines()
            .find_map(|l| l.strip_prefix("strom_request_duration_seconds_sum{api=\"Produce\"} "))
            .and_then(|v| v.parse::<f64>().ok())
            .expect("total duration sum");
        assert!((total - 0.007).abs() < 1e-9, "{total}");
        assert!(text.contains("strom_errors_total{api=\"Fetch\",error=\"OffsetOutOfRange\"} 1"));
        assert!(text.contains("strom_produce_bytes_total{topic=\"orders\"} 100"));
        assert!(text.contains("strom_produce_records_total{topic=\"orders\"} 3"));
        assert!(text.contains("strom_ready 1"));
        assert!(text.contains("# HELP strom_requests Requests received"));
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn open_connections_gauge_follows_guards() {
        let metrics = Arc::new(Metrics::new());
        let a = metrics.connection_opened();
        let b = metrics.connection_opened();
        drop(a);
        let text = metrics.encode();
        assert!(text.contains("strom_connections_open 1"), "{text}");
        assert!(text.contains("strom_connections_accepted_total 2"));
        drop(b);
        assert!(metrics.encode().contains("strom_connections_open 0"));
    }
}
