//! `strom bench e2e`: producers at a fixed rate and consumers reading along;
//! how long each record takes from its due time to its arrival.

use super::consumer::{end_offsets, ConsumePlan, ConsumerFleet};
use super::options::{parse_duration, parse_rate, ProducerOptions, TopicOptions};
use super::producer::{Limit, ProducePlan, ProducerFleet};
use super::report::{Progress, Report, Sample};
use super::schedule::{Pace, RunClock};
use super::{describe_producers, partitions_in_words, topic, wait_while_running};
use crate::client::common::ClientArgs;
use anyhow::{bail, Context as _};
use clap::Args;
use serde::Serialize;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long the consumers get to connect and start fetching before the first
/// record is due, so that their start-up is not counted as latency.
const CONSUMER_WARM_UP: Duration = Duration::from_millis(500);

/// Produce at a fixed rate while consuming, and measure end-to-end latency.
///
/// Each record carries its due time on the producers' schedule (nanoseconds
/// since the UNIX epoch, big-endian, in the first 8 bytes of its value); the
/// consumers record receive time minus due time. The consumers start at the
/// partitions' current ends, so only this run's records are read. After the
/// producers are done, the consumers get --drain-timeout to read the rest.
#[derive(Debug, Args)]
pub struct EndToEndArgs {
    #[command(flatten)]
    pub topic: TopicOptions,
    #[command(flatten)]
    pub producer: ProducerOptions,
    /// Records per second over all producers.
    #[arg(long, value_name = "RECORDS", required = true, value_parser = parse_rate)]
    pub rate: f64,
    /// How long to produce, e.g. 30, 30s, 2m.
    #[arg(long, value_name = "DURATION", required = true, value_parser = parse_duration)]
    pub duration: Duration,
    /// Number of consumer clients; the partitions are dealt out among them.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub consumers: u64,
    /// How long the consumers may take, after the last acknowledgement, to
    /// receive every acknowledged record.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub drain_timeout: Duration,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct Settings<'a> {
    bootstrap: &'a str,
    topic: &'a str,
    partitions: usize,
    duration_s: f64,
    rate: f64,
    consumers: u64,
    #[serde(flatten)]
    producer: &'a ProducerOptions,
}

pub async fn run(
    client: &ClientArgs,
    args: EndToEndArgs,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    if args.rate <= 0.0 {
        bail!("e2e needs a fixed --rate above 0");
    }
    if args.producer.record_size < 8 {
        bail!("--record-size must be at least 8: a record carries its due time");
    }
    let partitions = topic::prepare(client, &args.topic).await?;
    let pace = Pace::from_rate(args.rate);
    let produce_plan = ProducePlan {
        topic: args.topic.topic.clone(),
        options: args.producer.clone(),
        pace,
        limit: Limit::Duration(args.duration),
        stamp_due_time: true,
    };
    let job_client = client.clone();
    let topic_name = args.topic.topic.clone();
    let consumers = usize::try_from(args.consumers)?;
    let drain_timeout = args.drain_timeout;
    let partition_count = partitions.len();
    let job_stop = Arc::clone(&stop);
    let (produced, consumed) = tokio::task::spawn_blocking(move || {
        let clock = RunClock::start();
        let consume_plan = ConsumePlan {
            partitions: end_offsets(&job_client, &topic_name, &partitions)?,
            topic: topic_name,
            consumers,
            count: None,
            duration: None,
            until_end: false,
            idle_timeout: None,
            measure_end_to_end: true,
        };
        let stop = job_stop;
        let mut consumer_fleet = ConsumerFleet::start(&job_client, &consume_plan, clock, &stop)?;
        std::thread::sleep(CONSUMER_WARM_UP);
        consumer_fleet.measure_from(clock.elapsed());
        let producer_fleet = match ProducerFleet::start(&job_client, &produce_plan, clock, &stop) {
            Ok(fleet) => fleet,
            Err(err) => {
                consumer_fleet.halt();
                return Err(err);
            }
        };

        let mut progress = Progress::new(std::io::stderr().is_terminal());
        let mut drain_deadline: Option<Instant> = None;
        wait_while_running(
            || consumer_fleet.is_finished(),
            || {
                let sent = producer_fleet.counters();
                let read = consumer_fleet.counters();
                if drain_deadline.is_none() && producer_fleet.is_finished() {
                    // Now the consumers know how many records to expect.
                    read.target
                        .store(sent.delivered.load(Ordering::Relaxed), Ordering::Relaxed);
                    drain_deadline = Some(Instant::now() + drain_timeout);
                }
                if drain_deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                    consumer_fleet.halt();
                }
                progress.tick(&[
                    Sample {
                        label: "acknowledged",
                        records: sent.delivered.load(Ordering::Relaxed),
                        bytes: sent.delivered_bytes.load(Ordering::Relaxed),
                    },
                    Sample {
                        label: "consumed",
                        records: read.records.load(Ordering::Relaxed),
                        bytes: read.bytes.load(Ordering::Relaxed),
                    },
                ]);
            },
        );
        Ok((producer_fleet.finish()?, consumer_fleet.finish()?))
    })
    .await
    .context("the benchmark thread panicked")??;

    let failed = produced.failed;
    let acknowledged = produced.throughput.records;
    let received = consumed.consumed.throughput.records;
    let report = Report {
        mode: "e2e",
        settings: Settings {
            bootstrap: &client.bootstrap,
            topic: &args.topic.topic,
            partitions: partition_count,
            duration_s: args.duration.as_secs_f64(),
            rate: args.rate,
            consumers: args.consumers,
            producer: &args.producer,
        },
        produced: Some(produced),
        consumed: Some(consumed.consumed),
        end_to_end_latency_ms: Some(consumed.end_to_end.summary()),
    };
    let headline = format!(
        "end to end on {} ({}) for {:?}: {}, {} consumer{}",
        args.topic.topic,
        partitions_in_words(partition_count),
        args.duration,
        describe_producers(&args.producer, pace),
        args.consumers,
        if args.consumers == 1 { "" } else { "s" }
    );
    report.print(args.json, &headline)?;
    if failed > 0 {
        bail!("{failed} records were not delivered");
    }
    if received < acknowledged && !stop.load(Ordering::Relaxed) {
        bail!(
            "only {received} of {acknowledged} acknowledged records arrived within \
             --drain-timeout {drain_timeout:?}"
        );
    }
    Ok(())
}
