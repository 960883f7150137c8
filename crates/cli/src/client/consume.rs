//! `strom consume`: print records of a topic, as text or one JSON object per line.

use super::common::{base64_encode, ClientArgs, REQUEST_TIMEOUT};
use super::start::StartFrom;
use anyhow::{bail, Context as _};
use clap::Args;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Headers, Timestamp};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};
use std::io::{BufWriter, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const POLL_WAIT: Duration = Duration::from_millis(100);

/// Consume records and print them, as text or JSON lines.
///
/// Text output writes each record's value as raw bytes followed by a newline.
/// JSON output (--json) writes one object per line:
/// {"topic","partition","offset","key","value","headers","timestamp","timestamp_type"}.
/// key and value are strings when they are valid UTF-8, {"base64": "..."} when
/// they are not, and null when absent; headers is an object (for a repeated
/// header key the last value wins); timestamp is milliseconds since the epoch
/// and timestamp_type is "create_time", "log_append_time" or null.
///
/// Without --group, all partitions (or --partition) are assigned directly: no
/// consumer group, nothing committed. With --group the consumer joins the
/// group, resumes from its committed offsets (earliest where there are none)
/// and commits what it has printed.
///
/// Without --count, --timeout-ms or --exit-at-end it runs until Ctrl-C.
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct ConsumeArgs {
    /// Topic to read.
    pub topic: String,
    #[command(flatten)]
    pub client: ClientArgs,
    /// Where to start in every partition read:
    ///   beginning | earliest  the oldest retained record
    ///   end | latest          only records produced from now on
    ///   OFFSET                this offset, e.g. 42
    ///   -N                    the last N records, e.g. -10
    ///   @MILLIS               first record with timestamp >= MILLIS since the epoch
    ///   RFC3339               same, as a UTC-offset time, e.g. 2024-01-01T00:00:00Z
    /// Default: beginning; with --group, the group's committed offsets. With
    /// --group an explicit --from overrides them the first time each partition
    /// is assigned.
    #[arg(
        long,
        value_name = "POSITION",
        allow_hyphen_values = true,
        verbatim_doc_comment
    )]
    pub from: Option<StartFrom>,
    /// Read only this partition.
    #[arg(long, conflicts_with = "group")]
    pub partition: Option<i32>,
    /// Stop after this many records.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Stop when no record has arrived for this long.
    #[arg(long, value_name = "MS")]
    pub timeout_ms: Option<u64>,
    /// Stop once every partition read has been consumed up to its end.
    #[arg(long)]
    pub exit_at_end: bool,
    /// Consume as a member of this consumer group and commit offsets.
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,
    /// One JSON object per line instead of raw values.
    #[arg(long)]
    pub json: bool,
    /// Text output: print the key, then --key-separator, before the value.
    #[arg(long)]
    pub print_key: bool,
    /// Text output: what separates key and value with --print-key.
    #[arg(long, value_name = "SEP", default_value = "\t")]
    pub key_separator: String,
}

/// Starting offsets to apply when the group assigns a partition for the first
/// time in this run (only with --group and an explicit --from).
struct StartContext {
    pending: Mutex<HashMap<i32, Offset>>,
}

impl ClientContext for StartContext {
    fn error(&self, error: KafkaError, reason: &str) {
        // End of partition is how --exit-at-end learns it is done; poll()
        // reports it too, so it is no error worth showing.
        if !matches!(
            error,
            KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF)
        ) {
            tracing::error!("librdkafka: {error}: {reason}");
        }
    }
}

impl ConsumerContext for StartContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        partitions: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let result = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let assigned: Vec<(String, i32)> = partitions
                    .elements()
                    .iter()
                    .map(|e| (e.topic().to_string(), e.partition()))
                    .collect();
                let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                for (topic, partition) in assigned {
                    if let Some(offset) = pending.remove(&partition) {
                        if let Err(err) = partitions.set_partition_offset(&topic, partition, offset)
                        {
                            tracing::warn!(
                                "cannot start partition {partition} at {offset:?}: {err}"
                            );
                        }
                    }
                }
                if cooperative {
                    consumer.incremental_assign(partitions)
                } else {
                    consumer.assign(partitions)
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                if cooperative {
                    consumer.incremental_unassign(partitions)
                } else {
                    consumer.unassign()
                }
            }
            other => {
                tracing::error!("rebalance failed: {}", RDKafkaErrorCode::from(other));
                consumer.unassign()
            }
        };
        if let Err(err) = result {
            tracing::error!("applying the group's assignment failed: {err}");
        }
    }
}

type StromConsumer = BaseConsumer<StartContext>;

pub async fn run(args: ConsumeArgs) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let on_signal = Arc::clone(&stop);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_signal.store(true, Ordering::Relaxed);
        }
        if tokio::signal::ctrl_c().await.is_ok() {
            std::process::exit(130);
        }
    });
    tokio::task::spawn_blocking(move || consume(&args, &stop))
        .await
        .context("the consumer thread panicked")?
}

fn consume(args: &ConsumeArgs, stop: &AtomicBool) -> anyhow::Result<()> {
    let mut defaults = vec![
        ("enable.auto.offset.store", "false"),
        (
            "enable.partition.eof",
            if args.exit_at_end { "true" } else { "false" },
        ),
    ];
    match &args.group {
        Some(group) => defaults.extend([
            ("group.id", group.as_str()),
            ("enable.auto.commit", "true"),
            ("auto.offset.reset", "earliest"),
        ]),
        // librdkafka refuses assign() without a group.id, though nothing joins
        // or commits here.
        None => defaults.extend([
            ("group.id", "strom-consume-no-group"),
            ("enable.auto.commit", "false"),
        ]),
    }
    let context = StartContext {
        pending: Mutex::new(HashMap::new()),
    };
    let consumer: StromConsumer = args
        .client
        .config(&defaults)
        .create_with_context(context)
        .context("creating the Kafka consumer")?;

    let partitions = topic_partitions(&consumer, &args.topic)?;
    if let Some(partition) = args.partition {
        if !partitions.contains(&partition) {
            bail!(
                "topic {} has no partition {partition} (it has {})",
                args.topic,
                partitions.len()
            );
        }
    }
    let selected: Vec<i32> = match args.partition {
        Some(partition) => vec![partition],
        None => partitions,
    };

    match &args.group {
        Some(_) => {
            if let Some(from) = args.from {
                let starts = start_offsets(&consumer, &args.topic, &selected, from)?;
                *consumer
                    .context()
                    .pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = starts;
            }
            consumer
                .subscribe(&[&args.topic])
                .context("subscribing to the topic")?;
        }
        None => {
            let from = args.from.unwrap_or(StartFrom::Beginning);
            let starts = start_offsets(&consumer, &args.topic, &selected, from)?;
            let mut assignment = TopicPartitionList::new();
            for partition in &selected {
                assignment.add_partition_offset(&args.topic, *partition, starts[partition])?;
            }
            consumer
                .assign(&assignment)
                .context("assigning partitions")?;
        }
    }

    let consumed = poll_loop(args, &consumer, &selected, stop)?;

    if args.group.is_some() && consumed > 0 {
        match consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(err) => tracing::warn!("committing final offsets failed: {err}"),
        }
    }
    eprintln!("consumed {consumed} records from {}", args.topic);
    Ok(())
}

/// The topic's partition ids; fails if the topic does not exist.
fn topic_partitions(consumer: &StromConsumer, topic: &str) -> anyhow::Result<Vec<i32>> {
    let metadata = consumer
        .fetch_metadata(Some(topic), REQUEST_TIMEOUT)
        .context("fetching metadata")?;
    let Some(found) = metadata.topics().iter().find(|t| t.name() == topic) else {
        bail!("topic {topic} is missing from the metadata response");
    };
    if let Some(err) = found.error() {
        bail!("cannot read topic {topic}: {}", RDKafkaErrorCode::from(err));
    }
    let mut ids: Vec<i32> = found.partitions().iter().map(|p| p.id()).collect();
    ids.sort_unstable();
    Ok(ids)
}

/// The librdkafka start offset of each partition for `from`; timestamps are
/// looked up with ListOffsets (offsets_for_times).
fn start_offsets(
    consumer: &StromConsumer,
    topic: &str,
    partitions: &[i32],
    from: StartFrom,
) -> anyhow::Result<HashMap<i32, Offset>> {
    let fixed = |offset: Offset| Ok(partitions.iter().map(|p| (*p, offset)).collect());
    match from {
        StartFrom::Beginning => fixed(Offset::Beginning),
        StartFrom::End | StartFrom::Tail(0) => fixed(Offset::End),
        StartFrom::Tail(n) => fixed(Offset::OffsetTail(n)),
        StartFrom::Offset(offset) => fixed(Offset::Offset(offset)),
        StartFrom::Timestamp(millis) => {
            let mut query = TopicPartitionList::new();
            for partition in partitions {
                query.add_partition_offset(topic, *partition, Offset::Offset(millis))?;
            }
            let found = consumer
                .offsets_for_times(query, REQUEST_TIMEOUT)
                .context("looking up offsets for the timestamp")?;
            let mut starts = HashMap::new();
            for element in found.elements() {
                element.error().with_context(|| {
                    format!(
                        "looking up the timestamp in partition {}",
                        element.partition()
                    )
                })?;
                // No record at or after the time: the partition's end, as Kafka answers.
                let offset = match element.offset() {
                    Offset::Offset(offset) => Offset::Offset(offset),
                    _ => Offset::End,
                };
                starts.insert(element.partition(), offset);
            }
            Ok(starts)
        }
    }
}

/// Prints records until a stop condition holds; returns how many were printed.
fn poll_loop(
    args: &ConsumeArgs,
    consumer: &StromConsumer,
    assigned: &[i32],
    stop: &AtomicBool,
) -> anyhow::Result<u64> {
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut consumed = 0u64;
    let mut last_record = Instant::now();
    let idle_limit = args.timeout_ms.map(Duration::from_millis);
    let mut at_end: BTreeSet<i32> = BTreeSet::new();
    let mut write_failed = None;

    while !stop.load(Ordering::Relaxed) && args.count.is_none_or(|count| consumed < count) {
        let polled = match consumer.poll(Duration::ZERO) {
            Some(polled) => polled,
            None => {
                // Nothing buffered: show what we have before waiting.
                if let Err(err) = out.flush() {
                    write_failed = Some(err);
                    break;
                }
                match consumer.poll(POLL_WAIT) {
                    Some(polled) => polled,
                    None => {
                        if idle_limit.is_some_and(|limit| last_record.elapsed() >= limit) {
                            break;
                        }
                        continue;
                    }
                }
            }
        };
        match polled {
            Ok(message) => {
                at_end.remove(&message.partition());
                last_record = Instant::now();
                if let Err(err) = write_record(&mut out, args, &message) {
                    write_failed = Some(err);
                    break;
                }
                consumed += 1;
                if args.group.is_some() {
                    if let Err(err) = consumer.store_offset_from_message(&message) {
                        tracing::warn!("storing the offset to commit failed: {err}");
                    }
                }
            }
            Err(KafkaError::PartitionEOF(partition)) => {
                at_end.insert(partition);
                if args.exit_at_end && all_at_end(args, consumer, assigned, &at_end) {
                    break;
                }
            }
            Err(KafkaError::MessageConsumption(
                code @ (RDKafkaErrorCode::UnknownTopicOrPartition
                | RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::GroupAuthorizationFailed),
            )) => bail!("cannot consume {}: {code}", args.topic),
            Err(err) => tracing::warn!("{err}"),
        }
    }

    let flushed = match write_failed {
        Some(err) => Err(err),
        None => out.flush(),
    };
    match flushed {
        // The reader went away (`strom consume ... | head`): a normal way to stop.
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(consumed),
        Err(err) => Err(err).context("writing to stdout"),
        Ok(()) => Ok(consumed),
    }
}

fn all_at_end(
    args: &ConsumeArgs,
    consumer: &StromConsumer,
    assigned: &[i32],
    at_end: &BTreeSet<i32>,
) -> bool {
    if args.group.is_none() {
        return assigned.iter().all(|p| at_end.contains(p));
    }
    match consumer.assignment() {
        Ok(assignment) => {
            let current: Vec<i32> = assignment
                .elements()
                .iter()
                .map(|e| e.partition())
                .collect();
            !current.is_empty() && current.iter().all(|p| at_end.contains(p))
        }
        Err(_) => false,
    }
}

fn write_record(
    out: &mut impl Write,
    args: &ConsumeArgs,
    message: &BorrowedMessage<'_>,
) -> std::io::Result<()> {
    if args.json {
        let record = JsonRecord::from_message(message);
        serde_json::to_writer(&mut *out, &record)?;
        return out.write_all(b"\n");
    }
    if args.print_key {
        out.write_all(message.key().unwrap_or_default())?;
        out.write_all(args.key_separator.as_bytes())?;
    }
    out.write_all(message.payload().unwrap_or_default())?;
    out.write_all(b"\n")
}

/// One record as printed by `--json`.
#[derive(Debug, Serialize)]
pub struct JsonRecord<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub key: serde_json::Value,
    pub value: serde_json::Value,
    pub headers: serde_json::Map<String, serde_json::Value>,
    pub timestamp: Option<i64>,
    pub timestamp_type: Option<&'static str>,
}

impl<'a> JsonRecord<'a> {
    fn from_message(message: &'a BorrowedMessage<'a>) -> Self {
        let mut headers = serde_json::Map::new();
        if let Some(borrowed) = message.headers() {
            for header in borrowed.iter() {
                headers.insert(header.key.to_string(), json_bytes(header.value));
            }
        }
        let (timestamp, timestamp_type) = match message.timestamp() {
            Timestamp::CreateTime(ms) if ms >= 0 => (Some(ms), Some("create_time")),
            Timestamp::LogAppendTime(ms) if ms >= 0 => (Some(ms), Some("log_append_time")),
            _ => (None, None),
        };
        JsonRecord {
            topic: message.topic(),
            partition: message.partition(),
            offset: message.offset(),
            key: json_bytes(message.key()),
            value: json_bytes(message.payload()),
            headers,
            timestamp,
            timestamp_type,
        }
    }
}

/// A string for UTF-8 bytes, `{"base64": "..."}` otherwise, null when absent.
pub fn json_bytes(bytes: Option<&[u8]>) -> serde_json::Value {
    match bytes {
        None => serde_json::Value::Null,
        Some(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => serde_json::Value::String(text.to_string()),
            Err(_) => serde_json::json!({ "base64": base64_encode(bytes) }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_bytes_keeps_text_and_encodes_binary() {
        assert_eq!(json_bytes(None), serde_json::Value::Null);
        assert_eq!(json_bytes(Some(b"h\xc3\xa9")), serde_json::json!("hé"));
        assert_eq!(json_bytes(Some(b"")), serde_json::json!(""));
        assert_eq!(
            json_bytes(Some(&[0xff, 0x00])),
            serde_json::json!({ "base64": "/wA=" })
        );
    }
}
