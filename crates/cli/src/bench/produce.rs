//! `strom bench produce`: how fast records are acknowledged, and how long
//! each acknowledgement takes.

use super::options::{parse_duration, parse_rate, ProducerOptions, TopicOptions};
use super::producer::{Limit, ProducePlan, ProducerFleet};
use super::report::{Produced, Progress, Report, Sample};
use super::schedule::{Pace, RunClock};
use super::{describe_producers, partitions_in_words, topic, wait_while_running};
use crate::client::common::ClientArgs;
use anyhow::{bail, Context as _};
use clap::Args;
use serde::Serialize;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Produce records and measure throughput and send → acknowledgement latency.
///
/// At a fixed --rate, each record's latency counts from when the schedule
/// meant it to be sent, so a stall delays every record behind it and shows
/// in the percentiles. With --rate 0 (the default) producers send as fast as
/// the client takes records and latency counts from each send call.
#[derive(Debug, Args)]
pub struct ProduceBenchArgs {
    #[command(flatten)]
    pub topic: TopicOptions,
    #[command(flatten)]
    pub producer: ProducerOptions,
    /// Records to send in all.
    #[arg(
        long,
        value_name = "N",
        required_unless_present = "duration",
        conflicts_with = "duration"
    )]
    pub count: Option<u64>,
    /// How long to send, e.g. 30, 30s, 500ms, 2m.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Records per second over all producers; 0 for as fast as possible.
    #[arg(long, value_name = "RECORDS", default_value = "0", value_parser = parse_rate)]
    pub rate: f64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// The run's settings as the JSON report shows them.
#[derive(Debug, Serialize)]
struct Settings<'a> {
    bootstrap: &'a str,
    topic: &'a str,
    partitions: usize,
    count: Option<u64>,
    duration_s: Option<f64>,
    /// Records per second; 0 for unlimited.
    rate: f64,
    #[serde(flatten)]
    producer: &'a ProducerOptions,
}

pub async fn run(
    client: &ClientArgs,
    args: ProduceBenchArgs,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let partitions = topic::prepare(client, &args.topic).await?;
    let pace = Pace::from_rate(args.rate);
    let plan = ProducePlan {
        topic: args.topic.topic.clone(),
        options: args.producer.clone(),
        pace,
        limit: match (args.count, args.duration) {
            (Some(count), _) => Limit::Count(count),
            (None, Some(duration)) => Limit::Duration(duration),
            (None, None) => bail!("give --count or --duration"),
        },
        stamp_due_time: false,
    };
    let job_client = client.clone();
    let produced = tokio::task::spawn_blocking(move || produce(&job_client, &plan, &stop))
        .await
        .context("the producing thread panicked")??;

    let failed = produced.failed;
    let report = Report {
        mode: "produce",
        settings: Settings {
            bootstrap: &client.bootstrap,
            topic: &args.topic.topic,
            partitions: partitions.len(),
            count: args.count,
            duration_s: args.duration.map(|d| d.as_secs_f64()),
            rate: pace.rate(),
            producer: &args.producer,
        },
        produced: Some(produced),
        consumed: None,
        end_to_end_latency_ms: None,
    };
    let headline = format!(
        "produce to {} ({}): {}",
        args.topic.topic,
        partitions_in_words(partitions.len()),
        describe_producers(&args.producer, pace)
    );
    report.print(args.json, &headline)?;
    if failed > 0 {
        bail!("{failed} records were not delivered");
    }
    Ok(())
}

fn produce(
    client: &ClientArgs,
    plan: &ProducePlan,
    stop: &Arc<AtomicBool>,
) -> anyhow::Result<Produced> {
    let clock = RunClock::start();
    let fleet = ProducerFleet::start(client, plan, clock, stop)?;
    let mut progress = Progress::new(std::io::stderr().is_terminal());
    wait_while_running(
        || fleet.is_finished(),
        || {
            let counters = fleet.counters();
            progress.tick(&[Sample {
                label: "acknowledged",
                records: counters.delivered.load(Ordering::Relaxed),
                bytes: counters.delivered_bytes.load(Ordering::Relaxed),
            }]);
        },
    );
    fleet.finish()
}
