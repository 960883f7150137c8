//! `strom consume`: print records of a topic, as text or one JSON object per line.

use super::common::{parse_separator, ClientArgs, Separator, REQUEST_TIMEOUT};
use super::record_format::{write_record, RecordFormat};
use super::start::StartFrom;
use anyhow::{bail, Context as _};
use clap::Args;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use std::collections::{BTreeSet, HashMap};
use std::io::{BufWriter, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const POLL_WAIT: Duration = Duration::from_millis(100);
/// How long a group member may wait for its first assignment before we say so.
const ASSIGNMENT_PATIENCE: Duration = Duration::from_secs(10);

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
    /// Text output: what separates key and value with --print-key. Understands
    /// \t, \n, \r, \\ and \xHH.
    #[arg(long, value_name = "SEP", default_value = "\\t", value_parser = parse_separator)]
    pub key_separator: Separator,
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
                let start = starts.get(partition).copied().with_context(|| {
                    format!(
                        "no start offset for partition {partition} of {}",
                        args.topic
                    )
                })?;
                assignment.add_partition_offset(&args.topic, *partition, start)?;
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
    let format = RecordFormat {
        json: args.json,
        print_key: args.print_key,
        key_separator: args.key_separator.0.clone(),
    };
    let mut consumed = 0u64;
    let mut last_record = Instant::now();
    let idle_limit = args.timeout_ms.map(Duration::from_millis);
    let mut at_end: BTreeSet<i32> = BTreeSet::new();
    let mut write_failed = None;
    let started = Instant::now();
    let mut warned_unassigned = false;

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
                        if !warned_unassigned
                            && args.group.is_some()
                            && started.elapsed() >= ASSIGNMENT_PATIENCE
                            && consumer.assignment().is_ok_and(|a| a.count() == 0)
                        {
                            warned_unassigned = true;
                            tracing::warn!(
                                "no partitions assigned after {}s: is the group coordinator \
                                 reachable, and does the broker support consumer groups?",
                                ASSIGNMENT_PATIENCE.as_secs()
                            );
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
                if let Err(err) = write_record(&mut out, &format, &message) {
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
