//! End-to-end test of `strom txn` and `strom producers`: a broker from the
//! same binary (`strom serve` on port 0), an idempotent `strom produce` and a
//! transactional librdkafka producer, then the commands' JSON output.
//!
//! With `STROM_TEST_BOOTSTRAP=HOST:PORT` the scenario runs against that
//! cluster instead (e.g. Apache Kafka, to check that Strom behaves the same).

mod common;

use common::*;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use serde_json::Value;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(20);

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
