//! Shared helpers for the coordinator's integration tests: a harness that
//! feeds requests to a [`GroupCoordinator`] at explicit times, keeps every
//! record it returns (in order, for replay) and files the completions of
//! parked requests under their tokens.

#![allow(dead_code)]

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ConsumerProtocolSubscription, GroupId, HeartbeatRequest, JoinGroupRequest, JoinGroupResponse,
    LeaveGroupRequest, LeaveGroupResponse, OffsetCommitRequest, OffsetCommitResponse,
    OffsetFetchRequest, OffsetFetchResponse, SyncGroupRequest, SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use std::collections::HashMap;
use strom_coordinator::{
    ClientInfo, Completion, CoordinatorRecord, GroupConfig, GroupCoordinator, Outcome, Token,
};

pub const GROUP: &str = "g";

pub fn s(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

pub fn gid(value: &str) -> GroupId {
    GroupId(s(value))
}

pub fn topic(value: &str) -> TopicName {
    TopicName(s(value))
}

pub fn client() -> ClientInfo<'static> {
    ClientInfo {
        client_id: "client",
        client_host: "/127.0.0.1",
    }
}

/// A consumer's JoinGroup metadata: an i16 version, then Kafka's
/// ConsumerProtocolSubscription at that version.
pub fn subscription(topics: &[&str]) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(1);
    ConsumerProtocolSubscription::default()
        .with_topics(topics.iter().map(|t| s(t)).collect())
        .encode(&mut buf, 1)
        .expect("subscription encodes");
    buf.freeze()
}

/// A JoinGroup with 10 s session and rebalance timeouts, protocol type "consumer".
pub fn join_request(
    group: &str,
    member_id: &str,
    instance_id: Option<&str>,
    protocols: &[(&str, Bytes)],
) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(gid(group))
        .with_member_id(s(member_id))
        .with_group_instance_id(instance_id.map(s))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_protocol_type(s("consumer"))
        .with_protocols(
            protocols
                .iter()
                .map(|(name, metadata)| {
                    JoinGroupRequestProtocol::default()
                        .with_name(s(name))
                        .with_metadata(metadata.clone())
                })
                .collect(),
        )
}

pub fn sync_request(
    group: &str,
    member_id: &str,
    generation: i32,
    instance_id: Option<&str>,
    assignments: &[(&str, &[u8])],
) -> SyncGroupRequest {
    SyncGroupRequest::default()
        .with_group_id(gid(group))
        .with_member_id(s(member_id))
        .with_generation_id(generation)
        .with_group_instance_id(instance_id.map(s))
        .with_assignments(
            assignments
                .iter()
                .map(|(member, bytes)| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(s(member))
                        .with_assignment(Bytes::copy_from_slice(bytes))
                })
                .collect(),
        )
}

/// An OffsetCommit of (topic, partition, offset, metadata) entries.
pub fn commit_request(
    group: &str,
    member_id: &str,
    generation: i32,
    instance_id: Option<&str>,
    entries: &[(&str, i32, i64, Option<&str>)],
) -> OffsetCommitRequest {
    let mut topics: Vec<OffsetCommitRequestTopic> = Vec::new();
    for (name, partition, offset, metadata) in entries {
        let p = OffsetCommitRequestPartition::default()
            .with_partition_index(*partition)
            .with_committed_offset(*offset)
            .with_committed_leader_epoch(3)
            .with_committed_metadata(metadata.map(s));
        match topics.iter_mut().find(|t| t.name.as_str() == *name) {
            Some(t) => t.partitions.push(p),
            None => topics.push(
                OffsetCommitRequestTopic::default()
                    .with_name(topic(name))
                    .with_partitions(vec![p]),
            ),
        }
    }
    OffsetCommitRequest::default()
        .with_group_id(gid(group))
        .with_member_id(s(member_id))
        .with_generation_id_or_member_epoch(generation)
        .with_group_instance_id(instance_id.map(s))
        .with_topics(topics)
}

/// Every (topic, partition, error code) of an OffsetCommit response.
pub fn commit_errors(response: &OffsetCommitResponse) -> Vec<(String, i32, i16)> {
    response
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.name.as_str().to_string(), p.partition_index, p.error_code))
        })
        .collect()
}

/// Topics "t1".."t3" with 10 partitions each exist; nothing else does.
pub fn partition_exists(topic: &str, partition: i32) -> bool {
    ["t1", "t2", "t3"].contains(&topic) && (0..10).contains(&partition)
}

/// (topic, partition, offset, metadata, error) as OffsetFetch (v0-7) returns them.
pub type Fetched = Vec<(String, i32, i64, String, i16)>;

pub fn fetch_v7(c: &GroupCoordinator, group: &str, topics: Option<&[(&str, &[i32])]>) -> Fetched {
    let request = OffsetFetchRequest::default()
        .with_group_id(gid(group))
        .with_topics(topics.map(|ts| {
            ts.iter()
                .map(|(name, partitions)| {
                    OffsetFetchRequestTopic::default()
                        .with_name(topic(name))
                        .with_partition_indexes(partitions.to_vec())
                })
                .collect()
        }));
    let response = c.fetch_offsets(7, request);
    assert_eq!(response.error_code, 0);
    response
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(move |p| {
                (
                    t.name.as_str().to_string(),
                    p.partition_index,
                    p.committed_offset,
                    p.metadata.as_ref().map_or("", |m| m.as_str()).to_string(),
                    p.error_code,
                )
            })
        })
        .collect()
}

/// Topics and partitions to fetch; None: everything committed.
pub type TopicFilter<'a> = Option<&'a [(&'a str, &'a [i32])]>;

/// OffsetFetch v8+: several groups at once, each with optional topics.
pub fn fetch_v8(c: &GroupCoordinator, groups: &[(&str, TopicFilter<'_>)]) -> OffsetFetchResponse {
    let request = OffsetFetchRequest::default().with_groups(
        groups
            .iter()
            .map(|(group, topics)| {
                OffsetFetchRequestGroup::default()
                    .with_group_id(gid(group))
                    .with_topics(topics.map(|ts| {
                        ts.iter()
                            .map(|(name, partitions)| {
                                OffsetFetchRequestTopics::default()
                                    .with_name(topic(name))
                                    .with_partition_indexes(partitions.to_vec())
                            })
                            .collect()
                    }))
            })
            .collect(),
    );
    c.fetch_offsets(8, request)
}

pub fn fetched_v8(response: &OffsetFetchResponse, group: &str) -> Fetched {
    let group = response
        .groups
        .iter()
        .find(|g| g.group_id.as_str() == group)
        .unwrap_or_else(|| panic!("group {group} missing from the response"));
    assert_eq!(group.error_code, 0);
    group
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(move |p| {
                (
                    t.name.as_str().to_string(),
                    p.partition_index,
                    p.committed_offset,
                    p.metadata.as_ref().map_or("", |m| m.as_str()).to_string(),
                    p.error_code,
                )
            })
        })
        .collect()
}

/// Drives a coordinator: keeps every record (in order) and every completion.
pub struct Harness {
    pub c: GroupCoordinator,
    pub records: Vec<CoordinatorRecord>,
    joins: HashMap<Token, JoinGroupResponse>,
    syncs: HashMap<Token, SyncGroupResponse>,
    next_token: Token,
}

impl Harness {
    pub fn new(config: GroupConfig) -> Self {
        Harness {
            c: GroupCoordinator::new(config),
            records: Vec::new(),
            joins: HashMap::new(),
            syncs: HashMap::new(),
            next_token: 1,
        }
    }

    /// Drives an existing coordinator (say, one rebuilt by replay).
    pub fn wrap(c: GroupCoordinator) -> Self {
        let mut h = Harness::new(c.config().clone());
        h.c = c;
        h
    }

    /// No initial rebalance delay: a join completes once everyone has joined.
    pub fn no_delay() -> Self {
        Self::new(GroupConfig {
            initial_rebalance_delay_ms: 0,
            ..Default::default()
        })
    }

    pub fn absorb<R>(&mut self, out: Outcome<R>) -> Option<R> {
        self.records.extend(out.records);
        for completion in out.completions {
            match completion {
                Completion::Join(token, response) => {
                    assert!(
                        self.joins.insert(token, response).is_none(),
                        "join {token} answered twice"
                    );
                }
                Completion::Sync(token, response) => {
                    assert!(
                        self.syncs.insert(token, response).is_none(),
                        "sync {token} answered twice"
                    );
                }
            }
        }
        out.response
    }

    fn token(&mut self) -> Token {
        self.next_token += 1;
        self.next_token
    }

    /// JoinGroup; the response if it came at once, and the token it is parked under otherwise.
    pub fn join(
        &mut self,
        now: i64,
        version: i16,
        request: JoinGroupRequest,
    ) -> (Token, Option<JoinGroupResponse>) {
        let token = self.token();
        let out = self.c.join_group(now, token, version, client(), request);
        (token, self.absorb(out))
    }

    /// KIP-394's first step (v5): a member id for `group`.
    pub fn member_id(&mut self, now: i64, group: &str) -> String {
        let (_, response) = self.join(
            now,
            5,
            join_request(group, "", None, &[("range", subscription(&["t1"]))]),
        );
        let response = response.expect("MEMBER_ID_REQUIRED comes at once");
        assert_eq!(response.error_code, 79, "MEMBER_ID_REQUIRED");
        assert!(!response.member_id.is_empty());
        response.member_id.as_str().to_string()
    }

    /// The completion of a parked JoinGroup; panics if it was not answered.
    pub fn join_done(&mut self, token: Token) -> JoinGroupResponse {
        self.joins
            .remove(&token)
            .unwrap_or_else(|| panic!("join {token} not answered"))
    }

    pub fn join_pending(&self, token: Token) -> bool {
        !self.joins.contains_key(&token)
    }

    pub fn sync(
        &mut self,
        now: i64,
        request: SyncGroupRequest,
    ) -> (Token, Option<SyncGroupResponse>) {
        let token = self.token();
        let out = self.c.sync_group(now, token, request);
        (token, self.absorb(out))
    }

    pub fn sync_done(&mut self, token: Token) -> SyncGroupResponse {
        self.syncs
            .remove(&token)
            .unwrap_or_else(|| panic!("sync {token} not answered"))
    }

    pub fn sync_pending(&self, token: Token) -> bool {
        !self.syncs.contains_key(&token)
    }

    /// Heartbeat; its error code.
    pub fn heartbeat(
        &mut self,
        now: i64,
        group: &str,
        member_id: &str,
        generation: i32,
        instance_id: Option<&str>,
    ) -> i16 {
        let request = HeartbeatRequest::default()
            .with_group_id(gid(group))
            .with_member_id(s(member_id))
            .with_generation_id(generation)
            .with_group_instance_id(instance_id.map(s));
        let out = self.c.heartbeat(now, request);
        self.absorb(out)
            .expect("heartbeats answer at once")
            .error_code
    }

    /// LeaveGroup v3+ with (member id, instance id) identities.
    pub fn leave(
        &mut self,
        now: i64,
        version: i16,
        group: &str,
        members: &[(&str, Option<&str>)],
    ) -> LeaveGroupResponse {
        let mut request = LeaveGroupRequest::default().with_group_id(gid(group));
        if version < 3 {
            request = request.with_member_id(s(members[0].0));
        } else {
            request = request.with_members(
                members
                    .iter()
                    .map(|(member, instance)| {
                        MemberIdentity::default()
                            .with_member_id(s(member))
                            .with_group_instance_id(instance.map(s))
                    })
                    .collect(),
            );
        }
        let out = self.c.leave_group(now, version, request);
        self.absorb(out).expect("leaves answer at once")
    }

    pub fn commit(&mut self, now: i64, request: OffsetCommitRequest) -> OffsetCommitResponse {
        let out = self.c.commit_offsets(now, request, partition_exists);
        self.absorb(out).expect("commits answer at once")
    }

    pub fn tick(&mut self, now: i64) {
        let out = self.c.tick(now);
        self.absorb(out);
    }

    /// A fresh coordinator (same config) rebuilt from every record so far.
    pub fn replayed(&self, now: i64) -> GroupCoordinator {
        let mut fresh = GroupCoordinator::new(self.c.config().clone());
        for record in &self.records {
            fresh.replay(now, &record.key, record.value.as_deref());
        }
        fresh
    }
}
