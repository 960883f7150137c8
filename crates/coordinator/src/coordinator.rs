//! The group coordinator: every group, its members and committed offsets.
//! Handlers return an [`Outcome`]: the records to append to
//! `__consumer_offsets`, the response (or none while it is parked) and the
//! parked responses that this call completed. [`GroupCoordinator::replay`]
//! rebuilds the state from those records.

use crate::group::{ClassicGroup, GroupState, Token};
use crate::records::{
    group_record, offset_record, CoordinatorRecord, GroupValue, OffsetValue, RecordKey,
};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    GroupId, JoinGroupResponse, ListGroupsRequest, ListGroupsResponse, OffsetCommitRequest,
    OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse, OffsetFetchRequest,
    OffsetFetchResponse, SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;

#[derive(Clone, Debug)]
pub struct GroupConfig {
    /// `group.initial.rebalance.delay.ms`
    pub initial_rebalance_delay_ms: i64,
    /// `group.min.session.timeout.ms`
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`
    pub max_session_timeout_ms: i32,
    /// `group.max.size`
    pub max_group_size: usize,
    /// `offsets.retention.minutes`, in ms
    pub offsets_retention_ms: i64,
    /// `offset.metadata.max.bytes`
    pub offset_metadata_max_bytes: usize,
    /// `group.consumer.heartbeat.interval.ms` (KIP-848 groups)
    pub consumer_heartbeat_interval_ms: i32,
    /// `group.consumer.session.timeout.ms` (KIP-848 groups)
    pub consumer_session_timeout_ms: i32,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            initial_rebalance_delay_ms: 3000,
            min_session_timeout_ms: 6000,
            max_session_timeout_ms: 1_800_000,
            max_group_size: i32::MAX as usize,
            offsets_retention_ms: 7 * 24 * 3_600_000,
            offset_metadata_max_bytes: 4096,
            consumer_heartbeat_interval_ms: 5000,
            consumer_session_timeout_ms: 45_000,
        }
    }
}

/// A deferred response that a later call completed.
#[derive(Debug)]
pub enum Completion {
    Join(Token, JoinGroupResponse),
    Sync(Token, SyncGroupResponse),
}

#[derive(Debug)]
pub struct Outcome<R> {
    /// None: the request is parked under its token; a later [`Completion`] answers it.
    pub response: Option<R>,
    pub records: Vec<CoordinatorRecord>,
    pub completions: Vec<Completion>,
}

impl<R> Outcome<R> {
    pub fn respond(response: R) -> Self {
        Outcome {
            response: Some(response),
            records: Vec::new(),
            completions: Vec::new(),
        }
    }
    pub fn pending() -> Self {
        Outcome {
            response: None,
            records: Vec::new(),
            completions: Vec::new(),
        }
    }
}

/// A topic's partitions and their committed offsets (None: none committed).
type TopicOffsets = (String, Vec<(i32, Option<OffsetValue>)>);

pub struct GroupCoordinator {
    pub(crate) config: GroupConfig,
    pub(crate) groups: BTreeMap<String, ClassicGroup>,
}

/// One partition of an OffsetCommit or TxnOffsetCommit: the value to store,
/// or why it is refused (metadata over `offset.metadata.max.bytes`, unknown
/// partition).
pub(crate) fn offset_to_commit(
    max_metadata: usize,
    partition_exists: bool,
    offset: i64,
    leader_epoch: i32,
    metadata: Option<&StrBytes>,
    now: i64,
) -> Result<OffsetValue, ResponseError> {
    if metadata.is_some_and(|m| m.len() > max_metadata) {
        return Err(ResponseError::OffsetMetadataTooLarge);
    }
    if !partition_exists {
        return Err(ResponseError::UnknownTopicOrPartition);
    }
    Ok(OffsetValue {
        offset,
        leader_epoch,
        metadata: metadata.map(|m| m.as_str().to_string()),
        commit_timestamp: now,
    })
}

fn s(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

impl GroupCoordinator {
    pub fn new(config: GroupConfig) -> Self {
        GroupCoordinator {
            config,
            groups: BTreeMap::new(),
        }
    }

    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    pub fn group(&self, group_id: &str) -> Option<&ClassicGroup> {
        self.groups.get(group_id)
    }

    pub fn group_ids(&self) -> Vec<String> {
        self.groups.keys().cloned().collect()
    }

    /// Applies one record read back from `__consumer_offsets`.
    pub fn replay(&mut self, now: i64, key: &[u8], value: Option<&[u8]>) {
        let Some(key) = RecordKey::decode(key) else {
            tracing::warn!(key = %String::from_utf8_lossy(key), "skipping unknown __consumer_offsets record");
            return;
        };
        match key {
            RecordKey::Offset {
                group: group_id,
                topic,
                partition,
            } => match value {
                Some(v) => match serde_json::from_slice::<OffsetValue>(v) {
                    Ok(offset) => {
                        let group = self
                            .groups
                            .entry(group_id.clone())
                            .or_insert_with(|| ClassicGroup::new(&group_id, now));
                        group.offsets.insert((topic, partition), offset);
                    }
                    Err(e) => {
                        tracing::warn!(group = %group_id, error = %e, "skipping unreadable offset record")
                    }
                },
                None => {
                    if let Some(group) = self.groups.get_mut(&group_id) {
                        group.offsets.remove(&(topic, partition));
                    }
                }
            },
            RecordKey::TxnOffset {
                group: group_id,
                producer_id,
                topic,
                partition,
            } => {
                let group = self
                    .groups
                    .entry(group_id.clone())
                    .or_insert_with(|| ClassicGroup::new(&group_id, now));
                match value.and_then(|v| serde_json::from_slice::<OffsetValue>(v).ok()) {
                    Some(offset) => {
                        group
                            .pending_txn_offsets
                            .entry(producer_id)
                            .or_default()
                            .insert((topic, partition), offset);
                    }
                    None => {
                        if let Some(pending) = group.pending_txn_offsets.get_mut(&producer_id) {
                            pending.remove(&(topic, partition));
                            if pending.is_empty() {
                                group.pending_txn_offsets.remove(&producer_id);
                            }
                        }
                    }
                }
            }
            RecordKey::ConsumerGroup(group_id) => match value {
                Some(v) => match serde_json::from_slice::<crate::records::ConsumerGroupValue>(v) {
                    Ok(value) => {
                        let group = self
                            .groups
                            .entry(group_id.clone())
                            .or_insert_with(|| ClassicGroup::new(&group_id, now));
                        group.consumer =
                            Some(crate::consumer::ConsumerGroupState::restore(value, now));
                    }
                    Err(e) => {
                        tracing::warn!(group = %group_id, error = %e, "skipping unreadable group record")
                    }
                },
                None => {
                    if let Some(group) = self.groups.get_mut(&group_id) {
                        group.consumer = None;
                    }
                }
            },
            RecordKey::Group(group_id) => match value {
                Some(v) => match serde_json::from_slice::<GroupValue>(v) {
                    Ok(value) => {
                        let group = self
                            .groups
                            .entry(group_id.clone())
                            .or_insert_with(|| ClassicGroup::new(&group_id, now));
                        group.restore(value, now);
                    }
                    Err(e) => {
                        tracing::warn!(group = %group_id, error = %e, "skipping unreadable group record")
                    }
                },
                None => {
                    self.groups.remove(&group_id);
                }
            },
        }
    }

    /// Timers: session and rebalance timeouts, offset retention. Call often
    /// (every ~100 ms).
    pub fn tick(&mut self, now: i64) -> Outcome<()> {
        let mut out = Outcome::pending();
        self.tick_classic(now, &mut out);
        self.tick_consumer(now, &mut out);
        self.expire_offsets(now, &mut out);
        out
    }

    /// KIP-211: once a group is empty, its offsets expire
    /// `offsets.retention.minutes` after the later of their commit and the
    /// moment the group became empty; an empty group with no offsets goes.
    /// KIP-496: in a live consumer group, offsets of topics no member
    /// subscribes to expire by their commit time.
    fn expire_offsets<R>(&mut self, now: i64, out: &mut Outcome<R>) {
        let retention = self.config.offsets_retention_ms;
        let mut dead = Vec::new();
        for (group_id, group) in &mut self.groups {
            let empty = group.is_empty();
            let subscribed: Option<Vec<String>> = if empty {
                None
            } else if let Some(consumer) = &group.consumer {
                Some(
                    consumer
                        .members
                        .values()
                        .flat_map(|m| m.subscribed_topics.iter().cloned())
                        .collect(),
                )
            } else if group.state == GroupState::Stable {
                group.subscribed_topics()
            } else {
                continue;
            };
            if !empty && subscribed.is_none() {
                continue;
            }
            let empty_since = group.state_timestamp;
            let expired: Vec<(String, i32)> = group
                .offsets
                .iter()
                .filter(|((topic, _), v)| match &subscribed {
                    None => v.commit_timestamp.max(empty_since) + retention <= now,
                    Some(topics) => {
                        !topics.contains(topic) && v.commit_timestamp + retention <= now
                    }
                })
                .map(|(k, _)| k.clone())
                .collect();
            for (topic, partition) in expired {
                group.offsets.remove(&(topic.clone(), partition));
                out.records
                    .push(offset_record(group_id, &topic, partition, None));
                tracing::info!(group = %group_id, %topic, partition, "committed offset expired");
            }
            if empty && group.offsets.is_empty() && empty_since + retention <= now {
                dead.push(group_id.clone());
            }
        }
        for group_id in dead {
            self.groups.remove(&group_id);
            out.records.push(group_record(&group_id, None));
        }
    }

    /// A parked request's connection went away.
    pub fn cancel(&mut self, token: Token) {
        for group in self.groups.values_mut() {
            for member in &mut group.members {
                if member.awaiting_join == Some(token) {
                    member.awaiting_join = None;
                }
                if member.awaiting_sync == Some(token) {
                    member.awaiting_sync = None;
                }
            }
        }
    }

    /// OffsetCommit for classic groups and standalone (generation -1) commits.
    pub fn commit_offsets(
        &mut self,
        now: i64,
        request: OffsetCommitRequest,
        partition_exists: impl Fn(&str, i32) -> bool,
    ) -> Outcome<OffsetCommitResponse> {
        let group_id = request.group_id.as_str().to_string();
        let member_id = request.member_id.as_str();
        let generation = request.generation_id_or_member_epoch;
        let group_error = if group_id.is_empty() {
            Some(ResponseError::InvalidGroupId)
        } else {
            match self.groups.get_mut(&group_id) {
                None if generation < 0 => None,
                None => Some(ResponseError::IllegalGeneration),
                Some(group) if generation < 0 && group.is_empty() => None,
                Some(group)
                    if group
                        .consumer
                        .as_ref()
                        .is_some_and(|c| !c.members.is_empty()) =>
                {
                    let consumer = group.consumer.as_ref().expect("checked");
                    match consumer.members.get(member_id) {
                        None => Some(ResponseError::UnknownMemberId),
                        Some(m) if m.member_epoch != generation => {
                            Some(ResponseError::StaleMemberEpoch)
                        }
                        Some(_) => None,
                    }
                }
                Some(group) => {
                    let instance = request.group_instance_id.as_ref().map(|i| i.as_str());
                    let fenced = instance
                        .and_then(|i| group.member_by_instance(i))
                        .is_some_and(|m| m.member_id != member_id);
                    if fenced {
                        Some(ResponseError::FencedInstanceId)
                    } else if group.state == GroupState::CompletingRebalance {
                        Some(ResponseError::RebalanceInProgress)
                    } else if group.member(member_id).is_none() {
                        Some(ResponseError::UnknownMemberId)
                    } else if generation != group.generation {
                        Some(ResponseError::IllegalGeneration)
                    } else {
                        group
                            .member_mut(member_id)
                            .expect("checked")
                            .last_heartbeat_ms = now;
                        None
                    }
                }
            }
        };
        let mut out = Outcome::pending();
        let max_metadata = self.config.offset_metadata_max_bytes;
        let mut topics = Vec::with_capacity(request.topics.len());
        for topic in &request.topics {
            let name = topic.name.as_str();
            let mut partitions = Vec::with_capacity(topic.partitions.len());
            for p in &topic.partitions {
                let checked = match group_error {
                    Some(code) => Err(code),
                    None => offset_to_commit(
                        max_metadata,
                        partition_exists(name, p.partition_index),
                        p.committed_offset,
                        p.committed_leader_epoch,
                        p.committed_metadata.as_ref(),
                        now,
                    ),
                };
                let code = checked.as_ref().err().copied();
                if let Ok(value) = checked {
                    out.records.push(offset_record(
                        &group_id,
                        name,
                        p.partition_index,
                        Some(&value),
                    ));
                    let group = self
                        .groups
                        .entry(group_id.clone())
                        .or_insert_with(|| ClassicGroup::new(&group_id, now));
                    group
                        .offsets
                        .insert((name.to_string(), p.partition_index), value);
                }
                partitions.push(
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code.map_or(0, |c| c.code())),
                );
            }
            topics.push(
                OffsetCommitResponseTopic::default()
                    .with_name(topic.name.clone())
                    .with_topic_id(topic.topic_id)
                    .with_partitions(partitions),
            );
        }
        out.response = Some(OffsetCommitResponse::default().with_topics(topics));
        out
    }

    /// Committed offsets of one group: (topic, partition) → value, optionally
    /// restricted to the given topics/partitions (missing ones come back as -1).
    fn committed(
        &self,
        group_id: &str,
        topics: Option<Vec<(String, Vec<i32>)>>,
    ) -> Vec<TopicOffsets> {
        let group = self.groups.get(group_id);
        match topics {
            Some(topics) => topics
                .into_iter()
                .map(|(topic, partitions)| {
                    let values = partitions
                        .into_iter()
                        .map(|p| {
                            (
                                p,
                                group
                                    .and_then(|g| g.offsets.get(&(topic.clone(), p)))
                                    .cloned(),
                            )
                        })
                        .collect();
                    (topic, values)
                })
                .collect(),
            None => {
                let mut by_topic: BTreeMap<String, Vec<(i32, Option<OffsetValue>)>> =
                    BTreeMap::new();
                if let Some(group) = group {
                    for ((topic, partition), value) in &group.offsets {
                        by_topic
                            .entry(topic.clone())
                            .or_default()
                            .push((*partition, Some(value.clone())));
                    }
                }
                by_topic.into_iter().collect()
            }
        }
    }

    pub fn fetch_offsets(&self, version: i16, request: OffsetFetchRequest) -> OffsetFetchResponse {
        // require_stable (v7+, read_committed consumers): a partition with an
        // offset still pending in a transaction answers UNSTABLE_OFFSET_COMMIT
        // so the client retries instead of starting from a stale position.
        let unstable = |group: &str, topic: &str, partition: i32| {
            if version >= 7
                && request.require_stable
                && self.has_pending_txn_offset(group, topic, partition)
            {
                ResponseError::UnstableOffsetCommit.code()
            } else {
                0
            }
        };
        if version < 8 {
            let group_id = request.group_id.as_str().to_string();
            let topics = request.topics.map(|ts| {
                ts.into_iter()
                    .map(|t| (t.name.as_str().to_string(), t.partition_indexes))
                    .collect()
            });
            let topics = self
                .committed(request.group_id.as_str(), topics)
                .into_iter()
                .map(|(topic, partitions)| {
                    OffsetFetchResponseTopic::default()
                        .with_name(TopicName(s(&topic)))
                        .with_partitions(
                            partitions
                                .into_iter()
                                .map(|(p, v)| {
                                    OffsetFetchResponsePartition::default()
                                        .with_error_code(unstable(&group_id, &topic, p))
                                        .with_partition_index(p)
                                        .with_committed_offset(v.as_ref().map_or(-1, |v| v.offset))
                                        .with_committed_leader_epoch(
                                            v.as_ref().map_or(-1, |v| v.leader_epoch),
                                        )
                                        .with_metadata(Some(s(v
                                            .as_ref()
                                            .and_then(|v| v.metadata.as_deref())
                                            .unwrap_or(""))))
                                })
                                .collect(),
                        )
                })
                .collect();
            return OffsetFetchResponse::default().with_topics(topics);
        }
        let groups = request
            .groups
            .into_iter()
            .map(|g| {
                let topics = g.topics.map(|ts| {
                    ts.into_iter()
                        .map(|t| (t.name.as_str().to_string(), t.partition_indexes))
                        .collect()
                });
                let group_id = g.group_id.as_str().to_string();
                let topics = self
                    .committed(g.group_id.as_str(), topics)
                    .into_iter()
                    .map(|(topic, partitions)| {
                        OffsetFetchResponseTopics::default()
                            .with_name(TopicName(s(&topic)))
                            .with_partitions(
                                partitions
                                    .into_iter()
                                    .map(|(p, v)| {
                                        OffsetFetchResponsePartitions::default()
                                            .with_error_code(unstable(&group_id, &topic, p))
                                            .with_partition_index(p)
                                            .with_committed_offset(
                                                v.as_ref().map_or(-1, |v| v.offset),
                                            )
                                            .with_committed_leader_epoch(
                                                v.as_ref().map_or(-1, |v| v.leader_epoch),
                                            )
                                            .with_metadata(Some(s(v
                                                .as_ref()
                                                .and_then(|v| v.metadata.as_deref())
                                                .unwrap_or(""))))
                                    })
                                    .collect(),
                            )
                    })
                    .collect();
                OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id)
                    .with_topics(topics)
            })
            .collect();
        OffsetFetchResponse::default().with_groups(groups)
    }

    pub fn list_groups(&self, request: ListGroupsRequest) -> ListGroupsResponse {
        let states: Vec<String> = request
            .states_filter
            .iter()
            .map(|s| s.as_str().to_ascii_lowercase())
            .collect();
        let types: Vec<String> = request
            .types_filter
            .iter()
            .map(|s| s.as_str().to_ascii_lowercase())
            .collect();
        let groups = self
            .groups
            .values()
            .filter(|g| states.is_empty() || states.contains(&g.state_name().to_ascii_lowercase()))
            .filter(|g| types.is_empty() || types.iter().any(|t| t == g.group_type()))
            .map(|g| {
                let protocol_type = if g.consumer.is_some() {
                    "consumer"
                } else {
                    g.protocol_type.as_deref().unwrap_or("")
                };
                ListedGroup::default()
                    .with_group_id(GroupId(s(&g.group_id)))
                    .with_protocol_type(s(protocol_type))
                    .with_group_state(s(g.state_name()))
                    .with_group_type(s(g.group_type()))
            })
            .collect();
        ListGroupsResponse::default().with_groups(groups)
    }

    /// DescribeGroups. An unknown group is reported as Dead, and from v6 on
    /// with GROUP_ID_NOT_FOUND (KIP-1043), as Kafka does.
    pub fn describe_groups(
        &self,
        version: i16,
        request: DescribeGroupsRequest,
    ) -> DescribeGroupsResponse {
        let groups = request
            .groups
            .into_iter()
            .map(|id| {
                let Some(group) = self.groups.get(id.as_str()) else {
                    let described = DescribedGroup::default()
                        .with_group_state(s(GroupState::Dead.name()))
                        .with_authorized_operations(i32::MIN);
                    if version >= 6 {
                        let message = format!("Group {} not found.", id.as_str());
                        return described
                            .with_group_id(id)
                            .with_error_code(ResponseError::GroupIdNotFound.code())
                            .with_error_message(Some(s(&message)));
                    }
                    return described.with_group_id(id);
                };
                if group.consumer.is_some() {
                    // Kafka describes consumer-protocol groups only through
                    // ConsumerGroupDescribe: DescribeGroups reports them Dead,
                    // and from v6 on with GROUP_ID_NOT_FOUND.
                    let described = DescribedGroup::default()
                        .with_group_state(s(GroupState::Dead.name()))
                        .with_authorized_operations(i32::MIN);
                    if version >= 6 {
                        let message = format!("Group {} is not a classic group.", id.as_str());
                        return described
                            .with_group_id(id)
                            .with_error_code(ResponseError::GroupIdNotFound.code())
                            .with_error_message(Some(s(&message)));
                    }
                    return described.with_group_id(id);
                }
                let protocol = group.protocol.clone().unwrap_or_default();
                let stable = group.state == GroupState::Stable;
                let members = group
                    .members
                    .iter()
                    .map(|m| {
                        DescribedGroupMember::default()
                            .with_member_id(s(&m.member_id))
                            .with_group_instance_id(m.instance_id.as_deref().map(s))
                            .with_client_id(s(&m.client_id))
                            .with_client_host(s(&m.client_host))
                            .with_member_metadata(m.metadata_for(&protocol))
                            .with_member_assignment(if stable {
                                m.assignment.clone()
                            } else {
                                Default::default()
                            })
                    })
                    .collect();
                DescribedGroup::default()
                    .with_group_id(id)
                    .with_group_state(s(group.state.name()))
                    .with_protocol_type(s(group.protocol_type.as_deref().unwrap_or("")))
                    .with_protocol_data(s(&protocol))
                    .with_members(members)
                    .with_authorized_operations(i32::MIN)
            })
            .collect();
        DescribeGroupsResponse::default().with_groups(groups)
    }

    pub fn delete_groups(&mut self, request: DeleteGroupsRequest) -> Outcome<DeleteGroupsResponse> {
        let mut out = Outcome::pending();
        let results = request
            .groups_names
            .into_iter()
            .map(|id| {
                let code = match self.groups.get(id.as_str()) {
                    None => Some(ResponseError::GroupIdNotFound),
                    Some(g) if !g.is_empty() => Some(ResponseError::NonEmptyGroup),
                    Some(g) => {
                        for (topic, partition) in g.offsets.keys() {
                            out.records
                                .push(offset_record(id.as_str(), topic, *partition, None));
                        }
                        out.records.push(group_record(id.as_str(), None));
                        if g.consumer.is_some() {
                            out.records
                                .push(crate::records::consumer_group_record(id.as_str(), None));
                        }
                        self.groups.remove(id.as_str());
                        None
                    }
                };
                DeletableGroupResult::default()
                    .with_group_id(id)
                    .with_error_code(code.map_or(0, |c| c.code()))
            })
            .collect();
        out.response = Some(DeleteGroupsResponse::default().with_results(results));
        out
    }

    pub fn delete_offsets(
        &mut self,
        request: OffsetDeleteRequest,
    ) -> Outcome<OffsetDeleteResponse> {
        let mut out = Outcome::pending();
        let group_id = request.group_id.as_str().to_string();
        let Some(group) = self.groups.get_mut(&group_id) else {
            out.response = Some(
                OffsetDeleteResponse::default()
                    .with_error_code(ResponseError::GroupIdNotFound.code()),
            );
            return out;
        };
        let subscribed = if group.is_empty() {
            Some(Vec::new())
        } else if let Some(consumer) = &group.consumer {
            Some(
                consumer
                    .members
                    .values()
                    .flat_map(|m| m.subscribed_topics.iter().cloned())
                    .collect(),
            )
        } else {
            group.subscribed_topics()
        };
        let Some(subscribed) = subscribed else {
            // A non-consumer group with members: Kafka refuses.
            out.response = Some(
                OffsetDeleteResponse::default()
                    .with_error_code(ResponseError::NonEmptyGroup.code()),
            );
            return out;
        };
        let topics = request
            .topics
            .into_iter()
            .map(|t| {
                let topic = t.name.as_str().to_string();
                let partitions = t
                    .partitions
                    .into_iter()
                    .map(|p| {
                        let code = if subscribed.contains(&topic) {
                            Some(ResponseError::GroupSubscribedToTopic)
                        } else {
                            if group
                                .offsets
                                .remove(&(topic.clone(), p.partition_index))
                                .is_some()
                            {
                                out.records.push(offset_record(
                                    &group_id,
                                    &topic,
                                    p.partition_index,
                                    None,
                                ));
                            }
                            None
                        };
                        OffsetDeleteResponsePartition::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(code.map_or(0, |c| c.code()))
                    })
                    .collect();
                OffsetDeleteResponseTopic::default()
                    .with_name(t.name)
                    .with_partitions(partitions)
            })
            .collect();
        out.response = Some(OffsetDeleteResponse::default().with_topics(topics));
        out
    }
}
