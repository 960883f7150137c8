//! The consumer group protocol of KIP-848: members heartbeat
//! (ConsumerGroupHeartbeat), the coordinator computes the target assignment
//! with a server-side assignor, and each member is reconciled towards it —
//! partitions moving away are revoked first, and only handed to their new
//! owner once released, so no partition is ever owned twice.

use crate::assignor::{self, Assignment, AssignorMember, ASSIGNORS};
use crate::classic::ClientInfo;
use crate::coordinator::{GroupCoordinator, Outcome};
use crate::group::ClassicGroup;
use crate::records::{consumer_group_record, ConsumerGroupValue, ConsumerMemberValue};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::consumer_group_describe_response::{
    self as describe, DescribedGroup as DescribedConsumerGroup,
};
use kafka_protocol::messages::consumer_group_heartbeat_response::{self as hb};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, ConsumerGroupHeartbeatRequest,
    ConsumerGroupHeartbeatResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// The member epoch of a static member that left temporarily.
pub const LEAVE_GROUP_STATIC: i32 = -2;

/// What the coordinator needs to know about topics.
pub trait TopicsView {
    /// (topic id, partition count)
    fn by_name(&self, name: &str) -> Option<(Uuid, i32)>;
    /// (topic name, partition count)
    fn by_id(&self, id: Uuid) -> Option<(String, i32)>;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberState {
    Stable,
    /// Must give up `pending_revocation` before moving on.
    UnrevokedPartitions,
    /// Waits for partitions other members still hold.
    UnreleasedPartitions,
}

#[derive(Clone, Debug)]
pub struct ConsumerMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub subscribed_topics: BTreeSet<String>,
    pub server_assignor: Option<String>,
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    pub assigned: Assignment,
    pub pending_revocation: Assignment,
    pub state: MemberState,
    pub last_heartbeat_ms: i64,
    /// Since when it has been asked to revoke (for the rebalance timeout).
    pub revoking_since_ms: Option<i64>,
}

#[derive(Clone, Debug, Default)]
pub struct ConsumerGroupState {
    pub group_epoch: i32,
    pub target_epoch: i32,
    pub members: BTreeMap<String, ConsumerMember>,
    pub target: BTreeMap<String, Assignment>,
    /// Partition counts of subscribed topics when the target was computed.
    pub topic_partitions: BTreeMap<Uuid, i32>,
}

impl ConsumerGroupState {
    pub fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.target_epoch < self.group_epoch {
            "Assigning"
        } else if self
            .members
            .values()
            .filter(|m| m.member_epoch != LEAVE_GROUP_STATIC)
            .any(|m| m.member_epoch != self.target_epoch || m.state != MemberState::Stable)
        {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    pub fn assignor(&self) -> &'static str {
        let wanted = self
            .members
            .values()
            .find_map(|m| m.server_assignor.as_deref());
        ASSIGNORS
            .iter()
            .copied()
            .find(|a| Some(*a) == wanted)
            .unwrap_or(ASSIGNORS[0])
    }

    fn to_value(&self) -> ConsumerGroupValue {
        let flat = |a: &Assignment| {
            a.iter()
                .map(|(t, ps)| (*t, ps.iter().copied().collect()))
                .collect()
        };
        ConsumerGroupValue {
            group_epoch: self.group_epoch,
            target_epoch: self.target_epoch,
            target: self
                .target
                .iter()
                .map(|(m, a)| (m.clone(), flat(a)))
                .collect(),
            topic_partitions: self
                .topic_partitions
                .iter()
                .map(|(t, n)| (*t, *n))
                .collect(),
            members: self
                .members
                .values()
                .map(|m| ConsumerMemberValue {
                    member_id: m.member_id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    subscribed_topics: m.subscribed_topics.iter().cloned().collect(),
                    server_assignor: m.server_assignor.clone(),
                    member_epoch: m.member_epoch,
                    previous_member_epoch: m.previous_member_epoch,
                    assigned: flat(&m.assigned),
                    pending_revocation: flat(&m.pending_revocation),
                })
                .collect(),
        }
    }

    /// After a restart: the group as it was (epochs, target, assignments,
    /// partitions pending revocation); members must heartbeat within the
    /// session timeout.
    pub fn restore(value: ConsumerGroupValue, now: i64) -> Self {
        let unflat = |v: Vec<(Uuid, Vec<i32>)>| -> Assignment {
            v.into_iter()
                .map(|(t, ps)| (t, ps.into_iter().collect()))
                .collect()
        };
        let members = value
            .members
            .into_iter()
            .map(|m| {
                let revoking = !m.pending_revocation.is_empty();
                let member = ConsumerMember {
                    member_id: m.member_id.clone(),
                    instance_id: m.instance_id,
                    rack_id: None,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    subscribed_topics: m.subscribed_topics.into_iter().collect(),
                    server_assignor: m.server_assignor,
                    member_epoch: m.member_epoch,
                    previous_member_epoch: m.previous_member_epoch,
                    assigned: unflat(m.assigned),
                    pending_revocation: unflat(m.pending_revocation),
                    state: if revoking {
                        MemberState::UnrevokedPartitions
                    } else {
                        MemberState::Stable
                    },
                    last_heartbeat_ms: now,
                    revoking_since_ms: revoking.then_some(now),
                };
                (m.member_id, member)
            })
            .collect();
        ConsumerGroupState {
            group_epoch: value.group_epoch,
            target_epoch: value.target_epoch,
            members,
            target: value
                .target
                .into_iter()
                .map(|(m, a)| (m, unflat(a)))
                .collect(),
            topic_partitions: value.topic_partitions.into_iter().collect(),
        }
    }

    /// Partitions held (assigned or being revoked) by members other than `except`.
    fn held_by_others(&self, except: &str) -> BTreeSet<(Uuid, i32)> {
        self.members
            .values()
            .filter(|m| m.member_id != except)
            .flat_map(|m| m.assigned.iter().chain(m.pending_revocation.iter()))
            .flat_map(|(t, ps)| ps.iter().map(move |p| (*t, *p)))
            .collect()
    }

    fn compute_target(&mut self, topics: &dyn TopicsView) {
        let partitions = self.subscribed_partitions(topics);
        let subscriptions: BTreeMap<String, BTreeSet<Uuid>> = self
            .members
            .values()
            .map(|m| {
                let ids = m
                    .subscribed_topics
                    .iter()
                    .filter_map(|n| topics.by_name(n).map(|(id, _)| id))
                    .collect();
                (m.member_id.clone(), ids)
            })
            .collect();
        let members: Vec<AssignorMember<'_>> = self
            .members
            .values()
            .map(|m| AssignorMember {
                member_id: &m.member_id,
                subscribed: &subscriptions[&m.member_id],
                current: &m.assigned,
            })
            .collect();
        self.target = assignor::assign(self.assignor(), &members, &partitions);
        self.topic_partitions = partitions;
        self.target_epoch = self.group_epoch;
    }

    fn subscribed_partitions(&self, topics: &dyn TopicsView) -> BTreeMap<Uuid, i32> {
        self.members
            .values()
            .flat_map(|m| m.subscribed_topics.iter())
            .filter_map(|name| topics.by_name(name))
            .collect()
    }

    /// Moves one member towards its target; true if its assignment changed.
    fn reconcile(&mut self, member_id: &str, owned: Option<&Assignment>, now: i64) -> bool {
        let held = self.held_by_others(member_id);
        let target = self.target.get(member_id).cloned().unwrap_or_default();
        let target_epoch = self.target_epoch;
        let member = self.members.get_mut(member_id).expect("member exists");
        if member.state == MemberState::UnrevokedPartitions {
            let still_owned = owned.is_none_or(|owned| overlaps(owned, &member.pending_revocation));
            if still_owned {
                return false;
            }
            member.pending_revocation.clear();
            member.revoking_since_ms = None;
            member.state = MemberState::Stable;
        }
        if member.member_epoch == target_epoch && member.state == MemberState::Stable {
            return false;
        }
        let to_revoke = difference(&member.assigned, &target);
        if !to_revoke.is_empty() {
            member.assigned = intersection(&member.assigned, &target);
            member.pending_revocation = to_revoke;
            member.state = MemberState::UnrevokedPartitions;
            member.revoking_since_ms = Some(now);
            return true;
        }
        let mut changed = false;
        let mut unreleased = false;
        for (topic, partitions) in &target {
            for p in partitions {
                if member.assigned.get(topic).is_some_and(|ps| ps.contains(p)) {
                    continue;
                }
                if held.contains(&(*topic, *p)) {
                    unreleased = true;
                } else {
                    member.assigned.entry(*topic).or_default().insert(*p);
                    changed = true;
                }
            }
        }
        if member.member_epoch != target_epoch {
            member.previous_member_epoch = member.member_epoch;
            member.member_epoch = target_epoch;
            changed = true;
        }
        member.state = if unreleased {
            MemberState::UnreleasedPartitions
        } else {
            MemberState::Stable
        };
        changed
    }
}

fn overlaps(a: &Assignment, b: &Assignment) -> bool {
    a.iter()
        .any(|(t, ps)| b.get(t).is_some_and(|other| !ps.is_disjoint(other)))
}

fn difference(a: &Assignment, b: &Assignment) -> Assignment {
    a.iter()
        .filter_map(|(t, ps)| {
            let rest: BTreeSet<i32> = ps
                .iter()
                .filter(|p| !b.get(t).is_some_and(|o| o.contains(p)))
                .copied()
                .collect();
            (!rest.is_empty()).then_some((*t, rest))
        })
        .collect()
}

fn intersection(a: &Assignment, b: &Assignment) -> Assignment {
    a.iter()
        .filter_map(|(t, ps)| {
            let both: BTreeSet<i32> = ps
                .iter()
                .filter(|p| b.get(t).is_some_and(|o| o.contains(p)))
                .copied()
                .collect();
            (!both.is_empty()).then_some((*t, both))
        })
        .collect()
}

fn s(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

fn heartbeat_error(code: ResponseError, message: &str) -> ConsumerGroupHeartbeatResponse {
    ConsumerGroupHeartbeatResponse::default()
        .with_error_code(code.code())
        .with_error_message(Some(s(message)))
}

fn to_wire(assignment: &Assignment) -> hb::Assignment {
    hb::Assignment::default().with_topic_partitions(
        assignment
            .iter()
            .map(|(t, ps)| {
                hb::TopicPartitions::default()
                    .with_topic_id(*t)
                    .with_partitions(ps.iter().copied().collect())
            })
            .collect(),
    )
}

impl GroupCoordinator {
    pub fn consumer_heartbeat(
        &mut self,
        now: i64,
        client: ClientInfo<'_>,
        request: ConsumerGroupHeartbeatRequest,
        topics: &dyn TopicsView,
    ) -> Outcome<ConsumerGroupHeartbeatResponse> {
        let group_id = request.group_id.as_str().to_string();
        let epoch = request.member_epoch;
        let respond = |code, message: &str| Outcome::respond(heartbeat_error(code, message));
        if group_id.is_empty() {
            return respond(ResponseError::InvalidRequest, "GroupId can't be empty.");
        }
        if let Some(assignor) = request.server_assignor.as_ref() {
            if !ASSIGNORS.contains(&assignor.as_str()) {
                return respond(
                    ResponseError::UnsupportedAssignor,
                    &format!("Assignor {} is not supported.", assignor.as_str()),
                );
            }
        }
        if request.subscribed_topic_regex.is_some() && request.subscribed_topic_names.is_none() {
            return respond(
                ResponseError::InvalidRequest,
                "Regular expression subscriptions are not supported yet.",
            );
        }
        let heartbeat_interval = self.config.consumer_heartbeat_interval_ms;
        let group = self
            .groups
            .entry(group_id.clone())
            .or_insert_with(|| ClassicGroup::new(&group_id, now));
        if group.consumer.is_none() {
            if !group.members.is_empty() {
                return respond(
                    ResponseError::GroupIdNotFound,
                    &format!("Group {group_id} is not a consumer group."),
                );
            }
            group.consumer = Some(ConsumerGroupState::default());
        }
        let state = group.consumer.as_mut().expect("set above");
        let mut member_id = request.member_id.as_str().to_string();
        let mut changed_group = false;
        match epoch {
            0 => {
                if request.subscribed_topic_names.is_none() {
                    return respond(
                        ResponseError::InvalidRequest,
                        "SubscribedTopicNames must be set in first request.",
                    );
                }
                if member_id.is_empty() {
                    member_id = Uuid::new_v4().to_string();
                }
                // A static member coming back takes over its predecessor's partitions.
                let instance = request.instance_id.as_ref().map(|i| i.as_str().to_string());
                let predecessor = instance.as_ref().and_then(|i| {
                    state
                        .members
                        .values()
                        .find(|m| m.instance_id.as_ref() == Some(i) && m.member_id != member_id)
                        .map(|m| m.member_id.clone())
                });
                let inherited = predecessor.and_then(|id| state.members.remove(&id));
                let member = ConsumerMember {
                    member_id: member_id.clone(),
                    instance_id: instance,
                    rack_id: request.rack_id.as_ref().map(|r| r.as_str().to_string()),
                    client_id: client.client_id.to_string(),
                    client_host: client.client_host.to_string(),
                    rebalance_timeout_ms: request.rebalance_timeout_ms,
                    subscribed_topics: BTreeSet::new(),
                    server_assignor: request
                        .server_assignor
                        .as_ref()
                        .map(|a| a.as_str().to_string()),
                    member_epoch: inherited.as_ref().map_or(0, |m| {
                        if m.member_epoch == LEAVE_GROUP_STATIC {
                            m.previous_member_epoch
                        } else {
                            m.member_epoch
                        }
                    }),
                    previous_member_epoch: -1,
                    assigned: inherited.map(|m| m.assigned).unwrap_or_default(),
                    pending_revocation: Assignment::new(),
                    state: MemberState::Stable,
                    last_heartbeat_ms: now,
                    revoking_since_ms: None,
                };
                state.members.insert(member_id.clone(), member);
                changed_group = true;
            }
            -1 | -2 => {
                let Some(member) = state.members.get_mut(&member_id) else {
                    return respond(
                        ResponseError::UnknownMemberId,
                        &format!("Member {member_id} is not a member of group {group_id}."),
                    );
                };
                if epoch == LEAVE_GROUP_STATIC && member.instance_id.is_some() {
                    // A static member leaving temporarily keeps its partitions
                    // until its session expires or its instance comes back.
                    if member.member_epoch >= 0 {
                        member.previous_member_epoch = member.member_epoch;
                    }
                    member.member_epoch = LEAVE_GROUP_STATIC;
                } else {
                    state.members.remove(&member_id);
                    state.group_epoch += 1;
                }
                let value = state.to_value();
                let mut out = Outcome::respond(
                    ConsumerGroupHeartbeatResponse::default()
                        .with_member_id(Some(s(&member_id)))
                        .with_member_epoch(epoch)
                        .with_heartbeat_interval_ms(0),
                );
                out.records
                    .push(consumer_group_record(&group_id, Some(&value)));
                return out;
            }
            _ => {
                let Some(member) = state.members.get(&member_id) else {
                    return respond(
                        ResponseError::UnknownMemberId,
                        &format!("Member {member_id} is not a member of group {group_id}."),
                    );
                };
                if epoch != member.member_epoch && epoch != member.previous_member_epoch {
                    return respond(
                        ResponseError::FencedMemberEpoch,
                        &format!("The consumer group member has a smaller member epoch ({epoch}) than the one known by the group coordinator ({}).", member.member_epoch),
                    );
                }
            }
        }
        let member = state.members.get_mut(&member_id).expect("present");
        member.last_heartbeat_ms = now;
        if let Some(names) = &request.subscribed_topic_names {
            let names: BTreeSet<String> = names.iter().map(|n| n.as_str().to_string()).collect();
            if names != member.subscribed_topics {
                member.subscribed_topics = names;
                changed_group = true;
            }
        }
        if let Some(assignor) = &request.server_assignor {
            member.server_assignor = Some(assignor.as_str().to_string());
        }
        if state.subscribed_partitions(topics) != state.topic_partitions {
            changed_group = true;
        }
        if changed_group {
            state.group_epoch += 1;
        }
        if state.target_epoch < state.group_epoch {
            state.compute_target(topics);
        }
        let owned: Option<Assignment> = request.topic_partitions.as_ref().map(|tps| {
            tps.iter()
                .map(|tp| (tp.topic_id, tp.partitions.iter().copied().collect()))
                .collect()
        });
        let assignment_changed = state.reconcile(&member_id, owned.as_ref(), now);
        let member = &state.members[&member_id];
        let send_assignment = epoch == 0
            || assignment_changed
            || owned.as_ref().is_some_and(|o| *o != member.assigned);
        let response = ConsumerGroupHeartbeatResponse::default()
            .with_member_id(Some(s(&member_id)))
            .with_member_epoch(member.member_epoch)
            .with_heartbeat_interval_ms(heartbeat_interval)
            .with_assignment(send_assignment.then(|| to_wire(&member.assigned)));
        let mut out = Outcome::respond(response);
        if changed_group || assignment_changed {
            out.records
                .push(consumer_group_record(&group_id, Some(&state.to_value())));
        }
        out
    }

    /// Consumer-group members that stopped heartbeating, or never finished
    /// revoking, are removed.
    pub(crate) fn tick_consumer<R>(&mut self, now: i64, out: &mut Outcome<R>) {
        let session = self.config.consumer_session_timeout_ms as i64;
        for (group_id, group) in &mut self.groups {
            let Some(state) = group.consumer.as_mut() else {
                continue;
            };
            let expired: Vec<String> = state
                .members
                .values()
                .filter(|m| {
                    now - m.last_heartbeat_ms > session
                        || m.revoking_since_ms
                            .is_some_and(|t| now - t > m.rebalance_timeout_ms as i64)
                })
                .map(|m| m.member_id.clone())
                .collect();
            if expired.is_empty() {
                continue;
            }
            for id in &expired {
                tracing::info!(group = %group_id, member = %id, "consumer group member expired");
                state.members.remove(id);
            }
            state.group_epoch += 1;
            if state.members.is_empty() {
                group.state_timestamp = now;
            }
            out.records
                .push(consumer_group_record(group_id, Some(&state.to_value())));
        }
    }

    pub fn consumer_group_describe(
        &self,
        request: ConsumerGroupDescribeRequest,
        topics: &dyn TopicsView,
    ) -> ConsumerGroupDescribeResponse {
        let to_describe = |a: &Assignment| {
            describe::Assignment::default().with_topic_partitions(
                a.iter()
                    .map(|(t, ps)| {
                        describe::TopicPartitions::default()
                            .with_topic_id(*t)
                            .with_topic_name(TopicName(s(&topics
                                .by_id(*t)
                                .map(|(n, _)| n)
                                .unwrap_or_default())))
                            .with_partitions(ps.iter().copied().collect())
                    })
                    .collect(),
            )
        };
        let groups = request
            .group_ids
            .into_iter()
            .map(|id| {
                let Some(state) = self
                    .groups
                    .get(id.as_str())
                    .and_then(|g| g.consumer.as_ref())
                else {
                    return DescribedConsumerGroup::default()
                        .with_group_id(id.clone())
                        .with_error_code(ResponseError::GroupIdNotFound.code())
                        .with_error_message(Some(s(&format!("Group {} not found.", id.as_str()))));
                };
                let members = state
                    .members
                    .values()
                    .map(|m| {
                        describe::Member::default()
                            .with_member_id(s(&m.member_id))
                            .with_instance_id(m.instance_id.as_deref().map(s))
                            .with_rack_id(m.rack_id.as_deref().map(s))
                            .with_member_epoch(m.member_epoch)
                            .with_client_id(s(&m.client_id))
                            .with_client_host(s(&m.client_host))
                            .with_subscribed_topic_names(
                                m.subscribed_topics
                                    .iter()
                                    .map(|t| TopicName(s(t)))
                                    .collect(),
                            )
                            .with_assignment(to_describe(&m.assigned))
                            .with_target_assignment(to_describe(
                                &state.target.get(&m.member_id).cloned().unwrap_or_default(),
                            ))
                    })
                    .collect();
                DescribedConsumerGroup::default()
                    .with_group_id(id)
                    .with_group_state(s(state.state_name()))
                    .with_group_epoch(state.group_epoch)
                    .with_assignment_epoch(state.target_epoch)
                    .with_assignor_name(s(state.assignor()))
                    .with_members(members)
                    .with_authorized_operations(i32::MIN)
            })
            .collect();
        ConsumerGroupDescribeResponse::default().with_groups(groups)
    }
}
