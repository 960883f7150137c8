//! Transactions with librdkafka's transactional producer and read_committed
//! consumers: atomic commit and abort, zombie fencing, the last stable
//! offset holding consumers back, offsets committed in a transaction.

mod common;

use common::*;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use std::time::Duration;
use strom_testkit::TestBroker;

fn txn_producer(bootstrap: &str, id: &str) -> FutureProducer {
    let producer = common::producer(
        bootstrap,
        &[
            ("transactional.id", id),
            ("transaction.timeout.ms", "30000"),
        ],
    );
    producer
        .init_transactions(TIMEOUT)
        .expect("init_transactions");
    producer
}

fn send_all(producer: &FutureProducer, topic: &str, values: &[(&str, i32)]) {
    let rt = rt();
    for (value, partition) in values {
        let record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic)
            .partition(*partition)
            .payload(value.as_bytes());
        rt.block_on(producer.send(record, TIMEOUT))
            .map_err(|(e, _)| e)
            .expect("send");
    }
}

fn committed_reader(bootstrap: &str, topic: &str, partitions: &[i32]) -> BaseConsumer {
    let consumer: BaseConsumer = client_config(bootstrap)
        .set("group.id", "unused")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        tpl.add_partition_offset(topic, *p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    consumer
}

/// Values read until nothing more arrives for `quiet`.
fn read_values(consumer: &BaseConsumer, quiet: Duration) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(m) = consumer.poll(quiet) {
        out.push(
            String::from_utf8_lossy(m.expect("consume").payload().unwrap_or_default()).into_owned(),
        );
    }
    out.sort();
    out
}

#[test]
fn commit_and_abort_are_atomic_for_read_committed() {
    let broker = TestBroker::start_with(|c| c.transaction_topic_partitions = 3);
    let bootstrap = broker.bootstrap();
    let topic = unique("txn");
    create_topic(&bootstrap, &topic, 2, &[]);
    let producer = txn_producer(&bootstrap, "t-atomic");

    producer.begin_transaction().unwrap();
    send_all(&producer, &topic, &[("c1", 0), ("c2", 1), ("c3", 0)]);
    // Not committed yet: a read_committed consumer sees nothing.
    let reader = committed_reader(&bootstrap, &topic, &[0, 1]);
    assert!(
        read_values(&reader, Duration::from_millis(700)).is_empty(),
        "uncommitted data is invisible"
    );
    producer.commit_transaction(TIMEOUT).unwrap();
    assert_eq!(
        read_values(&reader, Duration::from_secs(2)),
        vec!["c1", "c2", "c3"]
    );

    producer.begin_transaction().unwrap();
    send_all(&producer, &topic, &[("a1", 0), ("a2", 1)]);
    producer.abort_transaction(TIMEOUT).unwrap();
    producer.begin_transaction().unwrap();
    send_all(&producer, &topic, &[("c4", 1)]);
    producer.commit_transaction(TIMEOUT).unwrap();

    let fresh = committed_reader(&bootstrap, &topic, &[0, 1]);
    assert_eq!(
        read_values(&fresh, Duration::from_secs(2)),
        vec!["c1", "c2", "c3", "c4"],
        "aborted data is skipped"
    );
    // read_uncommitted sees every data record (markers are never delivered).
    // (librdkafka reads committed data by default.)
    let all: BaseConsumer = client_config(&bootstrap)
        .set("group.id", "unused")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_uncommitted")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&topic, 0, Offset::Beginning)
        .unwrap();
    tpl.add_partition_offset(&topic, 1, Offset::Beginning)
        .unwrap();
    all.assign(&tpl).unwrap();
    let mut values: Vec<String> = consume(&all, 6)
        .iter()
        .map(|m| String::from_utf8_lossy(m.payload().unwrap()).into_owned())
        .collect();
    values.sort();
    assert_eq!(values, vec!["a1", "a2", "c1", "c2", "c3", "c4"]);

    // The decisions survive a restart.
    drop((producer, reader, fresh, all));
    broker.restart();
    let after = committed_reader(&broker.bootstrap(), &topic, &[0, 1]);
    assert_eq!(
        read_values(&after, Duration::from_secs(2)),
        vec!["c1", "c2", "c3", "c4"]
    );
}

#[test]
fn a_new_producer_fences_the_zombie_and_aborts_its_transaction() {
    let broker = TestBroker::start_with(|c| c.transaction_topic_partitions = 3);
    let bootstrap = broker.bootstrap();
    let topic = unique("zombie");
    create_topic(&bootstrap, &topic, 1, &[]);
    let zombie = txn_producer(&bootstrap, "t-zombie");
    zombie.begin_transaction().unwrap();
    send_all(&zombie, &topic, &[("zombie", 0)]);
    // The same transactional id starts again elsewhere.
    let fresh = txn_producer(&bootstrap, "t-zombie");
    assert!(
        zombie.commit_transaction(TIMEOUT).is_err(),
        "the zombie is fenced"
    );
    fresh.begin_transaction().unwrap();
    send_all(&fresh, &topic, &[("fresh", 0)]);
    fresh.commit_transaction(TIMEOUT).unwrap();
    let reader = committed_reader(&bootstrap, &topic, &[0]);
    assert_eq!(
        read_values(&reader, Duration::from_secs(2)),
        vec!["fresh"],
        "the zombie's write was aborted"
    );
}

#[test]
fn offsets_sent_to_a_transaction_commit_with_it() {
    let broker = TestBroker::start_with(|c| {
        c.transaction_topic_partitions = 3;
        c.offsets_topic_partitions = 3;
    });
    let bootstrap = broker.bootstrap();
    let input = unique("in");
    create_topic(&bootstrap, &input, 1, &[]);
    let producer = producer(&bootstrap, &[]);
    for i in 0..4 {
        send(
            &producer,
            &input,
            Some(0),
            None,
            Some(format!("{i}").as_bytes()),
        );
    }
    let group = unique("eos");
    let consumer: BaseConsumer = client_config(&bootstrap)
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        // read_uncommitted: OffsetFetch without require_stable answers at
        // once; a read_committed consumer would wait while offsets are
        // pending in the transaction (UNSTABLE_OFFSET_COMMIT, as in Kafka).
        .set("isolation.level", "read_uncommitted")
        .create()
        .unwrap();
    let txn = txn_producer(&bootstrap, "t-eos");
    let committed = |consumer: &BaseConsumer| {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&input, 0);
        consumer.committed_offsets(tpl, TIMEOUT).unwrap().elements()[0].offset()
    };
    for commit in [false, true] {
        txn.begin_transaction().unwrap();
        let mut offsets = TopicPartitionList::new();
        offsets
            .add_partition_offset(&input, 0, Offset::Offset(if commit { 4 } else { 2 }))
            .unwrap();
        let metadata = consumer.group_metadata().expect("group metadata");
        txn.send_offsets_to_transaction(&offsets, &metadata, TIMEOUT)
            .unwrap();
        assert_eq!(
            committed(&consumer),
            Offset::Invalid,
            "not visible before the transaction ends"
        );
        if commit {
            txn.commit_transaction(TIMEOUT).unwrap();
        } else {
            txn.abort_transaction(TIMEOUT).unwrap();
            assert_eq!(
                committed(&consumer),
                Offset::Invalid,
                "an aborted transaction commits no offsets"
            );
        }
    }
    assert_eq!(committed(&consumer), Offset::Offset(4));
}

/// Every transaction leaves exactly one marker per partition. The broker's
/// timer retries markers still owed (Prepare states); it must not write a
/// second copy of markers that EndTxn is writing at that moment: the copy
/// could land inside the producer's next transaction and abort part of it
/// (found with the Java client: an extra offset between two transactions).
/// flush=always makes each marker append slow, widening the window.
#[test]
fn each_transaction_writes_its_markers_once() {
    let broker = TestBroker::start_with(|c| c.flush = strom_log::FlushPolicy::Always);
    let bootstrap = broker.bootstrap();
    let topic = unique("markers-once");
    create_topic(&bootstrap, &topic, 2, &[]);
    let producer = txn_producer(&bootstrap, &unique("markers-once-id"));
    let rounds = 150;
    for i in 0..rounds {
        producer.begin_transaction().expect("begin");
        let v = format!("r{i}");
        send_all(&producer, &topic, &[(&v, 0), (&v, 1)]);
        if i % 3 == 2 {
            producer.abort_transaction(TIMEOUT).expect("abort");
        } else {
            producer.commit_transaction(TIMEOUT).expect("commit");
        }
    }
    let committed = (0..rounds).filter(|i| i % 3 != 2).count();
    let consumer = committed_reader(&bootstrap, &topic, &[0, 1]);
    let values = read_values(&consumer, Duration::from_secs(2));
    assert_eq!(values.len(), 2 * committed, "committed records, each once");
    for p in 0..2 {
        let (low, high) = consumer.fetch_watermarks(&topic, p, TIMEOUT).unwrap();
        // One record and one marker per transaction, nothing more.
        assert_eq!((low, high), (0, 2 * rounds as i64), "partition {p}");
    }
}
