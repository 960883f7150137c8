//! Smoke runs of `strom bench` against a real broker: each test starts
//! `strom serve` on port 0 from the same binary and runs small `bench
//! produce` / `consume` / `e2e` runs with `--json`, checking the report's
//! shape, that the counts add up and that the latency percentiles are sane.
//! Benchmarks are not tests: these only keep the tool working.
//!
//! With `STROM_TEST_BOOTSTRAP=HOST:PORT` the runs go to that cluster instead.

use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const STROM: &str = env!("CARGO_BIN_EXE_strom");
const BROKER_START_TIMEOUT: Duration = Duration::from_secs(30);
const COMMAND_TIMEOUT: Duration = Duration::from_secs(90);
const RECORDS: u64 = 20_000;

/// A `strom serve` child process, killed when dropped, or an external
/// cluster named by STROM_TEST_BOOTSTRAP.
struct Broker {
    child: Option<Child>,
    bootstrap: String,
    data_dir: tempfile::TempDir,
}

impl Broker {
    fn start() -> Broker {
        let data_dir = tempfile::tempdir().expect("tempdir");
        if let Ok(bootstrap) = std::env::var("STROM_TEST_BOOTSTRAP") {
            return Broker {
                child: None,
                bootstrap,
                data_dir,
            };
        }
        let log = std::fs::File::create(data_dir.path().join("broker.log")).expect("log file");
        let mut child = Command::new(STROM)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
                "--data-dir",
            ])
            .arg(data_dir.path().join("data"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn strom serve");
        // Read stdout on a thread so a silent broker can't hang the test, and
        // keep draining it so the broker never blocks on a full pipe.
        let stdout = child.stdout.take().expect("piped stdout");
        let (address_tx, address_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut address_tx = Some(address_tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(address) = line.trim().strip_prefix("listening on ") {
                    if let Some(tx) = address_tx.take() {
                        let _ = tx.send(address.to_string());
                    }
                }
            }
        });
        let mut broker = Broker {
            child: Some(child),
            bootstrap: String::new(),
            data_dir,
        };
        broker.bootstrap = address_rx
            .recv_timeout(BROKER_START_TIMEOUT)
            .expect("broker prints `listening on HOST:PORT`");
        broker
    }

    /// Runs `strom ARGS` against this broker, at most COMMAND_TIMEOUT.
    fn run(&self, args: &[&str]) -> Output {
        let mut child = Command::new(STROM)
            .args(args)
            .env("STROM_BOOTSTRAP", &self.bootstrap)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn strom");
        let stdout = drain(child.stdout.take().expect("piped stdout"));
        let stderr = drain(child.stderr.take().expect("piped stderr"));
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for strom") {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "`strom {}` did not finish within {COMMAND_TIMEOUT:?}",
                    args.join(" ")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Output {
            status,
            stdout: stdout.join().expect("stdout reader"),
            stderr: stderr.join().expect("stderr reader"),
        }
    }

    /// Like `run`, but the command must succeed; returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "`strom {}` failed with {}\nstdout:\n{}\nstderr:\n{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("UTF-8 stdout")
    }

    /// Runs a bench with `--json` and parses its one line of output.
    fn bench(&self, args: &[&str]) -> Value {
        let mut all = vec!["bench"];
        all.extend_from_slice(args);
        all.push("--json");
        let stdout = self.ok(&all);
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), 1, "one JSON object on one line:\n{stdout}");
        serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("{e}: {stdout}"))
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let Some(child) = self.child.as_mut() else {
            return;
        };
        let _ = child.kill();
        let _ = child.wait();
        if std::thread::panicking() {
            let log = self.data_dir.path().join("broker.log");
            if let Ok(log) = std::fs::read_to_string(log) {
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                eprintln!("--- last broker log lines ---");
                for line in tail.iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

/// A topic name unique to this run, so runs can share a cluster.
fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .subsec_nanos();
    format!("{name}-{}-{nanos}", std::process::id())
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

    let report = broker.bench(&[
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
    ]);
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
    let report = broker.bench(&[
        "produce",
        "--topic",
        &topic,
        "--count",
        "5000",
        "--producers",
        "2",
        "--acks",
        "all",
    ]);
    assert_throughput(&report["produced"], 5000, 100);
    assert_latency(&report["produced"]["latency_ms"], 5000);

    // Without --count: the whole topic, from the beginning, to its end.
    let total = RECORDS + 5000;
    let report = broker.bench(&["consume", "--topic", &topic]);
    assert_eq!(report["mode"], "consume");
    assert_eq!(report["settings"]["until_end"], true);
    assert_eq!(report["settings"]["partitions"], 2);
    assert_throughput(&report["consumed"], total, 100);
    assert!(report.get("produced").is_none(), "{report}");

    // Two consumers stop together at exactly the count.
    let report = broker.bench(&[
        "consume",
        "--topic",
        &topic,
        "--count",
        "7000",
        "--consumers",
        "2",
    ]);
    assert_eq!(report["settings"]["consumers"], 2);
    assert_throughput(&report["consumed"], 7000, 100);
}

#[test]
fn fixed_rate_runs_follow_the_schedule() {
    let broker = Broker::start();
    let topic = unique("bench-rate");

    // 2000 records at 10 000/s: the last is due 0.1999 s after the first.
    let report = broker.bench(&[
        "produce", "--topic", &topic, "--create", "--count", "2000", "--rate", "10000",
    ]);
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
    let report = broker.bench(&[
        "produce",
        "--topic",
        &topic,
        "--duration",
        "500ms",
        "--rate",
        "4000",
    ]);
    assert_eq!(report["settings"]["duration_s"], 0.5);
    assert_throughput(&report["produced"], 2000, 100);
}

#[test]
fn end_to_end_at_a_fixed_rate() {
    let broker = Broker::start();
    let topic = unique("bench-e2e");
    let (rate, seconds) = (2000u64, 2u64);

    let report = broker.bench(&[
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
    ]);
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
        let report = broker.bench(&[
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
        ]);
        assert_eq!(report["settings"]["compression"], codec);
        // Sizes count the records' own bytes, before compression.
        assert_throughput(&report["produced"], 2000, 512);
    }
    let report = broker.bench(&["consume", "--topic", &topic]);
    assert_throughput(&report["consumed"], 8000, 512);

    // Without --json: a headline and a table.
    let table = broker.ok(&[
        "bench",
        "produce",
        "--topic",
        &topic,
        "--count",
        "100",
        "--record-size",
        "512",
    ]);
    assert!(table.starts_with("produce to "), "{table}");
    assert!(table.contains("P99.9 MS"), "{table}");
    let row = table
        .lines()
        .skip_while(|line| !line.contains("RECORDS"))
        .find(|line| line.starts_with("produce "))
        .unwrap_or_else(|| panic!("no produce row:\n{table}"));
    assert_eq!(row.split_whitespace().nth(1), Some("100"), "{table}");

    // A missing topic is an error, not an auto-created topic.
    let missing = broker.run(&[
        "bench",
        "produce",
        "--topic",
        &unique("bench-missing"),
        "--count",
        "10",
    ]);
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("does not exist"), "{stderr}");

    // Count and duration exclude each other; e2e needs a rate.
    assert!(!broker
        .run(&[
            "bench",
            "produce",
            "--topic",
            &topic,
            "--count",
            "1",
            "--duration",
            "1"
        ])
        .status
        .success());
    assert!(!broker
        .run(&["bench", "e2e", "--topic", &topic, "--duration", "1"])
        .status
        .success());
}
