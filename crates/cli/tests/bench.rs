//! Smoke runs of `strom bench` against a real broker: each test starts
//! `strom serve` on port 0 from the same binary and runs small `bench
//! produce` / `consume` / `e2e` runs with `--json`, checking the report's
//! shape, that the counts add up and that the latency percentiles are sane.
//! Benchmarks are not tests: these only keep the tool working.
//!
//! With `STROM_TEST_BOOTSTRAP=HOST:PORT` the runs go to that cluster instead.

mod common;

use common::*;
use serde_json::Value;

const RECORDS: u64 = 20_000;

/// Runs a bench with `--json` and parses its one line of output.
fn bench(broker: &Broker, args: &[&str]) -> Value {
    let mut all = vec!["bench"];
    all.extend_from_slice(args);
    all.push("--json");
    let stdout = broker.ok(&all, b"");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one JSON object on one line:\n{stdout}");
    serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn number(value: &Value, field: &str) -> f64 {
    value[field]
        .as_f64()
        .unwrap_or_else(|| panic!("`{field}` is not a number in {value}"))
}

fn count(value: &Value, field: &str) -> u64 {
    value[field]
        .as_u64()
        .unwrap_or_else(|| panic!("`{field}` is not a count in {value}"))
}

/// Checks a throughput object: `records` as expected, bytes to match, and
/// positive rates.
fn assert_throughput(side: &Value, records: u64, record_size: u64) {
    assert_eq!(count(side, "records"), records, "{side}");
    assert_eq!(count(side, "bytes"), records * record_size, "{side}");
    assert!(number(side, "elapsed_s") > 0.0, "{side}");
    assert!(number(side, "records_per_sec") > 0.0, "{side}");
    assert!(number(side, "mb_per_sec") > 0.0, "{side}");
}

/// Checks a latency object: `samples` samples, and the percentiles ordered.
fn assert_latency(latency: &Value, samples: u64) {
    assert_eq!(count(latency, "count"), samples, "{latency}");
    let [min, mean, p50, p99, p99_9, max] =
        ["min", "mean", "p50", "p99", "p99_9", "max"].map(|field| number(latency, field));
    assert!(0.0 <= min && min <= p50, "{latency}");
    assert!(p50 <= p99 && p99 <= p99_9 && p99_9 <= max, "{latency}");
    assert!(min <= mean && mean <= max, "{latency}");
    assert!(max > 0.0, "{latency}");
}

#[test]
fn produce_then_consume_counts_match() {
    let broker = Broker::start();
    let topic = unique("bench-produce");
    let records = RECORDS.to_string();

    let report = bench(
        &broker,
        &[
            "produce",
            "--topic",
            &topic,
            "--create",
            "--partitions",
            "2",
            "--count",
            &records,
            "--record-size",
            "100",
            "--acks",
            "1",
        ],
    );
    assert_eq!(report["mode"], "produce");
    let settings = &report["settings"];
    assert_eq!(settings["topic"], topic.as_str());
    assert_eq!(settings["partitions"], 2);
    assert_eq!(settings["count"], RECORDS);
    assert_eq!(settings["acks"], "1");
    assert_eq!(settings["compression"], "none");
    assert_eq!(settings["record_size"], 100);
    assert_eq!(settings["producers"], 1);
    assert_eq!(settings["rate"], 0.0);
    let produced = &report["produced"];
    assert_throughput(produced, RECORDS, 100);
    assert_eq!(count(produced, "failed"), 0);
    assert_latency(&produced["latency_ms"], RECORDS);
    assert!(report.get("consumed").is_none(), "{report}");

    // Two producers share the count; acks=all.
    let report = bench(
        &broker,
        &[
            "produce",
            "--topic",
            &topic,
            "--count",
            "5000",
            "--producers",
            "2",
            "--acks",
            "all",
        ],
    );
    assert_throughput(&report["produced"], 5000, 100);
    assert_latency(&report["produced"]["latency_ms"], 5000);

    // Without --count: the whole topic, from the beginning, to its end.
    let total = RECORDS + 5000;
    let report = bench(&broker, &["consume", "--topic", &topic]);
    assert_eq!(report["mode"], "consume");
    assert_eq!(report["settings"]["until_end"], true);
    assert_eq!(report["settings"]["partitions"], 2);
    assert_throughput(&report["consumed"], total, 100);
    assert!(report.get("produced").is_none(), "{report}");

    // Two consumers stop together at exactly the count.
    let report = bench(
        &broker,
        &[
            "consume",
            "--topic",
            &topic,
            "--count",
            "7000",
            "--consumers",
            "2",
        ],
    );
    assert_eq!(report["settings"]["consumers"], 2);
    assert_throughput(&report["consumed"], 7000, 100);
}

#[test]
fn fixed_rate_runs_follow_the_schedule() {
    let broker = Broker::start();
    let topic = unique("bench-rate");

    // 2000 records at 10 000/s: the last is due 0.1999 s after the first.
    let report = bench(
        &broker,
        &[
            "produce", "--topic", &topic, "--create", "--count", "2000", "--rate", "10000",
        ],
    );
    assert_eq!(report["settings"]["rate"], 10000.0);
    let produced = &report["produced"];
    assert_throughput(produced, 2000, 100);
    assert!(number(produced, "elapsed_s") >= 0.19, "{produced}");
    assert!(
        number(produced, "records_per_sec") <= 10_600.0,
        "{produced}"
    );
    assert_latency(&produced["latency_ms"], 2000);

    // --duration at a rate sends rate × duration records.
    let report = bench(
        &broker,
        &[
            "produce",
            "--topic",
            &topic,
            "--duration",
            "500ms",
            "--rate",
            "4000",
        ],
    );
    assert_eq!(report["settings"]["duration_s"], 0.5);
    assert_throughput(&report["produced"], 2000, 100);
}

#[test]
fn end_to_end_at_a_fixed_rate() {
    let broker = Broker::start();
    let topic = unique("bench-e2e");
    let (rate, seconds) = (2000u64, 2u64);

    let report = bench(
        &broker,
        &[
            "e2e",
            "--topic",
            &topic,
            "--create",
            "--partitions",
            "3",
            "--rate",
            &rate.to_string(),
            "--duration",
            &seconds.to_string(),
            "--record-size",
            "64",
            "--acks",
            "1",
            "--linger-ms",
            "1",
        ],
    );
    assert_eq!(report["mode"], "e2e");
    let settings = &report["settings"];
    assert_eq!(settings["rate"], 2000.0);
    assert_eq!(settings["duration_s"], 2.0);
    assert_eq!(settings["linger_ms"], 1);
    assert_eq!(settings["partitions"], 3);

    let produced = &report["produced"];
    let sent = count(produced, "records");
    let expected = rate * seconds;
    assert!(
        sent.abs_diff(expected) <= expected / 20,
        "about rate × duration = {expected} records, got {sent}: {report}"
    );
    assert_throughput(produced, sent, 64);
    assert_eq!(count(produced, "failed"), 0);
    assert_latency(&produced["latency_ms"], sent);
    // Pacing holds the producers to the rate.
    assert!(
        number(produced, "records_per_sec") <= rate as f64 * 1.05,
        "{report}"
    );

    // Every acknowledged record arrives, and each carries a latency sample.
    assert_throughput(&report["consumed"], sent, 64);
    assert_latency(&report["end_to_end_latency_ms"], sent);
}

#[test]
fn codecs_table_and_errors() {
    let broker = Broker::start();
    let topic = unique("bench-codecs");

    for codec in ["gzip", "snappy", "lz4", "zstd"] {
        let report = bench(
            &broker,
            &[
                "produce",
                "--topic",
                &topic,
                "--create",
                "--count",
                "2000",
                "--record-size",
                "512",
                "--compression",
                codec,
            ],
        );
        assert_eq!(report["settings"]["compression"], codec);
        // Sizes count the records' own bytes, before compression.
        assert_throughput(&report["produced"], 2000, 512);
    }
    let report = bench(&broker, &["consume", "--topic", &topic]);
    assert_throughput(&report["consumed"], 8000, 512);

    // Without --json: a headline and a table.
    let table = broker.ok(
        &[
            "bench",
            "produce",
            "--topic",
            &topic,
            "--count",
            "100",
            "--record-size",
            "512",
        ],
        b"",
    );
    assert!(table.starts_with("produce to "), "{table}");
    assert!(table.contains("P99.9 MS"), "{table}");
    let row = table
        .lines()
        .skip_while(|line| !line.contains("RECORDS"))
        .find(|line| line.starts_with("produce "))
        .unwrap_or_else(|| panic!("no produce row:\n{table}"));
    assert_eq!(row.split_whitespace().nth(1), Some("100"), "{table}");

    // A missing topic is an error, not an auto-created topic.
    let missing = broker.run(
        &[
            "bench",
            "produce",
            "--topic",
            &unique("bench-missing"),
            "--count",
            "10",
        ],
        b"",
    );
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("does not exist"), "{stderr}");

    // Count and duration exclude each other; e2e needs a rate.
    assert!(!broker
        .run(
            &[
                "bench",
                "produce",
                "--topic",
                &topic,
                "--count",
                "1",
                "--duration",
                "1"
            ],
            b""
        )
        .status
        .success());
    assert!(!broker
        .run(&["bench", "e2e", "--topic", &topic, "--duration", "1"], b"")
        .status
        .success());
}
