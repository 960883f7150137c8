//! End-to-end test of `strom group`: a broker from the same binary (`strom
//! serve` on port 0), records produced and consumed by a group with the real
//! `strom produce` / `consume` processes, then the group listed, described,
//! its offsets reset and the group deleted, all over TCP.
//!
//! With `STROM_TEST_BOOTSTRAP=HOST:PORT` the scenario runs against that
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
/// Long enough for a consumer to join, including the broker's initial
/// rebalance delay (3 s by default, as in Kafka).
const JOIN_TIMEOUT: Duration = Duration::from_secs(30);

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

/// The group's entry in `group list --json`, if listed.
fn listed(broker: &Broker, group: &str) -> Option<Value> {
    broker
        .json(&["group", "list", "--json"])
        .as_array()
        .expect("group list is an array")
        .iter()
        .find(|g| g["group"] == group)
        .cloned()
}

/// (committed offset, log end offset, lag) of the topic's partition 0 in
/// `group describe --json`.
fn partition_zero(broker: &Broker, group: &str, topic: &str) -> (Value, Value, Value) {
    let described = broker.json(&["group", "describe", group, "--json"]);
    let offsets = described["offsets"].as_array().expect("offsets");
    let p = offsets
        .iter()
        .find(|p| p["topic"] == topic && p["partition"] == 0)
        .unwrap_or_else(|| panic!("no {topic}/0 in {described:#}"));
    (
        p["committed_offset"].clone(),
        p["log_end_offset"].clone(),
        p["lag"].clone(),
    )
}

/// `reset-offsets` with --json; returns (current, new) of partition 0.
fn reset(broker: &Broker, group: &str, topic: &str, how: &[&str]) -> (Value, Value) {
    let mut args = vec!["group", "reset-offsets", group, "--topic", topic, "--json"];
    args.extend_from_slice(how);
    let report = broker.json(&args);
    assert_eq!(report["executed"], how.contains(&"--execute"), "{report:#}");
    let p = &report["partitions"][0];
    assert_eq!(p["partition"], 0, "{report:#}");
    (p["current_offset"].clone(), p["new_offset"].clone())
}

#[test]
fn group_list_describe_reset_and_delete() {
    let broker = Broker::start();
    let topic = unique("grp-orders");
    let group = unique("grp-g");
    let (topic, group) = (topic.as_str(), group.as_str());

    broker.ok(&["topic", "create", topic, "--partitions", "1"], b"");
    let input: String = (0..10).map(|i| format!("record-{i}\n")).collect();
    broker.ok(&["produce", topic], input.as_bytes());
    let consumed = broker.ok(
        &[
            "consume",
            topic,
            "--group",
            group,
            "--count",
            "4",
            "--timeout-ms",
            "30000",
        ],
        b"",
    );
    assert_eq!(consumed.lines().count(), 4, "{consumed}");

    let entry = listed(&broker, group).expect("the group is listed");
    assert_eq!(entry["state"], "Empty", "{entry:#}");
    assert_eq!(entry["protocol_type"], "consumer", "{entry:#}");
    let table = broker.ok(&["group", "list"], b"");
    assert!(
        table
            .lines()
            .any(|l| l.split_whitespace().next() == Some(group)),
        "{table}"
    );

    assert_eq!(
        partition_zero(&broker, group, topic),
        (4.into(), 10.into(), 6.into())
    );
    let table = broker.ok(&["group", "describe", group], b"");
    assert!(table.contains("LOG-END-OFFSET"), "{table}");

    // A dry run shows the change and commits nothing.
    assert_eq!(
        reset(&broker, group, topic, &["--to-earliest"]),
        (4.into(), 0.into())
    );
    assert_eq!(partition_zero(&broker, group, topic).0, 4);
    let table = broker.ok(
        &[
            "group",
            "reset-offsets",
            group,
            "--topic",
            topic,
            "--to-latest",
        ],
        b"",
    );
    assert!(table.contains("NEW-OFFSET"), "{table}");
    assert_eq!(partition_zero(&broker, group, topic).0, 4);

    assert_eq!(
        reset(&broker, group, topic, &["--to-earliest", "--execute"]),
        (4.into(), 0.into())
    );
    assert_eq!(
        partition_zero(&broker, group, topic),
        (0.into(), 10.into(), 10.into())
    );
    assert_eq!(
        reset(&broker, group, topic, &["--shift-by", "3", "--execute"]),
        (0.into(), 3.into())
    );
    assert_eq!(partition_zero(&broker, group, topic).0, 3);
    // Clamped to the log end offset, as Kafka does.
    assert_eq!(
        reset(&broker, group, topic, &["--to-offset", "99"]),
        (3.into(), 10.into())
    );
    assert_eq!(
        reset(
            &broker,
            group,
            topic,
            &["--to-datetime", "2999-01-01T00:00:00Z"]
        ),
        (3.into(), 10.into())
    );
    assert_eq!(
        reset(&broker, group, topic, &["--to-datetime", "@0"]),
        (3.into(), 0.into())
    );

    // While a member is active, offsets cannot be reset nor the group deleted.
    let mut member = broker
        .command(&["consume", topic, "--group", group, "--timeout-ms", "8000"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the group member");
    let deadline = Instant::now() + JOIN_TIMEOUT;
    let described = loop {
        let described = broker.json(&["group", "describe", group, "--json"]);
        if described["state"] == "Stable" {
            break described;
        }
        assert!(
            Instant::now() < deadline,
            "the member did not join: {described:#}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let members = described["members"].as_array().expect("members");
    assert_eq!(members.len(), 1, "{described:#}");
    assert_eq!(
        members[0]["assignment"],
        serde_json::json!([{ "topic": topic, "partitions": [0] }]),
        "{described:#}"
    );
    let refused = broker.fails(&[
        "group",
        "reset-offsets",
        group,
        "--topic",
        topic,
        "--to-earliest",
        "--execute",
    ]);
    assert!(refused.contains("inactive"), "{refused}");
    let refused = broker.fails(&["group", "delete", group]);
    assert!(refused.contains("NonEmptyGroup"), "{refused}");
    let status = wait_at_most(&mut member, COMMAND_TIMEOUT, &["consume", "--group", group]);
    assert!(status.success(), "the member failed: {status}");

    let deleted = broker.ok(&["group", "delete", group], b"");
    assert!(
        deleted.contains(&format!("deleted group {group}")),
        "{deleted}"
    );
    assert!(listed(&broker, group).is_none());
    let missing = broker.fails(&["group", "delete", group]);
    assert!(missing.contains("GroupIdNotFound"), "{missing}");
    let missing = broker.fails(&["group", "describe", group]);
    assert!(missing.contains("does not exist"), "{missing}");
}
