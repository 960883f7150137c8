//! End-to-end test of `strom group`: a broker from the same binary (`strom
//! serve` on port 0), records produced and consumed by a group with the real
//! `strom produce` / `consume` processes, then the group listed, described,
//! its offsets reset and the group deleted, all over TCP.
//!
//! With `STROM_TEST_BOOTSTRAP=HOST:PORT` the scenario runs against that
//! cluster instead (e.g. Apache Kafka, to check that Strom behaves the same).

mod common;

use common::*;
use serde_json::Value;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Long enough for a consumer to join, including the broker's initial
/// rebalance delay (3 s by default, as in Kafka).
const JOIN_TIMEOUT: Duration = Duration::from_secs(30);

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
