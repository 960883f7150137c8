//! CreateTopics, DeleteTopics and CreatePartitions.

use super::{blocking, str_bytes, RequestContext};
use crate::error::ApiError;
use crate::topic_config;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, TopicName,
};
use std::collections::{BTreeMap, HashSet};

pub async fn create_topics(
    ctx: &RequestContext<'_>,
    request: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let b = ctx.broker.clone();
    let node_id = b.config.node_id;
    let peer = ctx.peer;
    let topics = blocking(move || {
        let mut seen = HashSet::new();
        let duplicates: HashSet<String> = request
            .topics
            .iter()
            .filter(|t| !seen.insert(t.name.as_str().to_string()))
            .map(|t| t.name.as_str().to_string())
            .collect();
        request
            .topics
            .into_iter()
            .map(|t| {
                let name = t.name.as_str().to_string();
                let result = CreatableTopicResult::default().with_name(t.name.clone());
                let outcome = (|| {
                    if duplicates.contains(&name) {
                        return Err(ApiError::new(
                            ResponseError::InvalidRequest,
                            format!("Create topics request from client contains duplicate topic: {name}"),
                        ));
                    }
                    let mut partitions = t.num_partitions;
                    if !t.assignments.is_empty() {
                        if t.num_partitions != -1 || t.replication_factor != -1 {
                            return Err(ApiError::new(
                                ResponseError::InvalidRequest,
                                "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.",
                            ));
                        }
                        for a in &t.assignments {
                            if a.broker_ids.iter().any(|id| id.0 != node_id) || a.broker_ids.len() != 1 {
                                return Err(ApiError::new(
                                    ResponseError::InvalidReplicaAssignment,
                                    format!("Replica assignment {:?} names brokers other than {node_id}", a.broker_ids),
                                ));
                            }
                        }
                        partitions = t.assignments.len() as i32;
                    } else {
                        if partitions == -1 {
                            partitions = b.config.num_partitions;
                        }
                        if t.replication_factor != -1 && t.replication_factor != 1 {
                            let message = if t.replication_factor < 1 {
                                "Replication factor must be larger than 0, or -1 to use the default value.".to_string()
                            } else {
                                format!("Unable to replicate the partition {} time(s): The target replication factor of {} cannot be reached because only 1 broker(s) are registered.", t.replication_factor, t.replication_factor)
                            };
                            return Err(ApiError::new(ResponseError::InvalidReplicationFactor, message));
                        }
                    }
                    let mut configs = BTreeMap::new();
                    for c in &t.configs {
                        match &c.value {
                            Some(v) => {
                                configs.insert(c.name.as_str().to_string(), v.as_str().to_string());
                            }
                            None => {
                                return Err(ApiError::new(
                                    ResponseError::InvalidConfig,
                                    format!("Null value not supported for topic configs: {}", c.name.as_str()),
                                ))
                            }
                        }
                    }
                    b.topics.create_topic(&name, partitions, configs, request.validate_only)
                })();
                match outcome {
                    Ok(topic) => {
                        let defaults = b.topics.defaults();
                        let configs = topic_config::resolve_all(&topic.configs, &defaults)
                            .into_iter()
                            .map(|c| {
                                CreatableTopicConfigs::default()
                                    .with_name(str_bytes(c.name))
                                    .with_value(Some(str_bytes(c.value)))
                                    .with_config_source(c.source as i8)
                                    .with_read_only(false)
                                    .with_is_sensitive(false)
                            })
                            .collect();
                        let partitions = if request.validate_only {
                            if t.num_partitions == -1 { b.config.num_partitions } else { t.num_partitions }
                        } else {
                            topic.partitions.len() as i32
                        };
                        result
                            .with_topic_id(topic.id)
                            .with_num_partitions(partitions)
                            .with_replication_factor(1)
                            .with_configs(Some(configs))
                    }
                    Err(e) => {
                        tracing::info!(%peer, topic = %name, error = %e, "create topic rejected");
                        result
                            .with_error_code(e.code.code())
                            .with_error_message(Some(str_bytes(e.message)))
                            .with_num_partitions(-1)
                            .with_replication_factor(-1)
                    }
                }
            })
            .collect()
    })
    .await;
    CreateTopicsResponse::default().with_topics(topics)
}

pub async fn delete_topics(
    ctx: &RequestContext<'_>,
    request: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    let b = ctx.broker.clone();
    // v0-5 name topics in `topic_names`; v6+ in `topics`, by name or id.
    let mut targets: Vec<(Option<String>, uuid::Uuid)> = request
        .topic_names
        .iter()
        .map(|n| (Some(n.as_str().to_string()), uuid::Uuid::nil()))
        .collect();
    targets.extend(
        request
            .topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.as_str().to_string()), t.topic_id)),
    );
    let responses = blocking(move || {
        targets
            .into_iter()
            .map(|(name, id)| {
                let topic = match (&name, id.is_nil()) {
                    (_, false) => b.topics.get_by_id(id).ok_or(ResponseError::UnknownTopicId),
                    (Some(name), true) => b
                        .topics
                        .get(name)
                        .ok_or(ResponseError::UnknownTopicOrPartition),
                    (None, true) => Err(ResponseError::InvalidRequest),
                };
                let result = DeletableTopicResult::default()
                    .with_name(name.clone().map(|n| TopicName(str_bytes(n))))
                    .with_topic_id(id);
                match topic.and_then(|t| {
                    b.topics
                        .delete_topic(&t.name)
                        .map(|id| (t.name.clone(), id))
                        .map_err(|e| e.code)
                }) {
                    Ok((name, id)) => result
                        .with_name(Some(TopicName(str_bytes(name))))
                        .with_topic_id(id),
                    Err(code) => result.with_error_code(code.code()),
                }
            })
            .collect()
    })
    .await;
    DeleteTopicsResponse::default().with_responses(responses)
}

pub async fn create_partitions(
    ctx: &RequestContext<'_>,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let b = ctx.broker.clone();
    let node_id = b.config.node_id;
    let results = blocking(move || {
        request
            .topics
            .into_iter()
            .map(|t| {
                let result = CreatePartitionsTopicResult::default().with_name(t.name.clone());
                let bad_assignment = t
                    .assignments
                    .iter()
                    .flatten()
                    .any(|a| a.broker_ids.iter().any(|id| id.0 != node_id));
                let outcome = if bad_assignment {
                    Err(ApiError::new(
                        ResponseError::InvalidReplicaAssignment,
                        format!("only broker {node_id} exists"),
                    ))
                } else {
                    b.topics
                        .create_partitions(t.name.as_str(), t.count, request.validate_only)
                };
                match outcome {
                    Ok(()) => result,
                    Err(e) => result
                        .with_error_code(e.code.code())
                        .with_error_message(Some(str_bytes(e.message))),
                }
            })
            .collect()
    })
    .await;
    CreatePartitionsResponse::default().with_results(results)
}
