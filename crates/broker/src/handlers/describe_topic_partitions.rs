//! DescribeTopicPartitions (KIP-966): topics and their partitions, paged by
//! a cursor, as Kafka 4's admin client and `kafka-topics --describe` ask.
//! One node: every partition's leader, replicas and in-sync replicas are
//! this broker, and the eligible leader replicas are empty lists.

use super::metadata::ALL_TOPIC_OPERATIONS;
use super::RequestContext;
use crate::topics::Topic;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName,
};
use std::sync::Arc;

/// Kafka's `max.request.partition.size.limit` default: the most partitions
/// one response carries, whatever the request asks.
const MAX_PARTITIONS_PER_RESPONSE: i32 = 2000;

pub fn handle(
    ctx: &RequestContext<'_>,
    request: DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    let b = ctx.broker;
    let node = BrokerId(b.config.node_id);
    // Named topics, or every topic when none is named; in name order.
    let mut wanted: Vec<(String, Option<Arc<Topic>>)> = if request.topics.is_empty() {
        b.topics
            .list()
            .into_iter()
            .map(|t| (t.name.clone(), Some(t)))
            .collect()
    } else {
        request
            .topics
            .iter()
            .map(|t| {
                let name = t.name.as_str().to_string();
                let topic = b.topics.get(&name);
                (name, topic)
            })
            .collect()
    };
    wanted.sort_by(|a, b| a.0.cmp(&b.0));
    wanted.dedup_by(|a, b| a.0 == b.0);

    let (cursor_topic, mut first_partition) = match &request.cursor {
        Some(c) => (
            Some(c.topic_name.as_str().to_string()),
            c.partition_index.max(0),
        ),
        None => (None, 0),
    };
    let mut budget = request
        .response_partition_limit
        .clamp(1, MAX_PARTITIONS_PER_RESPONSE) as usize;
    let mut topics = Vec::new();
    let mut next_cursor = None;
    for (name, topic) in wanted {
        if cursor_topic.as_deref().is_some_and(|c| name.as_str() < c) {
            continue;
        }
        let Some(topic) = topic else {
            topics.push(
                DescribeTopicPartitionsResponseTopic::default()
                    .with_name(Some(TopicName(super::str_bytes(name))))
                    .with_error_code(ResponseError::UnknownTopicOrPartition.code()),
            );
            continue;
        };
        if budget == 0 {
            next_cursor = Some(cursor(&name, 0));
            break;
        }
        let start = usize::try_from(first_partition).unwrap_or(0);
        first_partition = 0;
        let partitions: Vec<_> = topic
            .partitions
            .iter()
            .skip(start)
            .take(budget)
            .map(|p| {
                DescribeTopicPartitionsResponsePartition::default()
                    .with_partition_index(p.index)
                    .with_leader_id(node)
                    .with_leader_epoch(0)
                    .with_replica_nodes(vec![node])
                    .with_isr_nodes(vec![node])
                    .with_eligible_leader_replicas(Some(Vec::new()))
                    .with_last_known_elr(Some(Vec::new()))
            })
            .collect();
        budget -= partitions.len();
        let next = start + partitions.len();
        topics.push(
            DescribeTopicPartitionsResponseTopic::default()
                .with_name(Some(TopicName(super::str_bytes(name.clone()))))
                .with_topic_id(topic.id)
                .with_is_internal(topic.is_internal())
                .with_partitions(partitions)
                .with_topic_authorized_operations(ALL_TOPIC_OPERATIONS),
        );
        if next < topic.partitions.len() {
            next_cursor = Some(cursor(&name, next as i32));
            break;
        }
    }
    DescribeTopicPartitionsResponse::default()
        .with_topics(topics)
        .with_next_cursor(next_cursor)
}

fn cursor(topic: &str, partition: i32) -> Cursor {
    Cursor::default()
        .with_topic_name(TopicName(super::str_bytes(topic.to_string())))
        .with_partition_index(partition)
}
