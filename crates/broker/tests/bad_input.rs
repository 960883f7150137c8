//! Hostile and broken input: each case gets the error or closed connection
//! Kafka gives, never a panic, and leaves stored data intact.

mod common;

use bytes::{BufMut, Bytes, BytesMut};
use common::wire::Wire;
use common::*;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    metadata_request::MetadataRequestTopic, ApiKey, ApiVersionsRequest, ApiVersionsResponse,
    MetadataRequest, ProduceRequest, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use rdkafka::consumer::Consumer;
use rdkafka::Offset;
use std::io::Write;
use strom_testkit::TestBroker;

const TOPIC: &str = "precious";

/// A broker holding 5 records that no bad input may harm.
fn broker_with_data() -> TestBroker {
    let broker = TestBroker::start();
    create_topic(&broker.bootstrap(), TOPIC, 1, &[]);
    let producer = producer(&broker.bootstrap(), &[]);
    for i in 0..5 {
        send(
            &producer,
            TOPIC,
            Some(0),
            None,
            Some(format!("safe-{i}").as_bytes()),
        );
    }
    broker
}

/// The broker still answers, and the 5 records are there, byte for byte.
fn assert_healthy(broker: &TestBroker) {
    let mut wire = Wire::connect(&broker.bootstrap());
    let versions = wire.request(3, &ApiVersionsRequest::default());
    assert_eq!(versions.error_code, 0);
    let consumer = consumer_from(&broker.bootstrap(), TOPIC, &[0], Offset::Beginning);
    let messages = consume(&consumer, 5);
    use rdkafka::Message;
    for (i, m) in messages.iter().enumerate() {
        assert_eq!(m.payload(), Some(format!("safe-{i}").as_bytes()));
    }
    let (low, high) = consumer.fetch_watermarks(TOPIC, 0, TIMEOUT).unwrap();
    assert_eq!((low, high), (0, 5));
}

fn produce_request(topic: &str, records: Bytes) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.into())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])])
}

#[test]
fn oversized_frame_closes_only_that_connection() {
    let broker = broker_with_data();
    let mut other = Wire::connect(&broker.bootstrap());
    let mut wire = Wire::connect(&broker.bootstrap());
    wire.send_raw(&(200 * 1024 * 1024i32).to_be_bytes());
    assert!(wire.is_closed());
    // Another open connection is unaffected.
    assert_eq!(
        other.request(3, &ApiVersionsRequest::default()).error_code,
        0
    );
    assert_healthy(&broker);
}

#[test]
fn truncated_frame_and_garbage() {
    let broker = broker_with_data();
    let mut wire = Wire::connect(&broker.bootstrap());
    wire.send_raw(&100i32.to_be_bytes());
    wire.send_raw(&[0u8; 10]);
    drop(wire); // the frame never completes
    let mut wire = Wire::connect(&broker.bootstrap());
    let mut garbage = BytesMut::new();
    garbage.put_i32(64);
    garbage.put_slice(&[0xAB; 64]);
    wire.send_raw(&garbage);
    assert!(wire.is_closed(), "garbage must close the connection");
    let mut wire = Wire::connect(&broker.bootstrap());
    wire.send_raw(&(-5i32).to_be_bytes());
    assert!(wire.is_closed(), "negative frame size");
    let mut wire = Wire::connect(&broker.bootstrap());
    wire.send_raw(&[0, 0, 0, 3, 0, 18, 0]);
    assert!(wire.is_closed(), "frame too short for a header");
    assert_healthy(&broker);
}

#[test]
fn unknown_api_key_and_unsupported_versions() {
    let broker = broker_with_data();
    let mut wire = Wire::connect(&broker.bootstrap());
    let mut frame = BytesMut::new();
    frame.put_i16(999);
    frame.put_i16(0);
    frame.put_i32(7);
    frame.put_i16(-1);
    wire.send_frame(&frame);
    assert!(wire.is_closed(), "unknown API key");

    let mut wire = Wire::connect(&broker.bootstrap());
    let mut frame = wire.encode(12, &MetadataRequest::default());
    frame[2..4].copy_from_slice(&99i16.to_be_bytes());
    wire.send_frame(&frame);
    assert!(wire.is_closed(), "unsupported Metadata version");

    // ApiVersions at a version the broker does not know: a v0 answer with
    // UNSUPPORTED_VERSION and the supported range, as Kafka sends.
    let mut wire = Wire::connect(&broker.bootstrap());
    let mut frame = wire.encode(3, &ApiVersionsRequest::default());
    frame[2..4].copy_from_slice(&77i16.to_be_bytes());
    wire.send_frame(&frame);
    let mut response = wire
        .read_frame()
        .expect("a response, not a closed connection");
    let _correlation = bytes::Buf::get_i32(&mut response);
    let body = ApiVersionsResponse::decode(&mut response, 0).unwrap();
    assert_eq!(body.error_code, 35);
    let api_versions = body
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::ApiVersions as i16)
        .unwrap();
    assert_eq!((api_versions.min_version, api_versions.max_version), (0, 4));
    assert_healthy(&broker);
}

#[test]
fn negative_and_huge_array_lengths() {
    let broker = broker_with_data();
    // Metadata v1: header then the topics array length.
    for length in [-2i32, i32::MAX, 0x4000_0000] {
        let mut wire = Wire::connect(&broker.bootstrap());
        let mut frame = BytesMut::new();
        frame.put_i16(ApiKey::Metadata as i16);
        frame.put_i16(1);
        frame.put_i32(1);
        frame.put_i16(-1);
        frame.put_i32(length);
        wire.send_frame(&frame);
        assert!(wire.is_closed(), "Metadata with array length {length}");
    }
    // CreateTopics v2 claiming two billion topics of ~100 bytes each: an
    // eager reservation would need hundreds of GiB.
    let mut wire = Wire::connect(&broker.bootstrap());
    let mut frame = BytesMut::new();
    frame.put_i16(ApiKey::CreateTopics as i16);
    frame.put_i16(2);
    frame.put_i32(2);
    frame.put_i16(-1);
    frame.put_i32(i32::MAX);
    frame.put_slice(&[0, 1, b'x']);
    wire.send_frame(&frame);
    assert!(wire.is_closed(), "CreateTopics with a huge array");
    // Produce v9 (flexible): a compact array length near u32::MAX.
    let mut wire = Wire::connect(&broker.bootstrap());
    let mut frame = BytesMut::new();
    frame.put_i16(ApiKey::Produce as i16);
    frame.put_i16(9);
    frame.put_i32(3);
    frame.put_i16(-1);
    frame.put_u8(0); // header tagged fields
    frame.put_u8(0); // null transactional id
    frame.put_i16(-1);
    frame.put_i32(1000);
    frame.put_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    wire.send_frame(&frame);
    assert!(wire.is_closed(), "Produce with a huge compact array");
    assert_healthy(&broker);
}

#[test]
fn wrong_crc_is_rejected_and_nothing_is_stored() {
    let broker = broker_with_data();
    let mut wire = Wire::connect(&broker.bootstrap());
    let mut records = batch(&[b"evil-1", b"evil-2"]);
    let last = records.len() - 1;
    records[last] ^= 0x55; // payload changed after the CRC was computed
    let response = wire.request(7, &produce_request(TOPIC, records.freeze()));
    let partition = &response.responses[0].partition_responses[0];
    assert_eq!(partition.error_code, 2, "CORRUPT_MESSAGE");

    // A well-formed batch on the same connection still works afterwards.
    let response = wire.request(7, &produce_request(TOPIC, batch(&[b"good"]).freeze()));
    let partition = &response.responses[0].partition_responses[0];
    assert_eq!((partition.error_code, partition.base_offset), (0, 5));

    // Truncated batch: the length field claims more than is there.
    let mut truncated = batch(&[b"cut"]);
    truncated.truncate(truncated.len() - 3);
    let response = wire.request(7, &produce_request(TOPIC, truncated.freeze()));
    assert_ne!(response.responses[0].partition_responses[0].error_code, 0);

    let consumer = consumer_from(&broker.bootstrap(), TOPIC, &[0], Offset::Beginning);
    let (_, high) = consumer.fetch_watermarks(TOPIC, 0, TIMEOUT).unwrap();
    assert_eq!(high, 6, "only the good batch was appended");
}

#[test]
fn invalid_topic_names() {
    let broker = broker_with_data();
    let mut wire = Wire::connect(&broker.bootstrap());
    for name in ["bad topic!", "..", &"x".repeat(250)] {
        let metadata = wire.request(
            9,
            &MetadataRequest::default()
                .with_allow_auto_topic_creation(true)
                .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(
                    TopicName(StrBytes::from_string(name.to_string())),
                ))])),
        );
        assert_eq!(
            metadata.topics[0].error_code, 17,
            "INVALID_TOPIC_EXCEPTION for {name:?}"
        );
        let response = wire.request(7, &produce_request(name, batch(&[b"x"]).freeze()));
        assert_eq!(response.responses[0].partition_responses[0].error_code, 17);
    }
    let listed = wire.request(9, &MetadataRequest::default().with_topics(None));
    assert_eq!(listed.topics.len(), 1, "no invalid topic was created");
    assert_healthy(&broker);
}

#[test]
fn a_slow_client_does_not_block_others() {
    let broker = broker_with_data();
    // Half a frame, left hanging.
    let mut stalled = std::net::TcpStream::connect(broker.bootstrap()).unwrap();
    stalled.write_all(&50i32.to_be_bytes()).unwrap();
    stalled.write_all(&[0; 10]).unwrap();
    assert_healthy(&broker);
}
