//! Admin operations through rdkafka's AdminClient, plus the raw wire for
//! the ones it lacks (IncrementalAlterConfigs, DescribeCluster, topic ids).

mod common;

use common::wire::Wire;
use common::*;
use kafka_protocol::messages::{
    alter_configs_request, describe_cluster_request::DescribeClusterRequest,
    describe_configs_request, incremental_alter_configs_request, metadata_request,
    AlterConfigsRequest, DeleteTopicsRequest, DescribeConfigsRequest,
    IncrementalAlterConfigsRequest, MetadataRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{
    AdminOptions, AlterConfig, NewPartitions, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::consumer::Consumer;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use strom_testkit::TestBroker;

fn describe(bootstrap: &str, topic: &str) -> std::collections::HashMap<String, Option<String>> {
    let admin = admin(bootstrap);
    let result = rt()
        .block_on(admin.describe_configs([&ResourceSpecifier::Topic(topic)], &AdminOptions::new()))
        .unwrap();
    let resource = result[0].as_ref().expect("describe ok");
    resource
        .entries
        .iter()
        .map(|e| (e.name.clone(), e.value.clone()))
        .collect()
}

#[test]
fn create_validate_describe_alter_delete() {
    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap();
    let admin = admin(&bootstrap);
    let rt = rt();
    let topic = unique("admin");

    // validate_only creates nothing.
    let new = NewTopic::new(&topic, 3, TopicReplication::Fixed(1)).set("retention.ms", "3600000");
    let r = rt
        .block_on(admin.create_topics([&new], &AdminOptions::new().validate_only(true)))
        .unwrap();
    assert!(r[0].is_ok());
    let md = admin.inner().fetch_metadata(None, TIMEOUT).unwrap();
    assert!(md.topics().iter().all(|t| t.name() != topic));

    let r = rt
        .block_on(admin.create_topics([&new], &AdminOptions::new()))
        .unwrap();
    assert!(r[0].is_ok(), "{r:?}");
    let again = rt
        .block_on(admin.create_topics([&new], &AdminOptions::new()))
        .unwrap();
    assert_eq!(
        again[0].as_ref().unwrap_err().1,
        RDKafkaErrorCode::TopicAlreadyExists
    );

    // Errors Kafka gives for bad requests.
    let bad_rf = NewTopic::new("rf3", 1, TopicReplication::Fixed(3));
    let bad_config =
        NewTopic::new("badcfg", 1, TopicReplication::Fixed(1)).set("cleanup.policy", "shred");
    let bad_name = NewTopic::new("bad name!", 1, TopicReplication::Fixed(1));
    let r = rt
        .block_on(admin.create_topics([&bad_rf, &bad_config, &bad_name], &AdminOptions::new()))
        .unwrap();
    assert_eq!(
        r[0].as_ref().unwrap_err().1,
        RDKafkaErrorCode::InvalidReplicationFactor
    );
    assert_eq!(
        r[1].as_ref().unwrap_err().1,
        RDKafkaErrorCode::InvalidConfig
    );
    assert_eq!(r[2].as_ref().unwrap_err().1, RDKafkaErrorCode::InvalidTopic);

    let configs = describe(&bootstrap, &topic);
    assert_eq!(configs["retention.ms"].as_deref(), Some("3600000"));
    assert_eq!(configs["cleanup.policy"].as_deref(), Some("delete"));
    assert_eq!(configs["segment.bytes"].as_deref(), Some("1073741824"));

    // AlterConfigs replaces the whole set of overrides.
    let alter = AlterConfig::new(ResourceSpecifier::Topic(&topic)).set("segment.ms", "60000");
    let r = rt
        .block_on(admin.alter_configs([&alter], &AdminOptions::new()))
        .unwrap();
    assert!(r[0].is_ok(), "{r:?}");
    let configs = describe(&bootstrap, &topic);
    assert_eq!(configs["segment.ms"].as_deref(), Some("60000"));
    assert_eq!(
        configs["retention.ms"].as_deref(),
        Some("604800000"),
        "override replaced"
    );
    // rdkafka's alter_configs drops per-resource errors, so check on the wire.
    let mut wire = Wire::connect(&bootstrap);
    let bad = AlterConfigsRequest::default().with_resources(vec![
        alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_string(topic.clone()))
            .with_configs(vec![alter_configs_request::AlterableConfig::default()
                .with_name(StrBytes::from_static_str("retention.ms"))
                .with_value(Some(StrBytes::from_static_str("soon")))]),
    ]);
    let response = wire.request(2, &bad);
    assert_eq!(response.responses[0].error_code, 40, "INVALID_CONFIG");
    assert!(response.responses[0]
        .error_message
        .as_ref()
        .unwrap()
        .contains("retention.ms"));
    let configs = describe(&bootstrap, &topic);
    assert_eq!(
        configs["segment.ms"].as_deref(),
        Some("60000"),
        "a rejected alter changes nothing"
    );

    // CreatePartitions grows, never shrinks.
    let r = rt
        .block_on(admin.create_partitions([&NewPartitions::new(&topic, 5)], &AdminOptions::new()))
        .unwrap();
    assert!(r[0].is_ok(), "{r:?}");
    let r = rt
        .block_on(admin.create_partitions([&NewPartitions::new(&topic, 2)], &AdminOptions::new()))
        .unwrap();
    assert_eq!(
        r[0].as_ref().unwrap_err().1,
        RDKafkaErrorCode::InvalidPartitions
    );
    let md = admin.inner().fetch_metadata(Some(&topic), TIMEOUT).unwrap();
    assert_eq!(md.topics()[0].partitions().len(), 5);

    // DeleteRecords advances the log start offset.
    let producer = producer(&bootstrap, &[]);
    for i in 0..10 {
        send(
            &producer,
            &topic,
            Some(4),
            None,
            Some(format!("{i}").as_bytes()),
        );
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&topic, 4, Offset::Offset(6))
        .unwrap();
    let r = rt
        .block_on(admin.delete_records(&tpl, &AdminOptions::new()))
        .unwrap();
    assert_eq!(r.elements()[0].offset(), Offset::Offset(6));
    let consumer = consumer_from(&bootstrap, &topic, &[4], Offset::Beginning);
    let (low, high) = consumer.fetch_watermarks(&topic, 4, TIMEOUT).unwrap();
    assert_eq!((low, high), (6, 10));
    let first = &consume(&consumer, 1)[0];
    use rdkafka::Message;
    assert_eq!(first.offset(), 6);

    // DeleteTopics.
    let r = rt
        .block_on(admin.delete_topics(&[&topic], &AdminOptions::new()))
        .unwrap();
    assert!(r[0].is_ok());
    let r = rt
        .block_on(admin.delete_topics(&[&topic], &AdminOptions::new()))
        .unwrap();
    assert_eq!(
        r[0].as_ref().unwrap_err().1,
        RDKafkaErrorCode::UnknownTopicOrPartition
    );
    let md = admin.inner().fetch_metadata(None, TIMEOUT).unwrap();
    assert!(md.topics().iter().all(|t| t.name() != topic));
}

#[test]
fn broker_configs_and_incremental_alter() {
    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap();
    let topic = unique("incr");
    create_topic(&bootstrap, &topic, 1, &[("retention.ms", "1000000")]);
    let mut wire = Wire::connect(&bootstrap);
    let op = |name: &str, op: i8, value: Option<&str>| {
        incremental_alter_configs_request::AlterableConfig::default()
            .with_name(StrBytes::from_string(name.into()))
            .with_config_operation(op)
            .with_value(value.map(|v| StrBytes::from_string(v.into())))
    };
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        incremental_alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_string(topic.clone()))
            .with_configs(vec![
                op("segment.ms", 0, Some("120000")),
                op("cleanup.policy", 2, Some("compact")),
                op("retention.ms", 1, None),
            ]),
        incremental_alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(StrBytes::from_static_str("1"))
            .with_configs(vec![op("log.retention.ms", 0, Some("7777"))]),
    ]);
    let response = wire.request(1, &request);
    assert_eq!(
        response.responses[0].error_code, 0,
        "{:?}",
        response.responses[0]
    );
    assert_eq!(
        response.responses[1].error_code, 0,
        "{:?}",
        response.responses[1]
    );
    let append_to_scalar = IncrementalAlterConfigsRequest::default().with_resources(vec![
        incremental_alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_string(topic.clone()))
            .with_configs(vec![op("segment.ms", 2, Some("1"))]),
    ]);
    let response = wire.request(1, &append_to_scalar);
    assert_eq!(
        response.responses[0].error_code, 40,
        "APPEND on a non-list config is INVALID_CONFIG"
    );

    let configs = describe(&bootstrap, &topic);
    assert_eq!(configs["segment.ms"].as_deref(), Some("120000"));
    assert_eq!(configs["cleanup.policy"].as_deref(), Some("delete,compact"));
    // The deleted override falls back to the (now dynamic) broker default.
    assert_eq!(configs["retention.ms"].as_deref(), Some("7777"));

    let admin = admin(&bootstrap);
    let result = rt()
        .block_on(admin.describe_configs([&ResourceSpecifier::Broker(1)], &AdminOptions::new()))
        .unwrap();
    let broker_resource = result[0].as_ref().unwrap();
    assert_eq!(
        broker_resource
            .get("log.retention.ms")
            .unwrap()
            .value
            .as_deref(),
        Some("7777")
    );
    assert_eq!(
        broker_resource
            .get("num.partitions")
            .unwrap()
            .value
            .as_deref(),
        Some("1")
    );

    // Dynamic broker configs persist across restarts.
    broker.restart();
    let configs = describe(&broker.bootstrap(), &topic);
    assert_eq!(configs["retention.ms"].as_deref(), Some("7777"));
}

#[test]
fn describe_cluster_topic_ids_and_delete_by_id() {
    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap();
    let topic = unique("ids");
    create_topic(&bootstrap, &topic, 2, &[]);
    let mut wire = Wire::connect(&bootstrap);
    let cluster = wire.request(1, &DescribeClusterRequest::default());
    assert_eq!(cluster.error_code, 0);
    assert_eq!(cluster.brokers.len(), 1);
    assert_eq!(cluster.controller_id.0, 1);
    assert_eq!(
        cluster.brokers[0].port,
        bootstrap
            .rsplit(':')
            .next()
            .unwrap()
            .parse::<i32>()
            .unwrap()
    );
    assert_eq!(cluster.cluster_id.len(), 22);

    let metadata = wire.request(
        12,
        &MetadataRequest::default()
            .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
            )
            .with_name(Some(TopicName(StrBytes::from_string(topic.clone()))))])),
    );
    let id = metadata.topics[0].topic_id;
    assert!(!id.is_nil());
    assert_eq!(
        metadata.cluster_id.as_deref(),
        Some(cluster.cluster_id.as_str())
    );
    // Look the topic up by id.
    let by_id = wire.request(
        12,
        &MetadataRequest::default().with_topics(Some(vec![
            metadata_request::MetadataRequestTopic::default().with_topic_id(id),
        ])),
    );
    assert_eq!(
        by_id.topics[0].name.as_ref().map(|n| n.as_str()),
        Some(topic.as_str())
    );
    assert_eq!(by_id.topics[0].partitions.len(), 2);

    let delete = DeleteTopicsRequest::default().with_topics(vec![
        kafka_protocol::messages::delete_topics_request::DeleteTopicState::default()
            .with_topic_id(id),
    ]);
    let response = wire.request(6, &delete);
    assert_eq!(response.responses[0].error_code, 0);
    let response = wire.request(6, &delete);
    assert_eq!(response.responses[0].error_code, 100, "UNKNOWN_TOPIC_ID");
}

/// DescribeConfigs on the broker resource reports where each value comes
/// from as Kafka does: DEFAULT_CONFIG unless the configuration set it, and
/// log.retention.ms without a value while log.retention.hours is in force.
#[test]
fn broker_config_sources() {
    use rdkafka::admin::ConfigSource;
    let entries = |bootstrap: &str| {
        let admin = admin(bootstrap);
        let result = rt()
            .block_on(admin.describe_configs([&ResourceSpecifier::Broker(1)], &AdminOptions::new()))
            .unwrap();
        let resource = result.into_iter().next().unwrap().expect("describe ok");
        resource
            .entries
            .into_iter()
            .map(|e| (e.name.clone(), e))
            .collect::<std::collections::HashMap<_, _>>()
    };
    let broker = TestBroker::start();
    let e = entries(&broker.bootstrap());
    for (name, value) in [
        ("num.partitions", "1"),
        ("auto.create.topics.enable", "true"),
        ("log.retention.hours", "168"),
        ("group.initial.rebalance.delay.ms", "3000"),
        ("transaction.max.timeout.ms", "900000"),
        ("offsets.retention.minutes", "10080"),
    ] {
        assert_eq!(e[name].value.as_deref(), Some(value), "{name}");
        assert_eq!(e[name].source, ConfigSource::Default, "{name}");
    }
    assert_eq!(e["log.retention.ms"].value, None);
    assert_eq!(e["log.retention.ms"].source, ConfigSource::Default);
    assert_eq!(e["node.id"].source, ConfigSource::StaticBroker);
    // Strom's default flush interval is a default too, not a setting.
    assert_eq!(e["log.flush.interval.ms"].source, ConfigSource::Default);

    // Synonyms (rdkafka does not show them: on the wire), as Kafka lists
    // them: every level that sets a value, then the default if Kafka has one.
    let topic = unique("synonyms");
    create_topic(&broker.bootstrap(), &topic, 1, &[("retention.ms", "1000")]);
    let mut wire = Wire::connect(&broker.bootstrap());
    let mut synonyms = |resource_type: i8, name: &str, config: &str| {
        let request = DescribeConfigsRequest::default()
            .with_include_synonyms(true)
            .with_resources(vec![
                describe_configs_request::DescribeConfigsResource::default()
                    .with_resource_type(resource_type)
                    .with_resource_name(StrBytes::from_string(name.to_string()))
                    .with_configuration_keys(Some(vec![StrBytes::from_string(config.to_string())])),
            ]);
        let response = wire.request(4, &request);
        response.results[0].configs[0]
            .synonyms
            .iter()
            .map(|s| {
                let value = s.value.as_ref().map_or("", |v| v.as_str());
                format!("{}:{}={}", s.source, s.name.as_str(), value)
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(synonyms(2, &topic, "retention.ms"), ["1:retention.ms=1000"]);
    assert_eq!(
        synonyms(2, &topic, "cleanup.policy"),
        ["5:log.cleanup.policy=delete"]
    );
    assert_eq!(synonyms(4, "1", "num.partitions"), ["5:num.partitions=1"]);
    assert!(synonyms(4, "1", "log.retention.ms").is_empty());
    drop(broker);

    let configured = TestBroker::start_with(|c| {
        let props = [("num.partitions", "3"), ("log.retention.ms", "7200000")]
            .map(|(k, v)| (k.to_string(), v.to_string()));
        let from_file = strom_broker::BrokerConfig::from_properties(props.into()).unwrap();
        c.num_partitions = from_file.num_partitions;
        c.log_defaults = from_file.log_defaults;
        c.explicit = from_file.explicit;
    });
    let e = entries(&configured.bootstrap());
    assert_eq!(e["num.partitions"].value.as_deref(), Some("3"));
    assert_eq!(e["num.partitions"].source, ConfigSource::StaticBroker);
    assert_eq!(e["log.retention.ms"].value.as_deref(), Some("7200000"));
    assert_eq!(e["log.retention.ms"].source, ConfigSource::StaticBroker);
    assert_eq!(e["auto.create.topics.enable"].source, ConfigSource::Default);
}

/// DescribeTopicPartitions (KIP-966, used by Kafka 4's admin client and
/// kafka-topics): topics in name order, partitions paged by a cursor,
/// unknown topics with UNKNOWN_TOPIC_OR_PARTITION, empty ELR lists.
#[test]
fn describe_topic_partitions_pages_by_cursor() {
    use kafka_protocol::error::ResponseError;
    use kafka_protocol::messages::{
        describe_topic_partitions_request, describe_topic_partitions_response,
        DescribeTopicPartitionsRequest,
    };
    let broker = TestBroker::start();
    let a = unique("dtp-a");
    let b = unique("dtp-b");
    create_topic(&broker.bootstrap(), &a, 3, &[]);
    create_topic(&broker.bootstrap(), &b, 2, &[]);
    let missing = unique("dtp-missing");
    let mut wire = Wire::connect(&broker.bootstrap());
    let names = |names: &[&String]| {
        names
            .iter()
            .map(|n| {
                describe_topic_partitions_request::TopicRequest::default()
                    .with_name(TopicName(StrBytes::from_string(n.to_string())))
            })
            .collect::<Vec<_>>()
    };
    let request = DescribeTopicPartitionsRequest::default()
        .with_topics(names(&[&b, &missing, &a]))
        .with_response_partition_limit(4);
    let first = wire.request(0, &request);
    let got: Vec<(String, i16, Vec<i32>)> = first
        .topics
        .iter()
        .map(|t| {
            (
                t.name.as_ref().unwrap().as_str().to_string(),
                t.error_code,
                t.partitions.iter().map(|p| p.partition_index).collect(),
            )
        })
        .collect();
    assert_eq!(got[0], (a.clone(), 0, vec![0, 1, 2]));
    assert_eq!(got[1], (b.clone(), 0, vec![0]));
    assert_eq!(got.len(), 2, "stops at the limit: {got:?}");
    let p = &first.topics[0].partitions[0];
    assert_eq!(
        (p.leader_id.0, p.replica_nodes.len(), p.isr_nodes.len()),
        (1, 1, 1)
    );
    assert_eq!(p.eligible_leader_replicas, Some(vec![]));
    let cursor = first.next_cursor.expect("more to come");
    assert_eq!(
        (cursor.topic_name.as_str(), cursor.partition_index),
        (b.as_str(), 1)
    );

    let second = wire.request(
        0,
        &request.with_cursor(Some(
            describe_topic_partitions_request::Cursor::default()
                .with_topic_name(cursor.topic_name.clone())
                .with_partition_index(1),
        )),
    );
    let rest: Vec<_> = second
        .topics
        .iter()
        .map(
            |t: &describe_topic_partitions_response::DescribeTopicPartitionsResponseTopic| {
                (
                    t.name.as_ref().unwrap().as_str().to_string(),
                    t.error_code,
                    t.partitions.len(),
                )
            },
        )
        .collect();
    assert_eq!(
        rest,
        vec![
            (b.clone(), 0, 1),
            (
                missing.clone(),
                ResponseError::UnknownTopicOrPartition.code(),
                0
            )
        ]
    );
    assert!(second.next_cursor.is_none());
}
