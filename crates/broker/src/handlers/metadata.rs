//! Metadata: brokers, the controller, topics (with ids) and partitions;
//! auto-creates requested topics when `auto.create.topics.enable`.

use super::{blocking, str_bytes, RequestContext};
use crate::topics::{validate_topic_name, Topic};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use std::collections::BTreeMap;
use std::sync::Arc;
use uuid::Uuid;

/// READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS.
pub const ALL_TOPIC_OPERATIONS: i32 = 0b1101_1111_1000;
/// CREATE, ALTER, DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS,
/// IDEMPOTENT_WRITE, CREATE_TOKENS, DESCRIBE_TOKENS.
pub const ALL_CLUSTER_OPERATIONS: i32 = 0b111_1111_1010_0000;

pub async fn handle(ctx: &RequestContext<'_>, request: MetadataRequest) -> MetadataResponse {
    let b = ctx.broker;
    let node = BrokerId(b.config.node_id);
    let topic_ops = if request.include_topic_authorized_operations {
        ALL_TOPIC_OPERATIONS
    } else {
        i32::MIN
    };
    let mut topics = Vec::new();
    match request.topics {
        None => {
            for topic in b.topics.list() {
                topics.push(describe_topic(&topic, node, topic_ops));
            }
        }
        Some(requested) => {
            for entry in requested {
                let name = entry
                    .name
                    .as_ref()
                    .map(|n| n.as_str().to_string())
                    .filter(|_| entry.topic_id.is_nil());
                let response = match name {
                    Some(name) => {
                        topic_by_name(
                            ctx,
                            &name,
                            request.allow_auto_topic_creation,
                            node,
                            topic_ops,
                        )
                        .await
                    }
                    None => match b.topics.get_by_id(entry.topic_id) {
                        Some(topic) => describe_topic(&topic, node, topic_ops),
                        None => MetadataResponseTopic::default()
                            .with_topic_id(entry.topic_id)
                            .with_error_code(ResponseError::UnknownTopicId.code()),
                    },
                };
                topics.push(response);
            }
        }
    }
    MetadataResponse::default()
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(node)
            .with_host(str_bytes(b.advertised_host.clone()))
            .with_port(b.advertised_port)])
        .with_cluster_id(Some(str_bytes(b.cluster_id.clone())))
        .with_controller_id(node)
        .with_topics(topics)
        .with_cluster_authorized_operations(if request.include_cluster_authorized_operations {
            ALL_CLUSTER_OPERATIONS
        } else {
            i32::MIN
        })
}

async fn topic_by_name(
    ctx: &RequestContext<'_>,
    name: &str,
    allow_auto_create: bool,
    node: BrokerId,
    topic_ops: i32,
) -> MetadataResponseTopic {
    let b = ctx.broker;
    if let Some(topic) = b.topics.get(name) {
        return describe_topic(&topic, node, topic_ops);
    }
    let error = |code: ResponseError| {
        MetadataResponseTopic::default()
            .with_name(Some(TopicName(str_bytes(name))))
            .with_error_code(code.code())
    };
    if let Err(e) = validate_topic_name(name) {
        return error(e.code);
    }
    if !(allow_auto_create && b.config.auto_create_topics_enable) {
        return error(ResponseError::UnknownTopicOrPartition);
    }
    match auto_create(ctx.broker, name).await {
        Ok(topic) => describe_topic(&topic, node, topic_ops),
        Err(code) => error(code),
    }
}

/// Creates a topic with the broker defaults; a concurrent creation is fine.
pub async fn auto_create(
    broker: &Arc<crate::server::BrokerContext>,
    name: &str,
) -> Result<Arc<Topic>, ResponseError> {
    let b = broker.clone();
    let topic_name = name.to_string();
    let result = blocking(move || {
        b.topics
            .create_topic(&topic_name, b.config.num_partitions, BTreeMap::new(), false)
    })
    .await;
    match result {
        Ok(topic) => {
            tracing::info!(topic = name, "auto-created topic");
            Ok(topic)
        }
        Err(e) if e.code == ResponseError::TopicAlreadyExists => broker
            .topics
            .get(name)
            .ok_or(ResponseError::UnknownTopicOrPartition),
        Err(e) => {
            tracing::warn!(topic = name, error = %e, "auto-creating topic failed");
            Err(e.code)
        }
    }
}

fn describe_topic(topic: &Topic, node: BrokerId, topic_ops: i32) -> MetadataResponseTopic {
    let partitions = topic
        .partitions
        .iter()
        .map(|p| {
            MetadataResponsePartition::default()
                .with_partition_index(p.index)
                .with_leader_id(node)
                .with_leader_epoch(0)
                .with_replica_nodes(vec![node])
                .with_isr_nodes(vec![node])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(topic.name.clone()))))
        .with_topic_id(topic.id)
        .with_is_internal(topic.is_internal())
        .with_partitions(partitions)
        .with_topic_authorized_operations(topic_ops)
}

/// Resolves a request's topic reference: by id when one is given (newer
/// versions), else by name.
pub fn find_topic(
    broker: &crate::server::BrokerContext,
    name: &str,
    id: Uuid,
) -> Result<Arc<Topic>, ResponseError> {
    if !id.is_nil() {
        return broker
            .topics
            .get_by_id(id)
            .ok_or(ResponseError::UnknownTopicId);
    }
    broker
        .topics
        .get(name)
        .ok_or(ResponseError::UnknownTopicOrPartition)
}
