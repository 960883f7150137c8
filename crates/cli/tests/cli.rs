//! End-to-end tests of the `strom` client commands: each test starts a broker
//! from the same binary (`strom serve` on port 0) and drives it with the real
//! `strom topic` / `produce` / `consume` processes over TCP.
//!
//! With `STROM_TEST_BOOTSTRAP=HOST:PORT` the same scenarios run against that
//! cluster instead (e.g. Apache Kafka, to check that Strom behaves the same).

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const STROM: &str = env!("CARGO_BIN_EXE_strom");
const BROKER_START_TIMEOUT: Duration = Duration::from_secs(30);
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// A broker child process, killed when dropped (also when a test panics), or
/// an external cluster named by STROM_TEST_BOOTSTRAP.
struct Broker {
    child: Option<Child>,
    bootstrap: String,
    data_dir: tempfile::TempDir,
}

impl Broker {
    fn start() -> Broker {
        if let Ok(bootstrap) = std::env::var("STROM_TEST_BOOTSTRAP") {
            return Broker {
                child: None,
                bootstrap,
                data_dir: tempfile::tempdir().expect("tempdir"),
            };
        }
        let data_dir = tempfile::tempdir().expect("tempdir");
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
        // keep draining it afterwards so the broker never blocks on a full pipe.
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
        match address_rx.recv_timeout(BROKER_START_TIMEOUT) {
            Ok(address) => broker.bootstrap = address,
            Err(_) => panic!(
                "broker did not print `listening on HOST:PORT` within {BROKER_START_TIMEOUT:?}"
            ),
        }
        broker
    }

    fn log_path(&self) -> PathBuf {
        self.data_dir.path().join("broker.log")
    }

    /// Runs `strom ARGS` against this broker, feeding `stdin`, and waits at
    /// most COMMAND_TIMEOUT for it.
    fn run(&self, args: &[&str], stdin: &[u8]) -> Output {
        let mut child = Command::new(STROM)
            .args(args)
            .env("STROM_BOOTSTRAP", &self.bootstrap)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn strom");
        let mut input = child.stdin.take().expect("piped stdin");
        input.write_all(stdin).expect("write stdin");
        drop(input);
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
    fn ok(&self, args: &[&str], stdin: &[u8]) -> String {
        let output = self.run(args, stdin);
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
}

impl Drop for Broker {
    fn drop(&mut self) {
        let Some(child) = self.child.as_mut() else {
            return;
        };
        let _ = child.kill();
        let _ = child.wait();
        if std::thread::panicking() {
            if let Ok(log) = std::fs::read_to_string(self.log_path()) {
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

/// A topic name unique to this run, so scenarios can share a cluster.
fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .subsec_nanos();
    format!("{name}-{}-{nanos}", std::process::id())
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

fn listed_topics(broker: &Broker) -> Vec<String> {
    let list: Value = serde_json::from_str(&broker.ok(&["topic", "list", "--json"], b""))
        .expect("topic list --json");
    list.as_array()
        .expect("array")
        .iter()
        .map(|t| t["topic"].as_str().expect("topic name").to_string())
        .collect()
}

#[test]
fn topic_lifecycle_produce_and_consume() {
    let broker = Broker::start();
    let orders = unique("orders");
    let orders = orders.as_str();

    let created = broker.ok(&["topic", "create", orders, "--partitions", "1"], b"");
    assert!(created.contains("created topic orders"), "{created}");
    assert!(listed_topics(&broker).contains(&orders.to_string()));
    let table = broker.ok(&["topic", "list"], b"");
    assert!(
        table
            .lines()
            .any(|l| l.split_whitespace().next() == Some(orders)),
        "{table}"
    );

    broker.ok(
        &[
            "produce",
            orders,
            "--key-separator",
            ":",
            "--header",
            "source=cli-test",
        ],
        b"k1:first\nk2:second:with:colons\nk3:third\n",
    );

    let consumed = broker.ok(
        &[
            "consume",
            orders,
            "--from",
            "beginning",
            "--count",
            "3",
            "--json",
            "--timeout-ms",
            "20000",
        ],
        b"",
    );
    let records = json_lines(&consumed);
    let seen: Vec<(&str, &str, i64)> = records
        .iter()
        .map(|r| {
            (
                r["key"].as_str().expect("key"),
                r["value"].as_str().expect("value"),
                r["offset"].as_i64().expect("offset"),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("k1", "first", 0),
            ("k2", "second:with:colons", 1),
            ("k3", "third", 2)
        ]
    );
    for record in &records {
        assert_eq!(record["topic"], orders);
        assert_eq!(record["partition"], 0);
        assert_eq!(
            record["headers"],
            serde_json::json!({ "source": "cli-test" })
        );
        assert_eq!(record["timestamp_type"], "create_time");
        assert!(record["timestamp"].as_i64().is_some_and(|t| t > 0));
    }

    let described: Value =
        serde_json::from_str(&broker.ok(&["topic", "describe", orders, "--json"], b""))
            .expect("describe --json");
    assert_eq!(described["partitions"][0]["latest_offset"], 3);
    assert_eq!(described["partitions"][0]["earliest_offset"], 0);
    let table = broker.ok(&["topic", "describe", orders], b"");
    assert!(table.contains("LATEST"), "{table}");

    let deleted = broker.ok(&["topic", "delete", orders], b"");
    assert!(deleted.contains("deleted topic orders"), "{deleted}");
    assert!(!listed_topics(&broker).contains(&orders.to_string()));
}

#[test]
fn start_positions_compression_and_configs() {
    let broker = Broker::start();
    let metrics = unique("metrics");
    let metrics = metrics.as_str();
    broker.ok(
        &[
            "topic",
            "create",
            metrics,
            "--partitions",
            "2",
            "--config",
            "retention.ms=3600000",
        ],
        b"",
    );

    // One batch per codec, all to partition 0, so offsets are predictable.
    let codecs = ["none", "gzip", "snappy", "lz4", "zstd"];
    for codec in codecs {
        let input: String = (0..4).map(|i| format!("{codec}-{i}\n")).collect();
        broker.ok(
            &[
                "produce",
                metrics,
                "--partition",
                "0",
                "--compression",
                codec,
            ],
            input.as_bytes(),
        );
    }
    let all = broker.ok(&["consume", metrics, "--exit-at-end"], b"");
    let expected: Vec<String> = codecs
        .iter()
        .flat_map(|codec| (0..4).map(move |i| format!("{codec}-{i}")))
        .collect();
    assert_eq!(all.lines().collect::<Vec<_>>(), expected);

    let from_offset = broker.ok(
        &[
            "consume",
            metrics,
            "--partition",
            "0",
            "--from",
            "18",
            "--exit-at-end",
        ],
        b"",
    );
    assert_eq!(from_offset, "zstd-2\nzstd-3\n");
    let tail = broker.ok(&["consume", metrics, "--from", "-1", "--exit-at-end"], b"");
    assert_eq!(tail, "zstd-3\n");

    // Everything so far is older than `cutoff`; only "late" is newer.
    std::thread::sleep(Duration::from_millis(50));
    let cutoff = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis();
    std::thread::sleep(Duration::from_millis(50));
    broker.ok(&["produce", metrics, "--partition", "1"], b"late\n");
    let since = broker.ok(
        &[
            "consume",
            metrics,
            "--from",
            &format!("@{cutoff}"),
            "--exit-at-end",
            "--json",
        ],
        b"",
    );
    let records = json_lines(&since);
    assert_eq!(records.len(), 1, "{since}");
    assert_eq!(records[0]["value"], "late");
    assert_eq!(records[0]["partition"], 1);
    let none = broker.ok(
        &[
            "consume",
            metrics,
            "--from",
            "2999-01-01T00:00:00Z",
            "--exit-at-end",
        ],
        b"",
    );
    assert_eq!(none, "");

    broker.ok(
        &[
            "topic",
            "alter-config",
            metrics,
            "--set",
            "segment.ms=600000",
        ],
        b"",
    );
    let described: Value =
        serde_json::from_str(&broker.ok(&["topic", "describe", metrics, "--json"], b""))
            .expect("describe --json");
    let overrides: Vec<(&str, &str)> = described["configs"]
        .as_array()
        .expect("configs")
        .iter()
        .filter(|c| c["source"] == "topic")
        .map(|c| (c["name"].as_str().unwrap(), c["value"].as_str().unwrap()))
        .collect();
    assert_eq!(
        overrides,
        vec![("retention.ms", "3600000"), ("segment.ms", "600000")],
        "alter-config must keep the other overrides"
    );
    broker.ok(
        &["topic", "alter-config", metrics, "--delete", "retention.ms"],
        b"",
    );
    let described: Value =
        serde_json::from_str(&broker.ok(&["topic", "describe", metrics, "--json"], b""))
            .expect("describe --json");
    assert!(described["configs"]
        .as_array()
        .expect("configs")
        .iter()
        .all(|c| c["name"] != "retention.ms" || c["source"] != "topic"));
}

#[test]
fn errors_exit_non_zero() {
    let broker = Broker::start();
    let strict = unique("strict");
    let strict = strict.as_str();
    let missing = broker.run(&["topic", "describe", "strom-no-such-topic"], b"");
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("strom-no-such-topic"));

    broker.ok(&["topic", "create", strict], b"");
    let bad_line = broker.run(
        &["produce", strict, "--key-separator", ":"],
        b"k:v\nno separator here\n",
    );
    assert!(!bad_line.status.success());
    assert!(String::from_utf8_lossy(&bad_line.stderr).contains("line 2"));

    let duplicate = broker.run(&["topic", "create", strict], b"");
    assert!(!duplicate.status.success());

    // rdkafka hides the broker's per-resource AlterConfigs error; the command
    // must still notice that nothing was applied.
    let invalid = broker.run(
        &[
            "topic",
            "alter-config",
            strict,
            "--set",
            "retention.ms=not-a-number",
        ],
        b"",
    );
    assert!(!invalid.status.success());
}
