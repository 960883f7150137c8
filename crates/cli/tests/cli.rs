//! End-to-end tests of the `strom` client commands: each test starts a broker
//! from the same binary (`strom serve` on port 0) and drives it with the real
//! `strom topic` / `produce` / `consume` processes over TCP.
//!
//! With `STROM_TEST_BOOTSTRAP=HOST:PORT` the same scenarios run against that
//! cluster instead (e.g. Apache Kafka, to check that Strom behaves the same).

mod common;

use common::*;
use serde_json::Value;
use std::time::Duration;

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
