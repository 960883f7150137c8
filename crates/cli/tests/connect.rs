//! `strom connect` and `strom connector` end to end, as processes: a
//! broker from the same binary, Connect workers as `strom connect
//! distributed` processes driven with `strom connector`. A worker joins (the
//! work is rebalanced over both), then one is killed with SIGKILL: its
//! connectors and tasks move to the survivor and continue without loss; the
//! exactly-once source leaves every line in Kafka exactly once.
//! `strom connect standalone` runs connector files and resumes after a
//! restart.

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(90);

struct ConnectWorker {
    child: Child,
    url: String,
    id: String,
    log: std::path::PathBuf,
}

impl ConnectWorker {
    fn start(args: &[&str], dir: &Path, name: &str) -> ConnectWorker {
        let log = dir.join(format!("{name}.log"));
        let mut child = Command::new(STROM)
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn strom connect");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.trim().strip_prefix("REST API on ") {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(url.to_string());
                    }
                }
            }
        });
        let url = rx.recv_timeout(WAIT).unwrap_or_else(|_| {
            panic!(
                "`strom {}` did not print its REST URL; log:\n{}",
                args.join(" "),
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        });
        let id = url.trim_start_matches("http://").to_string();
        ConnectWorker {
            child,
            url,
            id,
            log,
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn terminate(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(
            self.child
                .try_wait()
                .ok()
                .flatten()
                .is_some_and(|s| s.success()),
            "the worker did not exit cleanly after SIGTERM"
        );
    }
}

impl Drop for ConnectWorker {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            eprintln!("--- last lines of {} ---", self.log.display());
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

fn connector(broker: &Broker, url: &str, args: &[&str]) -> String {
    let mut all = vec!["connector", "--url", url];
    all.extend_from_slice(args);
    broker.ok(&all, b"")
}

fn status(broker: &Broker, url: &str, name: &str) -> Value {
    let out = connector(broker, url, &["status", name, "--json"]);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// Every worker id in a connector's status, and whether all of it runs.
fn placement(status: &Value) -> (bool, BTreeSet<String>) {
    let mut ids = BTreeSet::from([status["connector"]["worker_id"]
        .as_str()
        .unwrap_or("")
        .to_string()]);
    let mut running = status["connector"]["state"] == "RUNNING";
    let tasks = status["tasks"].as_array().cloned().unwrap_or_default();
    running &= !tasks.is_empty();
    for t in tasks {
        running &= t["state"] == "RUNNING";
        ids.insert(t["worker_id"].as_str().unwrap_or("").to_string());
    }
    (running, ids)
}

fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn append_lines(path: &Path, range: std::ops::Range<usize>) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    let text: String = range
        .map(|i| format!("reading {i}: {}\n", i * 7 % 1000))
        .collect();
    file.write_all(text.as_bytes()).unwrap();
}

fn expected_lines(range: std::ops::Range<usize>) -> Vec<String> {
    range
        .map(|i| format!("reading {i}: {}", i * 7 % 1000))
        .collect()
}

#[test]
fn distributed_workers_rebalance_and_survive_a_kill() {
    let broker = Broker::start();
    let topic = unique("connect-lines");
    broker.ok(&["topic", "create", &topic, "--partitions", "2"], b"");
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    let output = dir.path().join("out.txt");
    append_lines(&input, 0..20_000);
    let group = unique("connect-cluster");
    let worker_toml = dir.path().join("worker.toml");
    std::fs::write(
        &worker_toml,
        format!(
            r#""bootstrap.servers" = "{}"
"group.id" = "{group}"
listeners = "http://127.0.0.1:0"
"config.storage.topic" = "{group}-configs"
"offset.storage.topic" = "{group}-offsets"
"status.storage.topic" = "{group}-status"
"offset.storage.partitions" = 5
"heartbeat.interval.ms" = 500
"session.timeout.ms" = 6000
"offset.flush.interval.ms" = 500
"exactly.once.source.support" = "enabled"
"key.converter" = "org.apache.kafka.connect.storage.StringConverter"
"value.converter" = "org.apache.kafka.connect.storage.StringConverter"
"#,
            broker.bootstrap
        ),
    )
    .unwrap();
    let toml = worker_toml.to_str().unwrap();
    let mut first = ConnectWorker::start(
        &["connect", "distributed", "--config", toml],
        dir.path(),
        "worker-1",
    );

    let source_json = dir.path().join("source.json");
    std::fs::write(
        &source_json,
        serde_json::json!({"name": "lines-in", "config": {
            "connector.class": "FileStreamSource", "file": input.to_str().unwrap(), "topic": topic,
            "exactly.once.support": "required", "batch.size": "500"}})
        .to_string(),
    )
    .unwrap();
    let created = connector(
        &broker,
        &first.url,
        &["create", source_json.to_str().unwrap()],
    );
    assert!(created.contains("\"lines-in\""), "{created}");
    connector(
        &broker,
        &first.url,
        &[
            "create",
            "--name",
            "lines-out",
            "-c",
            "connector.class=FileStreamSink",
            "-c",
            &format!("file={}", output.display()),
            "-c",
            &format!("topics={topic}"),
        ],
    );
    // A second create of the same name is a conflict.
    let conflict = broker.fails(&[
        "connector",
        "--url",
        &first.url,
        "create",
        source_json.to_str().unwrap(),
    ]);
    assert!(conflict.contains("409"), "{conflict}");
    wait_for("both connectors running on worker 1", || {
        placement(&status(&broker, &first.url, "lines-in")).0
            && placement(&status(&broker, &first.url, "lines-out")).0
    });

    // A second worker joins: the work is spread over both.
    let mut second = ConnectWorker::start(
        &["connect", "distributed", "--config", toml],
        dir.path(),
        "worker-2",
    );
    wait_for("the work spread over both workers", || {
        let (a_running, a) = placement(&status(&broker, &second.url, "lines-in"));
        let (b_running, b) = placement(&status(&broker, &second.url, "lines-out"));
        let all: BTreeSet<String> = a.union(&b).cloned().collect();
        a_running && b_running && all.contains(&first.id) && all.contains(&second.id)
    });
    let listed = connector(&broker, &second.url, &["list"]);
    assert!(
        listed.contains("lines-in") && listed.contains("lines-out") && listed.contains("RUNNING"),
        "{listed}"
    );

    // Kill (SIGKILL) the worker running the exactly-once source task.
    let source_owner = status(&broker, &first.url, "lines-in")["tasks"][0]["worker_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (victim, survivor) = if source_owner == first.id {
        (&mut first, &second)
    } else {
        (&mut second, &first)
    };
    victim.kill();
    append_lines(&input, 20_000..40_000);
    wait_for("everything running on the survivor", || {
        let (a_running, a) = placement(&status(&broker, &survivor.url, "lines-in"));
        let (b_running, b) = placement(&status(&broker, &survivor.url, "lines-out"));
        a_running
            && b_running
            && a == BTreeSet::from([survivor.id.clone()])
            && b == BTreeSet::from([survivor.id.clone()])
    });
    let expected = expected_lines(0..40_000);
    wait_for("every line in the output file", || {
        let Ok(out) = std::fs::read_to_string(&output) else {
            return false;
        };
        let seen: BTreeSet<&str> = out.lines().collect();
        expected.iter().all(|l| seen.contains(l.as_str()))
    });
    // Exactly once in Kafka (read_committed), in order.
    let consumed = broker.ok(
        &[
            "consume",
            &topic,
            "--from",
            "beginning",
            "--exit-at-end",
            "--partition",
            "0",
        ],
        b"",
    );
    let consumed1 = broker.ok(
        &[
            "consume",
            &topic,
            "--from",
            "beginning",
            "--exit-at-end",
            "--partition",
            "1",
        ],
        b"",
    );
    let mut lines: Vec<&str> = consumed.lines().chain(consumed1.lines()).collect();
    assert_eq!(
        lines.len(),
        expected.len(),
        "every line exactly once in {topic}"
    );
    lines.sort_unstable();
    let mut sorted = expected.clone();
    sorted.sort_unstable();
    assert_eq!(lines, sorted);

    // Pause and resume through the CLI.
    connector(&broker, &survivor.url, &["pause", "lines-out"]);
    wait_for("paused", || {
        status(&broker, &survivor.url, "lines-out")["connector"]["state"] == "PAUSED"
    });
    connector(&broker, &survivor.url, &["resume", "lines-out"]);
    wait_for("resumed", || {
        placement(&status(&broker, &survivor.url, "lines-out")).0
    });
    connector(
        &broker,
        &survivor.url,
        &["restart", "lines-out", "--include-tasks"],
    );
    connector(&broker, &survivor.url, &["delete", "lines-out"]);
    let missing = broker.fails(&["connector", "--url", &survivor.url, "status", "lines-out"]);
    assert!(missing.contains("404"), "{missing}");
}

#[test]
fn standalone_runs_connector_files_and_resumes() {
    let broker = Broker::start();
    let topic = unique("standalone-lines");
    broker.ok(&["topic", "create", &topic, "--partitions", "1"], b"");
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    let output = dir.path().join("out.txt");
    append_lines(&input, 0..1000);
    let worker_toml = dir.path().join("worker.toml");
    std::fs::write(
        &worker_toml,
        format!(
            "\"bootstrap.servers\" = \"{}\"\nlisteners = \"http://127.0.0.1:0\"\n\"offset.storage.file.filename\" = \"{}\"\n\"offset.flush.interval.ms\" = 500\n\"value.converter\" = \"org.apache.kafka.connect.converters.ByteArrayConverter\"\n",
            broker.bootstrap,
            dir.path().join("offsets.json").display()
        ),
    )
    .unwrap();
    // One connector as JSON, one as Java properties.
    let source = dir.path().join("source.json");
    std::fs::write(&source, serde_json::json!({"name": "in", "config": {"connector.class": "FileStreamSource", "file": input.to_str().unwrap(), "topic": topic}}).to_string()).unwrap();
    let sink = dir.path().join("sink.properties");
    std::fs::write(&sink, format!("name=out\nconnector.class=org.apache.kafka.connect.file.FileStreamSinkConnector\n# comment\nfile={}\ntopics={topic}\n", output.display())).unwrap();
    let args = [
        "connect",
        "standalone",
        worker_toml.to_str().unwrap(),
        source.to_str().unwrap(),
        sink.to_str().unwrap(),
    ];
    let mut worker = ConnectWorker::start(&args, dir.path(), "standalone-1");
    wait_for("the first 1000 lines", || {
        std::fs::read(&output)
            .is_ok_and(|o| o.len() == std::fs::metadata(&input).unwrap().len() as usize)
    });
    worker.terminate();
    append_lines(&input, 1000..2000);
    let _worker = ConnectWorker::start(&args, dir.path(), "standalone-2");
    wait_for("the output to equal the input", || {
        std::fs::read(&output).is_ok_and(|o| o == std::fs::read(&input).unwrap())
    });

    // A bad connector file is refused at start, naming the fields.
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"name": "bad", "connector.class": "FileStreamSource"}"#,
    )
    .unwrap();
    let other_toml = dir.path().join("other.toml");
    std::fs::write(&other_toml, format!("\"bootstrap.servers\" = \"{}\"\nlisteners = \"http://127.0.0.1:0\"\n\"offset.storage.file.filename\" = \"{}\"\n", broker.bootstrap, dir.path().join("o2.json").display())).unwrap();
    let error = broker.fails(&[
        "connect",
        "standalone",
        other_toml.to_str().unwrap(),
        bad.to_str().unwrap(),
    ]);
    assert!(
        error.contains("file:") && error.contains("topic:"),
        "{error}"
    );
}
