//! A factory line: per-machine one-minute average temperature, and an
//! alert for every reading out of range. See README.md.

use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use strom_streams::*;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Reading {
    celsius: f64,
    /// Event time (ms since the epoch); the record timestamp if absent.
    #[serde(default)]
    ts: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Sum {
    total: f64,
    readings: u64,
}

const MIN_C: f64 = 5.0;
const MAX_C: f64 = 85.0;

fn topology() -> Result<Topology> {
    let builder = StreamsBuilder::new();
    let readings = builder.stream(
        "machine-temperatures",
        Consumed::with(Serdes::string(), Serdes::json::<Reading>())
            .with_timestamp_extractor(|_, r: &Reading, record_ts| r.ts.unwrap_or(record_ts)),
    );
    let branches = readings.branch(vec![
        Arc::new(|_, r: &Reading| !(MIN_C..=MAX_C).contains(&r.celsius)),
        Arc::new(|_, _| true),
    ]);
    // The alert branch: out-of-range readings, at once.
    branches[0]
        .map_values_with_key(|machine, r| {
            serde_json::json!({ "machine": machine, "celsius": r.celsius, "allowed": [MIN_C, MAX_C] })
        })
        .to("machine-alerts", Produced::with(Serdes::string(), Serdes::json()));
    // Every reading (alerts included) goes into the averages.
    readings
        .group_by_key(Grouped::with(Serdes::string(), Serdes::json::<Reading>()))
        .windowed_by(TimeWindows::of_size_and_grace(
            Duration::from_secs(60),
            Duration::from_secs(10),
        ))
        .emit_final()
        .aggregate(
            Sum::default,
            |_, r, s| Sum {
                total: s.total + r.celsius,
                readings: s.readings + 1,
            },
            Materialized::with_value_serde(Serdes::json::<Sum>()).name("machine-minute-sums"),
        )
        .to_stream()
        .flat_map(|w: Windowed<String>, s: Option<Sum>| {
            s.map(|s| {
                let avg = serde_json::json!({
                    "machine": w.key, "window_start": w.start, "window_end": w.end,
                    "average_celsius": s.total / s.readings as f64, "readings": s.readings,
                });
                (w.key, avg)
            })
        })
        .to(
            "machine-averages",
            Produced::with(Serdes::string(), Serdes::json()),
        );
    builder.build()
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
        .init();
    let bootstrap = std::env::var("STROM_BOOTSTRAP").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let topology = topology()?;
    println!("{}", topology.describe());
    let config = StreamsConfig::new("factory-temperatures", &bootstrap)
        .exactly_once()
        .state_dir(std::env::var("STATE_DIR").unwrap_or_else(|_| "./streams-state".into()));
    let mut streams = KafkaStreams::new(topology, config);
    streams.start()?;
    let addr = streams.serve_queries(
        &std::env::var("QUERY_LISTEN").unwrap_or_else(|_| "127.0.0.1:7071".into()),
    )?;
    println!("running; windows at http://{addr}/stores/machine-minute-sums/keys/MACHINE/windows — Ctrl-C stops");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let _ = runtime.block_on(tokio::signal::ctrl_c());
    streams.close()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn averages_per_minute_and_alerts() {
        let driver = TopologyTestDriver::new(topology().unwrap()).unwrap();
        let input = driver.input_topic(
            "machine-temperatures",
            Serdes::string(),
            Serdes::json::<Reading>(),
        );
        let at = |c, ts| Reading {
            celsius: c,
            ts: Some(ts),
        };
        input.pipe_input("m1".into(), at(20.0, 1_000)).unwrap();
        input.pipe_input("m1".into(), at(90.0, 2_000)).unwrap();
        input.pipe_input("m1".into(), at(30.0, 75_000)).unwrap(); // closes [0, 60 s)
        let alerts = driver.output_topic(
            "machine-alerts",
            Serdes::string(),
            Serdes::json::<serde_json::Value>(),
        );
        assert_eq!(alerts.read_values_to_vec().len(), 1);
        let averages = driver.output_topic(
            "machine-averages",
            Serdes::string(),
            Serdes::json::<serde_json::Value>(),
        );
        let avg = averages.read_values_to_vec();
        assert_eq!(avg.len(), 1);
        assert_eq!(avg[0]["average_celsius"], 55.0);
    }
}
