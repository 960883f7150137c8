//! Distributed mode, in-process: two workers form a group, share the
//! connectors and tasks, see the same configs and statuses through the
//! compacted topics, and the survivor takes over when one leaves. (The
//! CLI's tests kill a worker process with SIGKILL instead.)

mod common;

use common::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;
use strom_connect::{PluginRegistry, Worker};

const WAIT: Duration = Duration::from_secs(90);

fn workers_of(status: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    out.insert(
        status["connector"]["worker_id"]
            .as_str()
            .unwrap_or("")
            .to_string(),
    );
    for t in status["tasks"].as_array().into_iter().flatten() {
        out.insert(t["worker_id"].as_str().unwrap_or("").to_string());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_workers_share_and_take_over() {
    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "dist-lines", 2).await;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    let output = dir.path().join("out.txt");
    std::fs::write(
        &input,
        (0..500).map(|i| format!("a{i}\n")).collect::<String>(),
    )
    .unwrap();
    let config = || {
        worker_config(
            &bootstrap,
            &[
                ("group.id", "dist-test"),
                ("config.storage.topic", "dist-configs"),
                ("offset.storage.topic", "dist-offsets"),
                ("status.storage.topic", "dist-status"),
                ("offset.storage.partitions", "5"),
                (
                    "value.converter",
                    "org.apache.kafka.connect.storage.StringConverter",
                ),
                (
                    "key.converter",
                    "org.apache.kafka.connect.storage.StringConverter",
                ),
            ],
        )
    };
    let first = Worker::distributed(config(), PluginRegistry::builtin())
        .await
        .expect("worker 1");
    let second = Worker::distributed(config(), PluginRegistry::builtin())
        .await
        .expect("worker 2");
    let rest1 = Rest::new(&first.rest_url());
    let rest2 = Rest::new(&second.rest_url());

    let source = json!({"name": "d-src", "config": {"connector.class": "FileStreamSource",
        "file": input.to_str().unwrap(), "topic": "dist-lines"}});
    let (status, body) = rest2
        .call("POST", "/connectors", Some(&source.to_string()))
        .await;
    assert_eq!(status, 201, "{body}");
    let sink = json!({"name": "d-sink", "config": {"connector.class": "FileStreamSink", "tasks.max": "2",
        "file": output.to_str().unwrap(), "topics": "dist-lines"}});
    let (status, body) = rest1
        .call("POST", "/connectors", Some(&sink.to_string()))
        .await;
    assert_eq!(status, 201, "{body}");
    // The other worker sees it through the config topic: a conflict.
    let (status, _) = rest2
        .call("POST", "/connectors", Some(&sink.to_string()))
        .await;
    assert_eq!(status, 409);

    let src = rest1
        .wait_for("/connectors/d-src/status", WAIT, |s| all_running(s, 1))
        .await;
    let snk = rest2
        .wait_for("/connectors/d-sink/status", WAIT, |s| all_running(s, 2))
        .await;
    let mut used: BTreeSet<String> = workers_of(&src);
    used.extend(workers_of(&snk));
    assert_eq!(
        used.len(),
        2,
        "the work is spread over both workers: {src} {snk}"
    );
    wait_until(WAIT, "the first 500 lines", || {
        std::fs::read_to_string(&output).is_ok_and(|o| o.lines().count() >= 500)
    })
    .await;

    // One leaves; the other runs everything.
    second.stop().await;
    // It left the group (LeaveGroup), not just went quiet: one member now.
    let group_bootstrap = bootstrap.clone();
    let members = tokio::task::spawn_blocking(move || {
        use rdkafka::consumer::Consumer as _;
        let consumer: rdkafka::consumer::BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &group_bootstrap)
            .create()
            .unwrap();
        let groups = consumer
            .fetch_group_list(Some("dist-test"), Duration::from_secs(10))
            .unwrap();
        let group = &groups.groups()[0];
        assert_eq!(group.protocol_type(), "connect");
        group.members().len()
    })
    .await
    .unwrap();
    assert_eq!(members, 1, "the stopped worker is still a member");
    let expected_worker = first.rest_url().trim_start_matches("http://").to_string();
    rest1
        .wait_for("/connectors/d-sink/status", WAIT, |s| {
            all_running(s, 2) && workers_of(s) == BTreeSet::from([expected_worker.clone()])
        })
        .await;
    rest1
        .wait_for("/connectors/d-src/status", WAIT, |s| {
            all_running(s, 1) && workers_of(s) == BTreeSet::from([expected_worker.clone()])
        })
        .await;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&input)
        .unwrap();
    use std::io::Write as _;
    file.write_all(
        (0..500)
            .map(|i| format!("b{i}\n"))
            .collect::<String>()
            .as_bytes(),
    )
    .unwrap();
    drop(file);
    wait_until(WAIT, "every line in the output", || {
        let Ok(out) = std::fs::read_to_string(&output) else {
            return false;
        };
        let seen: BTreeSet<&str> = out.lines().collect();
        (0..500).all(|i| {
            seen.contains(format!("a{i}").as_str()) && seen.contains(format!("b{i}").as_str())
        })
    })
    .await;
    // Offsets of the source are in the offsets topic.
    let offsets = rest1.get("/connectors/d-src/offsets").await;
    assert_eq!(
        offsets["offsets"][0]["offset"]["position"],
        std::fs::metadata(&input).unwrap().len()
    );
    first.stop().await;
}

/// Exactly-once source (KIP-618): each poll's records and their offsets in
/// one transaction; a read_committed consumer sees every line exactly once,
/// also across a worker restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_once_source() {
    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "eos-lines", 1).await;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(
        &input,
        (0..300).map(|i| format!("x{i}\n")).collect::<String>(),
    )
    .unwrap();
    let config = || {
        worker_config(
            &bootstrap,
            &[
                ("group.id", "eos-test"),
                ("config.storage.topic", "eos-configs"),
                ("offset.storage.topic", "eos-offsets"),
                ("status.storage.topic", "eos-status"),
                ("offset.storage.partitions", "3"),
                ("exactly.once.source.support", "enabled"),
                (
                    "value.converter",
                    "org.apache.kafka.connect.storage.StringConverter",
                ),
            ],
        )
    };
    let worker = Worker::distributed(config(), PluginRegistry::builtin())
        .await
        .expect("worker");
    let rest = Rest::new(&worker.rest_url());
    let source = json!({"name": "eos-src", "config": {"connector.class": "FileStreamSource",
        "file": input.to_str().unwrap(), "topic": "eos-lines", "batch.size": "50",
        "exactly.once.support": "required"}});
    let (status, body) = rest
        .call("POST", "/connectors", Some(&source.to_string()))
        .await;
    assert_eq!(status, 201, "{body}");
    rest.wait_for("/connectors/eos-src/status", WAIT, |s| all_running(s, 1))
        .await;
    let committed = consume(&bootstrap, "eos-lines", 300, WAIT).await;
    assert_eq!(committed.len(), 300);
    worker.stop().await;

    use std::io::Write as _;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&input)
        .unwrap();
    file.write_all(
        (300..600)
            .map(|i| format!("x{i}\n"))
            .collect::<String>()
            .as_bytes(),
    )
    .unwrap();
    drop(file);
    let worker = Worker::distributed(config(), PluginRegistry::builtin())
        .await
        .expect("worker again");
    let rest = Rest::new(&worker.rest_url());
    rest.wait_for("/connectors/eos-src/status", WAIT, |s| all_running(s, 1))
        .await;
    let _ = consume(&bootstrap, "eos-lines", 600, WAIT).await;
    let all = consume(&bootstrap, "eos-lines", 601, Duration::from_secs(3)).await;
    let values: Vec<String> = all
        .iter()
        .map(|r| String::from_utf8(r.value.clone().unwrap()).unwrap())
        .collect();
    let expected: Vec<String> = (0..600).map(|i| format!("x{i}")).collect();
    assert_eq!(values, expected, "every line exactly once, in order");
    // Transaction markers take offsets: the log is longer than its records.
    let consumer: rdkafka::consumer::BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let (_, high) = tokio::task::spawn_blocking(move || {
        rdkafka::consumer::Consumer::fetch_watermarks(
            &consumer,
            "eos-lines",
            0,
            Duration::from_secs(10),
        )
        .unwrap()
    })
    .await
    .unwrap();
    assert!(high > 600, "no transaction markers (high watermark {high})");
    // A source without exactly-once support is refused when it is required.
    let bad = json!({"name": "eos-bad", "config": {"connector.class": "MqttSource",
        "mqtt.server.uri": "tcp://127.0.0.1:1", "mqtt.topics": "a", "kafka.topic": "eos-lines",
        "exactly.once.support": "required"}});
    let (status, error) = rest
        .call("POST", "/connectors", Some(&bad.to_string()))
        .await;
    assert_eq!(status, 400);
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("exactly.once.support"),
        "{error}"
    );
    worker.stop().await;
}
