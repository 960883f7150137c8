//! End-to-end test of `strom txn` and `strom producers`: a broker from the
//! same binary (`strom serve` on port 0), an idempotent `strom produce` and a
//! transactional librdkafka producer, then the commands' JSON output.
//!
//! With `STROM_TEST_BOOTSTRAP=HOST:PORT` the scenario runs against that
//! cluster instead (e.g. Apache Kafka, to check that Strom behaves the same).

use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const STROM: &str = env!("CARGO_BIN_EXE_strom");
const BROKER_START_TIMEOUT: Duration = Duration::from_secs(30);
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
const TIMEOUT: Duration = Duration::from_secs(20);

/// A broker child process, killed when dropped (also when the test panics),
/// or an external cluster named by STROM_TEST_BOOTSTRAP.
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

        // Keep draining stdout so the broker never blocks on a full pipe.
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

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(STROM);
        command
            .args(args)
            .env("STROM_BOOTSTRAP", &self.bootstrap)
            .env("RUST_LOG", "warn");
        command
    }

    /// Runs `strom ARGS` against this broker, feeding `stdin`, and waits at
    /// most COMMAND_TIMEOUT for it.
    fn run(&self, args: &[&str], stdin: &[u8]) -> Output {
        let mut child = self
            .command(args)
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
        let status = wait_at_most(&mut child, COMMAND_TIMEOUT, args);
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

    /// Like `run`, but the command must fail; returns its stderr.
    fn fails(&self, args: &[&str]) -> String {
        let output = self.run(args, b"");
        assert!(
            !output.status.success(),
            "`strom {}` should have failed\nstdout:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout)
        );
        String::from_utf8_lossy(&output.stderr).into_owned()
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.ok(args, b"");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
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

fn wait_at_most(child: &mut Child, limit: Duration, args: &[&str]) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait for strom") {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`strom {}` did not finish within {limit:?}", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

/// A name unique to this run, so the scenario can share a cluster.
fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .subsec_nanos();
    format!("{name}-{}-{nanos}", std::process::id())
}

#[test]
fn producers_and_transactions_are_listed() {
    let broker = Broker::start();
    let topic = unique("txn-cli");
    broker.ok(&["topic", "create", &topic, "--partitions", "2"], b"");

    // An idempotent producer: three records, one batch, in partition 1.
    broker.ok(
        &[
            "produce",
            &topic,
            "--partition",
            "1",
            "-X",
            "enable.idempotence=true",
        ],
        b"a\nb\nc\n",
    );
    let producers = broker.json(&["producers", &topic, "--json"]);
    let producers = producers.as_array().expect("producers is an array");
    assert_eq!(producers.len(), 1, "{producers:?}");
    let idempotent = &producers[0];
    assert_eq!(idempotent["topic"], topic.as_str());
    assert_eq!(idempotent["partition"], 1);
    assert!(idempotent["producer_id"].as_i64().unwrap() >= 0);
    assert_eq!(idempotent["producer_epoch"], 0);
    assert_eq!(idempotent["last_sequence"], 2);
    assert_eq!(idempotent["current_txn_start_offset"], -1);
    let only_0 = broker.json(&["producers", &topic, "--partition", "0", "--json"]);
    assert_eq!(only_0, Value::Array(vec![]));
    let table = broker.ok(&["producers", &topic], b"");
    assert!(table.starts_with("PARTITION"), "{table}");
    assert!(broker
        .fails(&["producers", &topic, "--partition", "7"])
        .contains("UnknownTopicOrPartition"),);

    // A transaction left open: listed, described, and its producer shown.
    let txn_id = unique("cli-txn");
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &broker.bootstrap)
        .set("broker.address.family", "v4")
        .set("transactional.id", &txn_id)
        .create()
        .expect("producer");
    producer
        .init_transactions(TIMEOUT)
        .expect("init_transactions");
    producer.begin_transaction().unwrap();
    producer
        .send(
            BaseRecord::<[u8], [u8]>::to(&topic)
                .partition(0)
                .payload(b"t"),
        )
        .map_err(|(e, _)| e)
        .expect("send");
    producer.flush(TIMEOUT).expect("flush");

    let listed = broker.json(&["txn", "list", "--json"]);
    let mine: Vec<&Value> = listed
        .as_array()
        .expect("txn list is an array")
        .iter()
        .filter(|t| t["transactional_id"] == txn_id.as_str())
        .collect();
    assert_eq!(mine.len(), 1, "{listed}");
    assert_eq!(mine[0]["state"], "Ongoing");
    let producer_id = mine[0]["producer_id"].as_i64().unwrap();
    let committed = broker.json(&["txn", "list", "--state", "CompleteCommit", "--json"]);
    assert!(
        !committed
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["transactional_id"] == txn_id.as_str()),
        "{committed}"
    );
    assert!(broker
        .fails(&["txn", "list", "--state", "Sleeping"])
        .contains("Sleeping"));

    let described = broker.json(&["txn", "describe", &txn_id, "--json"]);
    assert_eq!(described["state"], "Ongoing");
    assert_eq!(described["producer_id"], producer_id);
    assert_eq!(
        described["partitions"],
        serde_json::json!([{ "topic": topic, "partition": 0 }])
    );
    assert!(broker
        .ok(&["txn", "describe", &txn_id], b"")
        .contains("Ongoing"));
    assert!(broker
        .fails(&["txn", "describe", "nobody"])
        .contains("TransactionalIdNotFound"));

    let in_txn = broker.json(&["producers", &topic, "--partition", "0", "--json"]);
    assert_eq!(in_txn[0]["producer_id"], producer_id);
    assert_eq!(in_txn[0]["current_txn_start_offset"], 0);

    producer.commit_transaction(TIMEOUT).unwrap();
    let described = broker.json(&["txn", "describe", &txn_id, "--json"]);
    assert_eq!(described["state"], "CompleteCommit");
    let after = broker.json(&["producers", &topic, "--partition", "0", "--json"]);
    assert_eq!(after[0]["current_txn_start_offset"], -1);
}
