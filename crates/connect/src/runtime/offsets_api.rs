//! KIP-875: reading, altering and resetting a connector's offsets. Source
//! offsets live in the offset store; sink offsets are the committed offsets
//! of the connector's consumer group (`connect-NAME`).

use crate::distributed::wire::{connect_to_coordinator, error_name};
use crate::error::{ConnectError, Result};
use crate::runtime::herder::Herder;
use crate::runtime::kafka::{client_config, REQUEST_TIMEOUT};
use crate::runtime::sink_task::group_id;
use crate::runtime::store::JsonObject;
use crate::sdk::config::split_list;
use crate::sdk::ConnectorType;
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::{GroupId, OffsetDeleteRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{json, Value};
use std::time::Duration;

impl Herder {
    /// `GET /connectors/{name}/offsets`.
    pub async fn offsets(&self, name: &str) -> Result<Value> {
        let info = self.connector_info(name)?;
        let entries: Vec<Value> = match info.ty {
            Some(ConnectorType::Source) => {
                self.context.offsets.refresh().await?;
                self.context
                    .offsets
                    .all(name)
                    .into_iter()
                    .map(|(partition, offset)| json!({"partition": partition, "offset": offset}))
                    .collect()
            }
            Some(ConnectorType::Sink) => self
                .sink_offsets(name, &info.config)
                .await?
                .into_iter()
                .map(|(topic, partition, offset)| {
                    json!({
                        "partition": {"kafka_topic": topic, "kafka_partition": partition},
                        "offset": {"kafka_offset": offset},
                    })
                })
                .collect(),
            None => {
                return Err(ConnectError::BadRequest(format!(
                    "connector {name} has an unknown class"
                )))
            }
        };
        Ok(json!({ "offsets": entries }))
    }

    /// Committed offsets of the sink's group for every partition of its topics.
    async fn sink_offsets(
        &self,
        name: &str,
        config: &crate::sdk::config::ConfigMap,
    ) -> Result<Vec<(String, i32, i64)>> {
        let consumer = self.group_client(name, config)?;
        let topics = split_list(config.get("topics").map_or("", String::as_str));
        let regex = config
            .get("topics.regex")
            .filter(|r| !r.trim().is_empty())
            .map(|r| regex::Regex::new(&format!("^(?:{r})$")))
            .transpose()
            .map_err(|e| ConnectError::BadRequest(e.to_string()))?;
        tokio::task::spawn_blocking(move || {
            let metadata = consumer
                .fetch_metadata(None, REQUEST_TIMEOUT)
                .map_err(|e| ConnectError::kafka("reading metadata", e))?;
            let mut tpl = TopicPartitionList::new();
            for topic in metadata.topics() {
                let wanted = topics.iter().any(|t| t == topic.name())
                    || regex.as_ref().is_some_and(|r| r.is_match(topic.name()));
                if wanted {
                    for p in topic.partitions() {
                        tpl.add_partition(topic.name(), p.id());
                    }
                }
            }
            if tpl.count() == 0 {
                return Ok(Vec::new());
            }
            let committed = consumer
                .committed_offsets(tpl, REQUEST_TIMEOUT)
                .map_err(|e| ConnectError::kafka("reading committed offsets", e))?;
            let mut out: Vec<(String, i32, i64)> = committed
                .elements()
                .iter()
                .filter_map(|e| match e.offset() {
                    Offset::Offset(o) => Some((e.topic().to_string(), e.partition(), o)),
                    _ => None,
                })
                .collect();
            out.sort();
            Ok(out)
        })
        .await
        .map_err(ConnectError::failed)?
    }

    fn group_client(
        &self,
        name: &str,
        config: &crate::sdk::config::ConfigMap,
    ) -> Result<BaseConsumer> {
        let props = self.context.client_props("consumer", config);
        let mut client = client_config(&props);
        client
            .set("group.id", group_id(name))
            .set("enable.auto.commit", "false");
        client
            .create()
            .map_err(|e| ConnectError::kafka("creating a group client", e))
    }

    /// `PATCH /connectors/{name}/offsets`.
    pub async fn alter_offsets(&self, name: &str, body: &Value) -> Result<Value> {
        let kind = self.require_stopped(name)?;
        let entries = body
            .get("offsets")
            .and_then(Value::as_array)
            .ok_or_else(|| {
                ConnectError::BadRequest("the request body must have an \"offsets\" array".into())
            })?;
        match kind {
            ConnectorType::Source => {
                let mut offsets = Vec::new();
                for (i, entry) in entries.iter().enumerate() {
                    let partition = entry
                        .get("partition")
                        .and_then(Value::as_object)
                        .ok_or_else(|| {
                            ConnectError::BadRequest(format!(
                                "offsets[{i}].partition must be an object"
                            ))
                        })?;
                    let offset = match entry.get("offset") {
                        None | Some(Value::Null) => None,
                        Some(Value::Object(o)) => Some(o.clone()),
                        Some(_) => {
                            return Err(ConnectError::BadRequest(format!(
                                "offsets[{i}].offset must be an object or null"
                            )))
                        }
                    };
                    offsets.push((partition.clone(), offset));
                }
                self.context.offsets.put(name, offsets).await?;
            }
            ConnectorType::Sink => {
                let mut commits = Vec::new();
                let mut resets = Vec::new();
                for (i, entry) in entries.iter().enumerate() {
                    let partition = entry.get("partition").and_then(Value::as_object);
                    let topic = partition
                        .and_then(|p| p.get("kafka_topic"))
                        .and_then(Value::as_str);
                    let number = partition
                        .and_then(|p| p.get("kafka_partition"))
                        .and_then(Value::as_i64);
                    let (Some(topic), Some(number)) = (topic, number) else {
                        return Err(ConnectError::BadRequest(format!(
                            "offsets[{i}].partition must have kafka_topic (a string) and kafka_partition (an integer)"
                        )));
                    };
                    let number = i32::try_from(number).map_err(|_| {
                        ConnectError::BadRequest(format!("offsets[{i}]: partition out of range"))
                    })?;
                    match entry.get("offset") {
                        None | Some(Value::Null) => resets.push((topic.to_string(), number)),
                        Some(o) => match o.get("kafka_offset").and_then(Value::as_i64) {
                            Some(offset) if offset >= 0 => commits.push((topic.to_string(), number, offset)),
                            _ => return Err(ConnectError::BadRequest(format!(
                                "offsets[{i}].offset must be null or have a non-negative kafka_offset"
                            ))),
                        },
                    }
                }
                let config = self.connector_info(name)?.config;
                if !commits.is_empty() {
                    let consumer = self.group_client(name, &config)?;
                    let mut tpl = TopicPartitionList::new();
                    for (topic, partition, offset) in &commits {
                        tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset))
                            .map_err(|e| ConnectError::kafka("building the commit", e))?;
                    }
                    tokio::task::spawn_blocking(move || consumer.commit(&tpl, CommitMode::Sync))
                        .await
                        .map_err(ConnectError::failed)?
                        .map_err(|e| ConnectError::kafka("committing offsets", e))?;
                }
                self.delete_group_offsets(name, &resets).await?;
            }
        }
        Ok(json!({"message": "The offsets for this connector have been altered successfully"}))
    }

    /// `DELETE /connectors/{name}/offsets`.
    pub async fn reset_offsets(&self, name: &str) -> Result<Value> {
        let kind = self.require_stopped(name)?;
        match kind {
            ConnectorType::Source => {
                self.context.offsets.refresh().await?;
                let all: Vec<(JsonObject, Option<JsonObject>)> = self
                    .context
                    .offsets
                    .all(name)
                    .into_iter()
                    .map(|(p, _)| (p, None))
                    .collect();
                self.context.offsets.put(name, all).await?;
            }
            ConnectorType::Sink => {
                let config = self.connector_info(name)?.config;
                let partitions: Vec<(String, i32)> = self
                    .sink_offsets(name, &config)
                    .await?
                    .into_iter()
                    .map(|(t, p, _)| (t, p))
                    .collect();
                self.delete_group_offsets(name, &partitions).await?;
            }
        }
        Ok(json!({"message": "The offsets for this connector have been reset successfully"}))
    }

    async fn delete_group_offsets(&self, name: &str, partitions: &[(String, i32)]) -> Result<()> {
        if partitions.is_empty() {
            return Ok(());
        }
        let group = group_id(name);
        let mut connection =
            connect_to_coordinator(&self.context.config.bootstrap_servers, &group).await?;
        let mut topics: Vec<OffsetDeleteRequestTopic> = Vec::new();
        for (topic, partition) in partitions {
            let entry = OffsetDeleteRequestPartition::default().with_partition_index(*partition);
            match topics.iter_mut().find(|t| t.name.0.as_str() == topic) {
                Some(t) => t.partitions.push(entry),
                None => topics.push(
                    OffsetDeleteRequestTopic::default()
                        .with_name(TopicName(StrBytes::from_string(topic.clone())))
                        .with_partitions(vec![entry]),
                ),
            }
        }
        let request = OffsetDeleteRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.clone())))
            .with_topics(topics);
        let (_, response) = connection
            .send(&request, 0, Duration::from_secs(30))
            .await?;
        if response.error_code != 0 {
            return Err(ConnectError::Conflict(format!(
                "deleting the offsets of group {group}: {}",
                error_name(response.error_code)
            )));
        }
        for topic in response.topics {
            for p in topic.partitions {
                if p.error_code != 0 {
                    return Err(ConnectError::Conflict(format!(
                        "deleting the offset of {}-{}: {}",
                        topic.name.0.as_str(),
                        p.partition_index,
                        error_name(p.error_code)
                    )));
                }
            }
        }
        Ok(())
    }
}
