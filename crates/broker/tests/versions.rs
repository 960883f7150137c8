//! Every supported version of the main APIs is answered with a response
//! that decodes at that version (fields that only exist in newer versions
//! must not be set in older responses).

mod common;

use common::wire::Wire;
use common::*;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use strom_testkit::TestBroker;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.into()))
}

#[test]
fn every_supported_version_answers() {
    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "v", 2, &[]);
    let producer = producer(&bootstrap, &[]);
    send(&producer, "v", Some(0), Some(b"k"), Some(b"v"));
    let mut wire = Wire::connect(&bootstrap);
    let metadata = wire.request(12, &MetadataRequest::default().with_topics(None));
    let topic_id = metadata
        .topics
        .iter()
        .find(|t| t.name.as_deref().map(|n| n.as_str()) == Some("v"))
        .unwrap()
        .topic_id;

    for v in 0..=4 {
        assert_eq!(
            wire.request(v, &ApiVersionsRequest::default()).error_code,
            0,
            "ApiVersions v{v}"
        );
    }
    for v in 0..=13 {
        let topics = Some(vec![
            metadata_request::MetadataRequestTopic::default().with_name(Some(name("v")))
        ]);
        let r = wire.request(v, &MetadataRequest::default().with_topics(topics));
        assert_eq!(r.topics[0].partitions.len(), 2, "Metadata v{v}");
    }
    for v in 1..=10 {
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
                .with_name(name("v"))
                .with_partitions(vec![
                    list_offsets_request::ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(-1),
                ])]);
        let r = wire.request(v, &request);
        assert_eq!(r.topics[0].partitions[0].offset, 1, "ListOffsets v{v}");
    }
    for v in 4..=18 {
        let mut topic = fetch_request::FetchTopic::default().with_partitions(vec![
            fetch_request::FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20),
        ]);
        if v >= 13 {
            topic = topic.with_topic_id(topic_id);
        } else {
            topic = topic.with_topic(name("v"));
        }
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_max_bytes(1 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![topic]);
        let r = wire.request(v, &request);
        let p = &r.responses[0].partitions[0];
        assert_eq!(p.error_code, 0, "Fetch v{v}");
        assert_eq!(p.high_watermark, 1, "Fetch v{v}");
        assert!(
            !p.records.as_ref().unwrap().is_empty(),
            "Fetch v{v} returns the record"
        );
    }
    for v in 1..=4 {
        let request = DescribeConfigsRequest::default().with_resources(vec![
            describe_configs_request::DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str("v")),
        ]);
        let r = wire.request(v, &request);
        assert_eq!(r.results[0].error_code, 0, "DescribeConfigs v{v}");
    }
    for v in 2..=7 {
        let request = CreateTopicsRequest::default()
            .with_validate_only(true)
            .with_topics(vec![create_topics_request::CreatableTopic::default()
                .with_name(name(&format!("validate-{v}")))
                .with_num_partitions(1)
                .with_replication_factor(1)]);
        assert_eq!(
            wire.request(v, &request).topics[0].error_code,
            0,
            "CreateTopics v{v}"
        );
    }
    for v in 0..=6 {
        let mut request = FindCoordinatorRequest::default();
        if v >= 4 {
            request = request.with_coordinator_keys(vec![StrBytes::from_static_str("g")]);
        } else {
            request = request.with_key(StrBytes::from_static_str("g"));
        }
        let r = wire.request(v, &request);
        let code = if v >= 4 {
            r.coordinators[0].error_code
        } else {
            r.error_code
        };
        assert_eq!(code, 0, "FindCoordinator v{v}");
    }
    for v in 1..=9 {
        let request = if v >= 8 {
            OffsetFetchRequest::default().with_groups(vec![
                offset_fetch_request::OffsetFetchRequestGroup::default()
                    .with_group_id(GroupId(StrBytes::from_static_str("g")))
                    .with_topics(None),
            ])
        } else {
            OffsetFetchRequest::default()
                .with_group_id(GroupId(StrBytes::from_static_str("g")))
                .with_topics(None)
        };
        wire.request(v, &request);
    }
    for v in 0..=5 {
        wire.request(v, &ListGroupsRequest::default());
    }
    for v in 0..=6 {
        let r = wire.request(
            v,
            &DescribeGroupsRequest::default()
                .with_groups(vec![GroupId(StrBytes::from_static_str("nobody"))]),
        );
        assert_eq!(r.groups.len(), 1, "DescribeGroups v{v}");
        let expected = if v >= 6 { 69 } else { 0 };
        assert_eq!(
            (r.groups[0].error_code, r.groups[0].group_state.as_str()),
            (expected, "Dead"),
            "DescribeGroups v{v}"
        );
    }
    for v in 0..=2 {
        assert_eq!(
            wire.request(v, &DescribeClusterRequest::default())
                .error_code,
            0,
            "DescribeCluster v{v}"
        );
    }
    for v in 3..=13 {
        let records = {
            use kafka_protocol::records::*;
            let record = Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: 0,
                sequence: -1,
                timestamp: 1,
                key: None,
                value: Some(bytes::Bytes::from_static(b"x")),
                headers: Default::default(),
            };
            let mut buf = bytes::BytesMut::new();
            RecordBatchEncoder::encode(
                &mut buf,
                &[record],
                &RecordEncodeOptions {
                    version: 2,
                    compression: Compression::None,
                },
            )
            .unwrap();
            buf.freeze()
        };
        let mut topic = produce_request::TopicProduceData::default().with_partition_data(vec![
            produce_request::PartitionProduceData::default()
                .with_index(1)
                .with_records(Some(records)),
        ]);
        if v >= 13 {
            topic = topic.with_topic_id(topic_id);
        } else {
            topic = topic.with_name(name("v"));
        }
        let r = wire.request(
            v,
            &ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(5000)
                .with_topic_data(vec![topic]),
        );
        let p = &r.responses[0].partition_responses[0];
        assert_eq!(
            (p.error_code, p.base_offset),
            (0, (v - 3) as i64),
            "Produce v{v}"
        );
    }
}
