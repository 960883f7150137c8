//! Fetch sends stored batches from their files (sendfile) and copies small
//! ones: at every supported version, with several partitions mixing both
//! kinds, the response decodes and holds exactly the stored records.

mod common;

use bytes::Bytes;
use common::wire::Wire;
use common::*;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::RecordBatchDecoder;
use strom_testkit::TestBroker;

const TOPIC: &str = "zero-copy";

fn name() -> TopicName {
    TopicName(StrBytes::from_static_str(TOPIC))
}

fn produce(wire: &mut Wire, partition: i32, values: &[Vec<u8>]) {
    let values: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name())
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(batch(&values).freeze()))])]);
    let response: ProduceResponse = wire.request(9, &request);
    assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
}

/// The value of record `i` of partition `p`: distinct, recognisable bytes.
fn value(p: i32, i: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|j| (p as usize * 31 + i * 7 + j) as u8)
        .collect()
}

/// (offset, value length, value checksum) of every record in `records`.
fn decode(records: &Bytes) -> Vec<(i64, usize, u32)> {
    let mut buf = records.clone();
    RecordBatchDecoder::decode_all(&mut buf)
        .unwrap()
        .into_iter()
        .flat_map(|set| set.records)
        .map(|r| {
            let v = r.value.unwrap();
            (r.offset, v.len(), crc32c::crc32c(&v))
        })
        .collect()
}

fn fetch(
    wire: &mut Wire,
    version: i16,
    topic_id: uuid::Uuid,
    partition_max_bytes: i32,
) -> FetchResponse {
    let partitions = (0..3)
        .map(|p| {
            fetch_request::FetchPartition::default()
                .with_partition(p)
                .with_fetch_offset(0)
                .with_partition_max_bytes(partition_max_bytes)
        })
        .collect();
    let mut topic = fetch_request::FetchTopic::default().with_partitions(partitions);
    topic = if version >= 13 {
        topic.with_topic_id(topic_id)
    } else {
        topic.with_topic(name())
    };
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_max_bytes(8 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![topic]);
    wire.request(version, &request)
}

#[test]
fn fetch_sends_files_and_copies_small_ranges_at_every_version() {
    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, TOPIC, 3, &[]);
    let mut wire = Wire::connect(&bootstrap);
    // Partition 0: 100 KiB of 1 KiB records (sent from the file); partition
    // 1: 30 bytes (copied); partition 2: empty.
    let mut want0 = Vec::new();
    for b in 0..5 {
        let values: Vec<Vec<u8>> = (0..20).map(|i| value(0, b * 20 + i, 1024)).collect();
        produce(&mut wire, 0, &values);
        want0.extend(values);
    }
    let want1: Vec<Vec<u8>> = (0..3).map(|i| value(1, i, 10)).collect();
    produce(&mut wire, 1, &want1);
    let numbered = |values: &[Vec<u8>]| -> Vec<(i64, usize, u32)> {
        let records = values.iter().enumerate();
        records
            .map(|(i, v)| (i as i64, v.len(), crc32c::crc32c(v)))
            .collect()
    };

    let metadata = wire.request(12, &MetadataRequest::default().with_topics(None));
    let topic_id = metadata
        .topics
        .iter()
        .find(|t| t.name.as_deref().map(|n| n.as_str()) == Some(TOPIC))
        .unwrap()
        .topic_id;
    for v in 4..=18 {
        let r = fetch(&mut wire, v, topic_id, 1 << 20);
        let parts = &r.responses[0].partitions;
        assert_eq!(parts.len(), 3, "Fetch v{v}");
        let marks: Vec<(i16, i64)> = parts
            .iter()
            .map(|p| (p.error_code, p.high_watermark))
            .collect();
        assert_eq!(marks, [(0, 100), (0, 3), (0, 0)], "Fetch v{v}");
        assert_eq!(
            decode(parts[0].records.as_ref().unwrap()),
            numbered(&want0),
            "Fetch v{v}"
        );
        assert_eq!(
            decode(parts[1].records.as_ref().unwrap()),
            numbered(&want1),
            "Fetch v{v}"
        );
        assert!(parts[2].records.as_ref().unwrap().is_empty(), "Fetch v{v}");

        // A partition limit of 30 KiB: as many whole batches (the encoder
        // writes one record per batch here) as fit, no partial one.
        let whole = parts[0].records.as_ref().unwrap().len();
        let per_batch = whole / 100;
        let r = fetch(&mut wire, v, topic_id, 30 * 1024);
        let parts = &r.responses[0].partitions;
        let records = parts[0].records.as_ref().unwrap();
        let fit = 30 * 1024 / per_batch;
        assert_eq!(records.len(), fit * per_batch, "Fetch v{v}");
        assert_eq!(decode(records), numbered(&want0[..fit]), "Fetch v{v}");
        assert_eq!(
            decode(parts[1].records.as_ref().unwrap()),
            numbered(&want1),
            "Fetch v{v}"
        );
    }

    // A librdkafka consumer reads the same records.
    let consumer = consumer_from(&bootstrap, TOPIC, &[0], rdkafka::Offset::Beginning);
    let got: Vec<Vec<u8>> = consume(&consumer, 100)
        .iter()
        .map(|m| rdkafka::Message::payload(m).unwrap().to_vec())
        .collect();
    assert_eq!(got, want0);
}
