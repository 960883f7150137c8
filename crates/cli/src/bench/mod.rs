//! `strom bench`: a load generator and latency meter for any Kafka-compatible
//! cluster, after Kafka's `kafka-producer-perf-test` and
//! `kafka-consumer-perf-test`, plus an end-to-end mode.
//!
//! ```text
//! strom bench produce --topic bench --create --count 1000000 --record-size 100 --acks 1
//! strom bench produce --topic bench --duration 30s --rate 50000 --json
//! strom bench consume --topic bench
//! strom bench e2e --topic e2e --create --rate 50000 --duration 30s
//! ```
//!
//! It drives the cluster through librdkafka like any application would, so
//! the numbers include a real client's batching and are comparable between
//! brokers. At a fixed `--rate`, latency counts from each record's due time
//! on the schedule (see [`schedule`]), so stalls are not hidden by
//! coordinated omission. Percentiles come from HDR histograms
//! ([`latency`]); the output is a table or one JSON object ([`report`]).

mod consume;
mod consumer;
mod e2e;
mod latency;
mod options;
mod produce;
mod producer;
mod report;
mod schedule;
mod topic;

use crate::client::common::ClientArgs;
use clap::{Args, Subcommand};
use options::ProducerOptions;
use schedule::Pace;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How often the waiting thread checks on the workers (and maybe prints progress).
const WAIT_STEP: Duration = Duration::from_millis(50);

/// Measure throughput and latency of a Kafka-compatible cluster.
#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub command: BenchCommand,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    Produce(produce::ProduceBenchArgs),
    Consume(consume::ConsumeBenchArgs),
    E2e(e2e::EndToEndArgs),
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let stop = stop_on_ctrl_c();
    match args.command {
        BenchCommand::Produce(mode) => produce::run(&args.client, mode, stop).await,
        BenchCommand::Consume(mode) => consume::run(&args.client, mode, stop).await,
        BenchCommand::E2e(mode) => e2e::run(&args.client, mode, stop).await,
    }
}

/// A flag set by the first Ctrl-C: the run stops sending and reading, waits
/// for what is in flight and reports. A second Ctrl-C exits at once.
fn stop_on_ctrl_c() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let on_signal = Arc::clone(&stop);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!(
                "interrupted: finishing the records in flight (Ctrl-C again to abandon them)"
            );
            on_signal.store(true, Ordering::Relaxed);
        }
        if tokio::signal::ctrl_c().await.is_ok() {
            std::process::exit(130);
        }
    });
    stop
}

/// Blocks until `finished()` holds, calling `step` every few milliseconds
/// (to print progress or move the run to its next phase).
fn wait_while_running(mut finished: impl FnMut() -> bool, mut step: impl FnMut()) {
    while !finished() {
        std::thread::sleep(WAIT_STEP);
        step();
    }
}

/// The producer settings in words, for the table's headline.
fn describe_producers(options: &ProducerOptions, pace: Pace) -> String {
    let plural = |n: u64, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    let rate = match pace {
        Pace::Max => "unlimited rate".to_string(),
        Pace::Fixed { records_per_sec } => format!("{records_per_sec} records/s"),
    };
    let client_default =
        |value: Option<u64>| value.map_or("default".to_string(), |v| v.to_string());
    format!(
        "{} B records, acks={}, compression={}, {}, {rate}, linger.ms={}, batch.size={}",
        options.record_size,
        options.acks.as_config(),
        options.compression.as_config(),
        plural(options.producers, "producer"),
        client_default(options.linger_ms),
        client_default(options.batch_size),
    )
}

fn partitions_in_words(count: usize) -> String {
    format!("{count} partition{}", if count == 1 { "" } else { "s" })
}
