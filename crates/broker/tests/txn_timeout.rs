//! An abandoned transaction is aborted at its timeout: its records never
//! become visible to read_committed and the last stable offset moves on.
//! Also EndTxn without a transaction and fenced epochs, on the wire.

mod common;

use bytes::{Bytes, BytesMut};
use common::wire::Wire;
use common::*;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use std::time::{Duration, Instant};
use strom_testkit::TestBroker;

fn txn_batch(pid: i64, epoch: i16, seq: i32) -> Bytes {
    let record = Record {
        transactional: true,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: 0,
        producer_id: pid,
        producer_epoch: epoch,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: seq,
        timestamp: 1_700_000_000_000,
        key: None,
        value: Some(Bytes::from_static(b"abandoned")),
        headers: Default::default(),
    };
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        [&record],
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    buf.freeze()
}

fn last_stable_offset(wire: &mut Wire, topic: &str) -> i64 {
    let request = ListOffsetsRequest::default()
        .with_isolation_level(1)
        .with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.into())))
            .with_partitions(vec![
                list_offsets_request::ListOffsetsPartition::default().with_timestamp(-1),
            ])]);
    wire.request(5, &request).topics[0].partitions[0].offset
}

#[test]
fn an_abandoned_transaction_is_aborted_at_its_timeout() {
    let broker = TestBroker::start_with(|c| c.transaction_topic_partitions = 1);
    let topic = unique("abandoned");
    create_topic(&broker.bootstrap(), &topic, 1, &[]);
    let mut wire = Wire::connect(&broker.bootstrap());
    let txn_id = TransactionalId(StrBytes::from_static_str("abandoner"));
    let init = wire.request(
        4,
        &InitProducerIdRequest::default()
            .with_transactional_id(Some(txn_id.clone()))
            .with_transaction_timeout_ms(1000),
    );
    assert_eq!(init.error_code, 0);
    let (pid, epoch) = (init.producer_id, init.producer_epoch);

    // EndTxn with no transaction: INVALID_TXN_STATE.
    let end = EndTxnRequest::default()
        .with_transactional_id(txn_id.clone())
        .with_producer_id(pid)
        .with_producer_epoch(epoch)
        .with_committed(true);
    assert_eq!(wire.request(3, &end).error_code, 48, "INVALID_TXN_STATE");

    // Transactional data for a partition not added to the transaction is refused (KIP-890).
    let produce = |wire: &mut Wire, epoch: i16, seq: i32| {
        let request = ProduceRequest::default()
            .with_transactional_id(Some(txn_id.clone()))
            .with_acks(-1)
            .with_timeout_ms(5000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(topic.clone())))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(txn_batch(pid.0, epoch, seq)))])]);
        wire.request(7, &request).responses[0].partition_responses[0].error_code
    };
    assert_eq!(
        produce(&mut wire, epoch, 0),
        48,
        "not in the transaction yet"
    );

    let add = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(txn_id.clone())
        .with_v3_and_below_producer_id(pid)
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.clone())))
            .with_partitions(vec![0])]);
    let added = wire.request(3, &add);
    assert_eq!(
        added.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code,
        0
    );
    assert_eq!(produce(&mut wire, epoch, 0), 0);
    assert_eq!(
        last_stable_offset(&mut wire, &topic),
        0,
        "the open transaction holds the LSO"
    );

    // The producer goes silent; after the 1 s timeout the transaction is aborted.
    let deadline = Instant::now() + Duration::from_secs(15);
    while last_stable_offset(&mut wire, &topic) < 2 {
        assert!(
            Instant::now() < deadline,
            "the abandoned transaction was never aborted"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Its producer is fenced: the abort bumped the epoch.
    assert_eq!(wire.request(3, &end).error_code, 90, "PRODUCER_FENCED");
    let code = produce(&mut wire, epoch, 1);
    assert!(code == 47 || code == 90, "the fenced producer's data is refused (INVALID_PRODUCER_EPOCH or PRODUCER_FENCED), got {code}");

    // read_committed sees nothing of it.
    let consumer: rdkafka::consumer::BaseConsumer = client_config(&broker.bootstrap())
        .set("group.id", "unused")
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(&topic, 0, rdkafka::Offset::Beginning)
        .unwrap();
    use rdkafka::consumer::Consumer;
    consumer.assign(&tpl).unwrap();
    assert!(
        consumer.poll(Duration::from_secs(2)).is_none(),
        "aborted records are never visible"
    );
}
