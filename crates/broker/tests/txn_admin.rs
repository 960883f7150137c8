//! DescribeTransactions, ListTransactions and DescribeProducers against an
//! open and then a committed transaction of librdkafka's transactional
//! producer. librdkafka cannot send these requests, so the raw wire client
//! does.

mod common;

use common::wire::Wire;
use common::*;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::describe_producers_response::ProducerState;
use kafka_protocol::messages::describe_transactions_response::TransactionState;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use strom_testkit::TestBroker;

fn s(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

fn list(
    wire: &mut Wire,
    version: i16,
    request: ListTransactionsRequest,
) -> Vec<(String, i64, String)> {
    let response = wire.request(version, &request);
    assert_eq!(response.error_code, 0);
    let mut listed: Vec<(String, i64, String)> = response
        .transaction_states
        .into_iter()
        .map(|t| {
            (
                t.transactional_id.to_string(),
                t.producer_id.0,
                t.transaction_state.to_string(),
            )
        })
        .collect();
    listed.sort();
    listed
}

fn describe(wire: &mut Wire, id: &str) -> TransactionState {
    let request =
        DescribeTransactionsRequest::default().with_transactional_ids(vec![TransactionalId(s(id))]);
    let mut states = wire.request(0, &request).transaction_states;
    assert_eq!(states.len(), 1);
    states.remove(0)
}

fn producers(wire: &mut Wire, topic: &str, partition: i32) -> (i16, Vec<ProducerState>) {
    let request = DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
        .with_name(TopicName(s(topic)))
        .with_partition_indexes(vec![partition])]);
    let response = wire.request(0, &request);
    let p = response.topics[0].partitions[0].clone();
    assert_eq!(p.partition_index, partition);
    (p.error_code, p.active_producers)
}

fn send(producer: &FutureProducer, topic: &str, partition: i32, value: &str) {
    let record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic)
        .partition(partition)
        .payload(value.as_bytes());
    rt().block_on(producer.send(record, TIMEOUT))
        .map_err(|(e, _)| e)
        .expect("send");
}

#[test]
fn open_and_committed_transactions_are_described() {
    let broker = TestBroker::start_with(|c| c.transaction_topic_partitions = 3);
    let bootstrap = broker.bootstrap();
    let topic = unique("txn-admin");
    create_topic(&bootstrap, &topic, 3, &[]);
    let producer = producer(
        &bootstrap,
        &[
            ("transactional.id", "t-admin"),
            ("transaction.timeout.ms", "30000"),
        ],
    );
    producer
        .init_transactions(TIMEOUT)
        .expect("init_transactions");
    // Something before the transaction, so its first offset is not 0.
    producer.begin_transaction().unwrap();
    send(&producer, &topic, 0, "before");
    producer.commit_transaction(TIMEOUT).unwrap();

    producer.begin_transaction().unwrap();
    send(&producer, &topic, 0, "a");
    send(&producer, &topic, 1, "b");
    let mut wire = Wire::connect(&bootstrap);

    // ListTransactions: Ongoing, and every filter narrows as it should.
    let all = list(&mut wire, 0, ListTransactionsRequest::default());
    assert_eq!(all.len(), 1, "{all:?}");
    let (id, producer_id, state) = all[0].clone();
    assert_eq!((id.as_str(), state.as_str()), ("t-admin", "Ongoing"));
    assert!(producer_id >= 0);
    let by_state = |states: &[&str]| {
        ListTransactionsRequest::default().with_state_filters(states.iter().map(|x| s(x)).collect())
    };
    assert_eq!(list(&mut wire, 0, by_state(&["Ongoing"])), all);
    assert_eq!(
        list(&mut wire, 0, by_state(&["CompleteCommit", "Empty"])),
        vec![]
    );
    let unknown = wire.request(0, &by_state(&["Ongoing", "Sleeping"]));
    assert_eq!(unknown.unknown_state_filters, vec![s("Sleeping")]);
    assert_eq!(unknown.transaction_states.len(), 1);
    let by_producer =
        |id: i64| ListTransactionsRequest::default().with_producer_id_filters(vec![ProducerId(id)]);
    assert_eq!(list(&mut wire, 0, by_producer(producer_id)), all);
    assert_eq!(list(&mut wire, 0, by_producer(producer_id + 1000)), vec![]);
    let longer_than = |ms: i64| ListTransactionsRequest::default().with_duration_filter(ms);
    assert_eq!(list(&mut wire, 1, longer_than(0)), all);
    assert_eq!(list(&mut wire, 1, longer_than(3_600_000)), vec![]);
    assert_eq!(list(&mut wire, 1, longer_than(-1)), all);

    // DescribeTransactions: the partitions of the open transaction.
    let described = describe(&mut wire, "t-admin");
    assert_eq!(described.error_code, 0);
    assert_eq!(described.transaction_state.as_str(), "Ongoing");
    assert_eq!(described.producer_id.0, producer_id);
    assert_eq!(described.producer_epoch, 0);
    assert_eq!(described.transaction_timeout_ms, 30_000);
    assert!(described.transaction_start_time_ms > 0);
    assert_eq!(described.topics.len(), 1);
    assert_eq!(described.topics[0].topic.as_str(), topic);
    assert_eq!(described.topics[0].partitions, vec![0, 1]);

    // DescribeProducers: the producer, and where its open transaction starts.
    let (code, active) = producers(&mut wire, &topic, 0);
    assert_eq!(code, 0);
    assert_eq!(active.len(), 1, "{active:?}");
    let p = &active[0];
    assert_eq!((p.producer_id.0, p.producer_epoch), (producer_id, 0));
    assert_eq!(p.coordinator_epoch, -1);
    assert!(p.last_timestamp > 0);
    // Offset 0 "before", 1 its commit marker, 2 "a".
    assert_eq!(p.current_txn_start_offset, 2);
    assert_eq!(p.last_sequence, 1);
    let (_, idle) = producers(&mut wire, &topic, 2);
    assert!(idle.is_empty(), "{idle:?}");

    producer.commit_transaction(TIMEOUT).unwrap();
    let all = list(&mut wire, 0, ListTransactionsRequest::default());
    assert_eq!(
        all,
        vec![(
            "t-admin".to_string(),
            producer_id,
            "CompleteCommit".to_string()
        )]
    );
    assert_eq!(
        describe(&mut wire, "t-admin").transaction_state.as_str(),
        "CompleteCommit"
    );
    for partition in [0, 1] {
        let (_, active) = producers(&mut wire, &topic, partition);
        assert_eq!(active.len(), 1);
        assert_eq!(active[0].current_txn_start_offset, -1);
    }
}

#[test]
fn unknown_ids_and_partitions_are_errors() {
    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap();
    let topic = unique("txn-admin-unknown");
    create_topic(&bootstrap, &topic, 1, &[]);
    let mut wire = Wire::connect(&bootstrap);

    let missing = describe(&mut wire, "nobody");
    assert_eq!(
        missing.error_code,
        ResponseError::TransactionalIdNotFound.code()
    );
    assert_eq!(missing.transactional_id.as_str(), "nobody");
    assert!(list(&mut wire, 0, ListTransactionsRequest::default()).is_empty());

    let unknown = ResponseError::UnknownTopicOrPartition.code();
    assert_eq!(producers(&mut wire, &topic, 1).0, unknown);
    assert_eq!(producers(&mut wire, "no-such-topic", 0).0, unknown);
    assert_eq!(producers(&mut wire, &topic, 0), (0, vec![]));
}
