//! Idempotent producers: InitProducerId, de-duplication of re-sent batches
//! (also across restarts), sequence gaps and fenced epochs.

mod common;

use bytes::{Bytes, BytesMut};
use common::wire::Wire;
use common::*;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{InitProducerIdRequest, ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::Offset;
use strom_testkit::TestBroker;

const TOPIC: &str = "idem";

fn batch(pid: i64, epoch: i16, first_seq: i32, count: i32) -> BytesMut {
    let records: Vec<Record> = (0..count)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: pid,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: first_seq + i,
            timestamp: 1_700_000_000_000,
            key: None,
            value: Some(Bytes::from(format!("{pid}-{epoch}-{}", first_seq + i))),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    buf
}

fn produce(wire: &mut Wire, records: Bytes) -> (i16, i64) {
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])]);
    let response: ProduceResponse = wire.request(9, &request);
    let p = &response.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

fn high_watermark(broker: &TestBroker) -> i64 {
    let consumer = consumer_from(&broker.bootstrap(), TOPIC, &[0], Offset::Beginning);
    consumer.fetch_watermarks(TOPIC, 0, TIMEOUT).unwrap().1
}

#[test]
fn duplicates_gaps_and_fencing_on_the_wire() {
    let broker = TestBroker::start();
    create_topic(&broker.bootstrap(), TOPIC, 1, &[]);
    let mut wire = Wire::connect(&broker.bootstrap());
    let init = wire.request(
        4,
        &InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000),
    );
    assert_eq!(init.error_code, 0);
    let pid = init.producer_id.0;
    assert_eq!(init.producer_epoch, 0);
    let other = wire.request(
        4,
        &InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000),
    );
    assert_ne!(other.producer_id.0, pid, "every producer gets its own id");

    assert_eq!(produce(&mut wire, batch(pid, 0, 0, 3).freeze()), (0, 0));
    // The same batch again (a retry after a lost response): original offset, nothing appended.
    assert_eq!(produce(&mut wire, batch(pid, 0, 0, 3).freeze()), (0, 0));
    assert_eq!(high_watermark(&broker), 3);
    assert_eq!(produce(&mut wire, batch(pid, 0, 3, 2).freeze()), (0, 3));
    // A gap in the sequence.
    assert_eq!(
        produce(&mut wire, batch(pid, 0, 9, 1).freeze()).0,
        45,
        "OUT_OF_ORDER_SEQUENCE_NUMBER"
    );
    // Unknown producer not starting at 0.
    assert_eq!(
        produce(&mut wire, batch(987_654, 0, 4, 1).freeze()).0,
        59,
        "UNKNOWN_PRODUCER_ID"
    );
    // A new epoch restarts the sequence; the old epoch is then fenced.
    assert_eq!(produce(&mut wire, batch(pid, 1, 0, 1).freeze()), (0, 5));
    assert_eq!(
        produce(&mut wire, batch(pid, 0, 5, 1).freeze()).0,
        47,
        "INVALID_PRODUCER_EPOCH"
    );
    // Two batches of one producer in one request.
    let mut two = batch(pid, 1, 1, 1);
    two.extend_from_slice(&batch(pid, 1, 2, 1));
    assert_eq!(produce(&mut wire, two.freeze()).0, 87, "INVALID_RECORD");
    assert_eq!(high_watermark(&broker), 6, "nothing rejected was stored");

    // De-duplication survives a clean restart (snapshot) ...
    broker.restart();
    let mut wire = Wire::connect(&broker.bootstrap());
    assert_eq!(produce(&mut wire, batch(pid, 1, 0, 1).freeze()), (0, 5));
    assert_eq!(produce(&mut wire, batch(pid, 1, 1, 1).freeze()), (0, 6));
    // ... and a restart without a snapshot (rebuilt from the batches).
    broker.stop();
    let snapshot = broker
        .data_dir()
        .join(format!("{TOPIC}-0"))
        .join("producer-state-snapshot");
    std::fs::remove_file(&snapshot).expect("a snapshot was written at shutdown");
    broker.restart();
    let mut wire = Wire::connect(&broker.bootstrap());
    assert_eq!(produce(&mut wire, batch(pid, 1, 1, 1).freeze()), (0, 6));
    assert_eq!(produce(&mut wire, batch(pid, 1, 3, 1).freeze()).0, 45);
    assert_eq!(high_watermark(&broker), 7);
}

#[test]
fn rdkafka_idempotent_producer_writes_each_record_once_in_order() {
    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap();
    let topic = unique("idem-rd");
    create_topic(&bootstrap, &topic, 3, &[]);
    let producer = producer(
        &bootstrap,
        &[("enable.idempotence", "true"), ("linger.ms", "5")],
    );
    let rt = rt();
    let futures: Vec<_> = (0..300)
        .map(|i: i32| {
            let value = format!("{i}");
            let record = rdkafka::producer::FutureRecord::<[u8], [u8]>::to(&topic)
                .partition(i % 3)
                .payload(value.as_bytes());
            producer
                .send_result(record)
                .map_err(|(e, _)| e)
                .expect("queued")
        })
        .collect();
    for f in futures {
        rt.block_on(f).unwrap().expect("delivered");
    }
    let consumer = consumer_from(&bootstrap, &topic, &[0, 1, 2], Offset::Beginning);
    let messages = consume(&consumer, 300);
    for p in 0..3 {
        let values: Vec<i32> = messages
            .iter()
            .filter(|m| m.partition() == p)
            .map(|m| {
                std::str::from_utf8(m.payload().unwrap())
                    .unwrap()
                    .parse()
                    .unwrap()
            })
            .collect();
        let expected: Vec<i32> = (0..300).filter(|i| i % 3 == p).collect();
        assert_eq!(
            values, expected,
            "partition {p}: each record once, in order"
        );
    }
}
