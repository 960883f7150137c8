//! `strom bench consume`: how fast a topic can be read from its beginning.

use super::consumer::{ConsumePlan, ConsumerFleet};
use super::options::{parse_duration, TopicOptions};
use super::report::{Progress, Report, Sample};
use super::schedule::RunClock;
use super::{partitions_in_words, topic, wait_while_running};
use crate::client::common::ClientArgs;
use anyhow::{bail, Context as _};
use clap::Args;
use rdkafka::Offset;
use serde::Serialize;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Read a topic from the beginning and measure throughput.
///
/// Every partition is assigned directly (no consumer group, nothing
/// committed) and read from its first record. Without --count or --duration
/// the run ends when every partition has been read to the end it had when
/// reading reached it.
#[derive(Debug, Args)]
pub struct ConsumeBenchArgs {
    /// Topic to read.
    #[arg(long)]
    pub topic: String,
    /// Stop after this many records.
    #[arg(long, value_name = "N", conflicts_with = "duration")]
    pub count: Option<u64>,
    /// Stop after this long, e.g. 30, 30s, 2m.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Number of consumer clients; the partitions are dealt out among them.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub consumers: u64,
    /// Give up when no record has arrived for this long (not with --duration).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub idle_timeout: Duration,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct Settings<'a> {
    bootstrap: &'a str,
    topic: &'a str,
    partitions: usize,
    consumers: u64,
    count: Option<u64>,
    duration_s: Option<f64>,
    /// True when the run reads every partition to its end.
    until_end: bool,
}

pub async fn run(
    client: &ClientArgs,
    args: ConsumeBenchArgs,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let topic_options = TopicOptions {
        topic: args.topic.clone(),
        create: false,
        partitions: 1,
        replication_factor: 1,
    };
    let partitions = topic::prepare(client, &topic_options).await?;
    let until_end = args.count.is_none() && args.duration.is_none();
    let plan = ConsumePlan {
        topic: args.topic.clone(),
        partitions: partitions
            .iter()
            .map(|&partition| (partition, Offset::Beginning))
            .collect(),
        consumers: usize::try_from(args.consumers)?,
        count: args.count,
        duration: args.duration,
        until_end,
        idle_timeout: args.duration.is_none().then_some(args.idle_timeout),
        measure_end_to_end: false,
    };
    let job_client = client.clone();
    let result = tokio::task::spawn_blocking(move || {
        let clock = RunClock::start();
        let fleet = ConsumerFleet::start(&job_client, &plan, clock, &stop)?;
        let mut progress = Progress::new(std::io::stderr().is_terminal());
        wait_while_running(
            || fleet.is_finished(),
            || {
                let counters = fleet.counters();
                progress.tick(&[Sample {
                    label: "consumed",
                    records: counters.records.load(Ordering::Relaxed),
                    bytes: counters.bytes.load(Ordering::Relaxed),
                }]);
            },
        );
        fleet.finish()
    })
    .await
    .context("the consuming thread panicked")??;

    let consumed_records = result.consumed.throughput.records;
    let report = Report {
        mode: "consume",
        settings: Settings {
            bootstrap: &client.bootstrap,
            topic: &args.topic,
            partitions: partitions.len(),
            consumers: args.consumers,
            count: args.count,
            duration_s: args.duration.map(|d| d.as_secs_f64()),
            until_end,
        },
        produced: None,
        consumed: Some(result.consumed),
        end_to_end_latency_ms: None,
    };
    let headline = format!(
        "consume {} ({}) from the beginning with {} consumer{}",
        args.topic,
        partitions_in_words(partitions.len()),
        args.consumers,
        if args.consumers == 1 { "" } else { "s" }
    );
    report.print(args.json, &headline)?;
    if result.went_idle {
        let wanted = match args.count {
            Some(count) => format!("{count} records"),
            None => "the end of every partition".to_string(),
        };
        bail!(
            "no record arrived for {:?} after {consumed_records}; gave up waiting for {wanted}",
            args.idle_timeout
        );
    }
    Ok(())
}
