//! The classic group protocol: JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
//! and the timers that drive rebalances (Kafka's `ClassicGroup` handling in
//! `GroupMetadataManager`).

use crate::coordinator::{Completion, GroupCoordinator, Outcome};
use crate::group::{ClassicGroup, GroupState, Member, Token};
use crate::records::group_record;
use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;

fn s(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

fn join_error(code: ResponseError, member_id: &str) -> JoinGroupResponse {
    JoinGroupResponse::default()
        .with_error_code(code.code())
        .with_generation_id(-1)
        .with_member_id(s(member_id))
}

fn sync_error(code: ResponseError) -> SyncGroupResponse {
    SyncGroupResponse::default().with_error_code(code.code())
}

/// Who a join request comes from (not part of the request body).
pub struct ClientInfo<'a> {
    pub client_id: &'a str,
    pub client_host: &'a str,
}

impl GroupCoordinator {
    /// JoinGroup. If the call itself completes the rebalance, the caller's
    /// own answer is in `response`; otherwise `response` is None and a later
    /// [`Completion::Join`] with `token` answers it.
    pub fn join_group(
        &mut self,
        now: i64,
        token: Token,
        version: i16,
        client: ClientInfo<'_>,
        request: JoinGroupRequest,
    ) -> Outcome<JoinGroupResponse> {
        let mut out = self.join_group_inner(now, token, version, client, request);
        if out.response.is_none() {
            if let Some(pos) = out
                .completions
                .iter()
                .position(|c| matches!(c, Completion::Join(t, _) if *t == token))
            {
                if let Completion::Join(_, response) = out.completions.remove(pos) {
                    out.response = Some(response);
                }
            }
        }
        out
    }

    fn join_group_inner(
        &mut self,
        now: i64,
        token: Token,
        version: i16,
        client: ClientInfo<'_>,
        request: JoinGroupRequest,
    ) -> Outcome<JoinGroupResponse> {
        let group_id = request.group_id.as_str().to_string();
        let member_id = request.member_id.as_str().to_string();
        let instance_id = request
            .group_instance_id
            .as_ref()
            .map(|i| i.as_str().to_string());
        let respond = |code| Outcome::respond(join_error(code, &member_id));
        if group_id.is_empty() {
            return respond(ResponseError::InvalidGroupId);
        }
        let session = request.session_timeout_ms;
        if session < self.config.min_session_timeout_ms
            || session > self.config.max_session_timeout_ms
        {
            return respond(ResponseError::InvalidSessionTimeout);
        }
        let protocol_type = request.protocol_type.as_str().to_string();
        let protocols: Vec<(String, Bytes)> = request
            .protocols
            .iter()
            .map(|p| (p.name.as_str().to_string(), p.metadata.clone()))
            .collect();
        if protocol_type.is_empty() || protocols.is_empty() {
            return respond(ResponseError::InconsistentGroupProtocol);
        }
        if !member_id.is_empty() && !self.groups.contains_key(&group_id) {
            return respond(ResponseError::UnknownMemberId);
        }
        let config_max_size = self.config.max_group_size;
        let group = self
            .groups
            .entry(group_id.clone())
            .or_insert_with(|| ClassicGroup::new(&group_id, now));
        if group.state == GroupState::Dead {
            return respond(ResponseError::CoordinatorNotAvailable);
        }
        if let Some(consumer) = &group.consumer {
            if !consumer.members.is_empty() {
                return respond(ResponseError::InconsistentGroupProtocol);
            }
            // An empty consumer-protocol group may be taken over by classic members.
            group.consumer = None;
        }
        if !group.supports(&protocol_type, &protocols) {
            return respond(ResponseError::InconsistentGroupProtocol);
        }
        let rebalance_timeout = if version == 0 {
            session
        } else {
            request.rebalance_timeout_ms
        };
        let mut out = Outcome::pending();

        if member_id.is_empty() {
            // A static member that is already known: a restart with a new member id.
            if let Some(instance) = &instance_id {
                if let Some(existing) = group
                    .member_by_instance(instance)
                    .map(|m| m.member_id.clone())
                {
                    let new_id = format!("{instance}-{}", uuid::Uuid::new_v4());
                    return self.replace_static_member(
                        now,
                        token,
                        version,
                        &group_id,
                        &existing,
                        new_id,
                        protocols,
                        rebalance_timeout,
                        session,
                    );
                }
            }
            if group.members.len() + group.pending_members.len() >= config_max_size {
                return respond(ResponseError::GroupMaxSizeReached);
            }
            let new_id = format!("{}-{}", client.client_id, uuid::Uuid::new_v4());
            if instance_id.is_none() && version >= 4 {
                // KIP-394: hand out the id first; the member joins with it.
                group
                    .pending_members
                    .insert(new_id.clone(), now + session as i64);
                return Outcome::respond(join_error(ResponseError::MemberIdRequired, &new_id));
            }
            group.protocol_type.get_or_insert(protocol_type);
            group.members.push(Member {
                member_id: new_id,
                instance_id,
                client_id: client.client_id.to_string(),
                client_host: client.client_host.to_string(),
                rebalance_timeout_ms: rebalance_timeout,
                session_timeout_ms: session,
                protocols,
                assignment: Bytes::new(),
                awaiting_join: Some(token),
                awaiting_sync: None,
                last_heartbeat_ms: now,
            });
            self.prepare_rebalance(now, &group_id, &mut out);
            self.maybe_complete_join(now, &group_id, &mut out);
            return out;
        }

        if group.pending_members.remove(&member_id).is_some() {
            group.protocol_type.get_or_insert(protocol_type);
            group.members.push(Member {
                member_id: member_id.clone(),
                instance_id,
                client_id: client.client_id.to_string(),
                client_host: client.client_host.to_string(),
                rebalance_timeout_ms: rebalance_timeout,
                session_timeout_ms: session,
                protocols,
                assignment: Bytes::new(),
                awaiting_join: Some(token),
                awaiting_sync: None,
                last_heartbeat_ms: now,
            });
            self.prepare_rebalance(now, &group_id, &mut out);
            self.maybe_complete_join(now, &group_id, &mut out);
            return out;
        }

        if let Some(instance) = &instance_id {
            if let Some(owner) = group.member_by_instance(instance) {
                if owner.member_id != member_id {
                    return respond(ResponseError::FencedInstanceId);
                }
            }
        }
        let state = group.state;
        let is_leader = group.leader.as_deref() == Some(member_id.as_str());
        let Some(member) = group.member_mut(&member_id) else {
            return respond(ResponseError::UnknownMemberId);
        };
        let unchanged = member.protocols == protocols;
        member.last_heartbeat_ms = now;
        match state {
            GroupState::Empty | GroupState::Dead => respond(ResponseError::UnknownMemberId),
            GroupState::CompletingRebalance | GroupState::Stable
                if unchanged && !(state == GroupState::Stable && is_leader) =>
            {
                // A member re-sending its join gets the current generation back.
                let group = &self.groups[&group_id];
                Outcome::respond(self.join_response(group, &member_id))
            }
            _ => {
                member.protocols = protocols;
                member.rebalance_timeout_ms = rebalance_timeout;
                member.session_timeout_ms = session;
                if let Some(previous) = member.awaiting_join.replace(token) {
                    out.completions.push(Completion::Join(
                        previous,
                        join_error(ResponseError::UnknownMemberId, &member_id),
                    ));
                }
                self.prepare_rebalance(now, &group_id, &mut out);
                self.maybe_complete_join(now, &group_id, &mut out);
                out
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn replace_static_member(
        &mut self,
        now: i64,
        token: Token,
        version: i16,
        group_id: &str,
        old_id: &str,
        new_id: String,
        protocols: Vec<(String, Bytes)>,
        rebalance_timeout: i32,
        session: i32,
    ) -> Outcome<JoinGroupResponse> {
        let mut out = Outcome::pending();
        let group = self.groups.get_mut(group_id).expect("caller checked");
        let was_leader = group.leader.as_deref() == Some(old_id);
        let member = group.member_mut(old_id).expect("caller checked");
        // The old incarnation is fenced: its parked requests fail.
        if let Some(t) = member.awaiting_join.take() {
            out.completions.push(Completion::Join(
                t,
                join_error(ResponseError::FencedInstanceId, old_id),
            ));
        }
        if let Some(t) = member.awaiting_sync.take() {
            out.completions.push(Completion::Sync(
                t,
                sync_error(ResponseError::FencedInstanceId),
            ));
        }
        member.member_id = new_id.clone();
        member.protocols = protocols;
        member.rebalance_timeout_ms = rebalance_timeout;
        member.session_timeout_ms = session;
        member.last_heartbeat_ms = now;
        if was_leader {
            group.leader = Some(new_id.clone());
        }
        tracing::debug!(group = group_id, old = old_id, new = %new_id, "static member rejoined");
        if group.state == GroupState::Stable && group.select_protocol() == group.protocol {
            // KIP-345: a static member coming back keeps its assignment
            // without a rebalance while the group's protocol stays the same.
            // A returning leader is told to skip the assignment (KIP-814,
            // JoinGroup v9); older leaders send one, and SyncGroup in the
            // Stable state answers with the current assignment anyway.
            let mut response = self.join_response(&self.groups[group_id], &new_id);
            if version >= 9 {
                response.skip_assignment = was_leader;
            } else {
                // Before KIP-814 the leader cannot be told to skip: Kafka
                // sends it no member list, so it computes no assignment.
                response.members.clear();
            }
            out.response = Some(response);
            out.records.push(group_record(
                group_id,
                Some(&self.groups[group_id].to_value()),
            ));
            return out;
        }
        let member = self
            .groups
            .get_mut(group_id)
            .unwrap()
            .member_mut(&new_id)
            .unwrap();
        member.awaiting_join = Some(token);
        self.prepare_rebalance(now, group_id, &mut out);
        self.maybe_complete_join(now, group_id, &mut out);
        out
    }

    /// The JoinGroup response for a member of the current generation.
    fn join_response(&self, group: &ClassicGroup, member_id: &str) -> JoinGroupResponse {
        let protocol = group.protocol.clone().unwrap_or_default();
        let leader = group.leader.clone().unwrap_or_default();
        let members = if leader == member_id {
            group
                .members
                .iter()
                .map(|m| {
                    JoinGroupResponseMember::default()
                        .with_member_id(s(&m.member_id))
                        .with_group_instance_id(m.instance_id.as_deref().map(s))
                        .with_metadata(m.metadata_for(&protocol))
                })
                .collect()
        } else {
            Vec::new()
        };
        JoinGroupResponse::default()
            .with_generation_id(group.generation)
            .with_protocol_type(group.protocol_type.as_deref().map(s))
            .with_protocol_name(Some(s(&protocol)))
            .with_leader(s(&leader))
            .with_member_id(s(member_id))
            .with_members(members)
    }

    /// Moves the group into PreparingRebalance (if not already there).
    pub(crate) fn prepare_rebalance<R>(&mut self, now: i64, group_id: &str, out: &mut Outcome<R>) {
        let initial_delay = self.config.initial_rebalance_delay_ms;
        let group = self.groups.get_mut(group_id).expect("group exists");
        match group.state {
            GroupState::PreparingRebalance => {
                // A new member during the initial delay pushes it back, up to the rebalance timeout.
                if let Some(deadline) = group.initial_join_deadline {
                    let limit = group.rebalance_deadline.unwrap_or(deadline);
                    group.initial_join_deadline =
                        Some((now + initial_delay).min(limit).max(deadline));
                }
                return;
            }
            GroupState::CompletingRebalance => {
                for member in &mut group.members {
                    if let Some(t) = member.awaiting_sync.take() {
                        out.completions.push(Completion::Sync(
                            t,
                            sync_error(ResponseError::RebalanceInProgress),
                        ));
                    }
                }
            }
            _ => {}
        }
        let was_empty = group.state == GroupState::Empty;
        group.rebalance_deadline = Some(now + group.max_rebalance_timeout());
        group.initial_join_deadline =
            (was_empty && initial_delay > 0).then_some(now + initial_delay);
        group.transition(GroupState::PreparingRebalance, now);
        tracing::debug!(
            group = group_id,
            generation = group.generation,
            "preparing rebalance"
        );
    }

    /// Completes the join phase once every member has rejoined (and a new
    /// group's initial delay has passed).
    pub(crate) fn maybe_complete_join<R>(
        &mut self,
        now: i64,
        group_id: &str,
        out: &mut Outcome<R>,
    ) {
        let group = &self.groups[group_id];
        if group.state != GroupState::PreparingRebalance || !group.all_members_joined() {
            return;
        }
        if group.initial_join_deadline.is_some_and(|d| now < d) {
            return;
        }
        self.complete_join(now, group_id, out);
    }

    /// Ends the join phase: members that did not rejoin are dropped, a new
    /// generation starts, and every parked JoinGroup is answered.
    pub(crate) fn complete_join<R>(&mut self, now: i64, group_id: &str, out: &mut Outcome<R>) {
        let group = self.groups.get_mut(group_id).expect("group exists");
        group.members.retain(|m| m.awaiting_join.is_some());
        group.pending_members.clear();
        group.rebalance_deadline = None;
        group.initial_join_deadline = None;
        group.generation += 1;
        if group.members.is_empty() {
            group.protocol = None;
            group.leader = None;
            group.transition(GroupState::Empty, now);
            out.records
                .push(group_record(group_id, Some(&group.to_value())));
            tracing::debug!(
                group = group_id,
                generation = group.generation,
                "group is empty"
            );
            return;
        }
        group.protocol = group.select_protocol();
        if group
            .leader
            .as_ref()
            .is_none_or(|l| group.member(l).is_none())
        {
            group.leader = Some(group.members[0].member_id.clone());
        }
        group.transition(GroupState::CompletingRebalance, now);
        tracing::debug!(
            group = group_id,
            generation = group.generation,
            members = group.members.len(),
            protocol = ?group.protocol,
            "rebalance: join phase complete"
        );
        let tokens: Vec<(Token, String)> = group
            .members
            .iter_mut()
            .filter_map(|m| {
                m.last_heartbeat_ms = now;
                m.awaiting_join.take().map(|t| (t, m.member_id.clone()))
            })
            .collect();
        let group = &self.groups[group_id];
        for (token, member_id) in tokens {
            out.completions.push(Completion::Join(
                token,
                self.join_response(group, &member_id),
            ));
        }
    }

    pub fn sync_group(
        &mut self,
        now: i64,
        token: Token,
        request: SyncGroupRequest,
    ) -> Outcome<SyncGroupResponse> {
        let group_id = request.group_id.as_str().to_string();
        let member_id = request.member_id.as_str().to_string();
        let respond = |code| Outcome::respond(sync_error(code));
        let Some(group) = self.groups.get_mut(&group_id) else {
            return respond(ResponseError::UnknownMemberId);
        };
        if let Err(code) = validate_member(
            group,
            &member_id,
            request.group_instance_id.as_ref().map(|i| i.as_str()),
        ) {
            return respond(code);
        }
        if request.generation_id != group.generation {
            return respond(ResponseError::IllegalGeneration);
        }
        let protocol_mismatch = request
            .protocol_type
            .as_ref()
            .is_some_and(|t| Some(t.as_str()) != group.protocol_type.as_deref())
            || request
                .protocol_name
                .as_ref()
                .is_some_and(|n| Some(n.as_str()) != group.protocol.as_deref());
        if protocol_mismatch {
            return respond(ResponseError::InconsistentGroupProtocol);
        }
        let protocol_type = group.protocol_type.clone();
        let protocol = group.protocol.clone();
        let success = |assignment: Bytes| {
            SyncGroupResponse::default()
                .with_protocol_type(protocol_type.as_deref().map(s))
                .with_protocol_name(protocol.as_deref().map(s))
                .with_assignment(assignment)
        };
        match group.state {
            GroupState::Empty | GroupState::Dead => respond(ResponseError::UnknownMemberId),
            GroupState::PreparingRebalance => respond(ResponseError::RebalanceInProgress),
            GroupState::Stable => {
                let member = group.member_mut(&member_id).expect("validated");
                member.last_heartbeat_ms = now;
                Outcome::respond(success(member.assignment.clone()))
            }
            GroupState::CompletingRebalance => {
                let is_leader = group.leader.as_deref() == Some(member_id.as_str());
                let member = group.member_mut(&member_id).expect("validated");
                member.last_heartbeat_ms = now;
                let mut out = Outcome::pending();
                if let Some(previous) = member.awaiting_sync.replace(token) {
                    out.completions.push(Completion::Sync(
                        previous,
                        sync_error(ResponseError::UnknownMemberId),
                    ));
                }
                if !is_leader {
                    return out;
                }
                for m in &mut group.members {
                    m.assignment = request
                        .assignments
                        .iter()
                        .find(|a| a.member_id.as_str() == m.member_id)
                        .map(|a| a.assignment.clone())
                        .unwrap_or_default();
                }
                group.transition(GroupState::Stable, now);
                out.records
                    .push(group_record(&group_id, Some(&group.to_value())));
                tracing::debug!(group = %group_id, generation = group.generation, "rebalance complete: stable");
                for m in &mut group.members {
                    if let Some(t) = m.awaiting_sync.take() {
                        let response = success(m.assignment.clone());
                        if t == token {
                            out.response = Some(response);
                        } else {
                            out.completions.push(Completion::Sync(t, response));
                        }
                    }
                }
                out
            }
        }
    }

    pub fn heartbeat(&mut self, now: i64, request: HeartbeatRequest) -> Outcome<HeartbeatResponse> {
        let respond = |code: Option<ResponseError>| {
            Outcome::respond(
                HeartbeatResponse::default().with_error_code(code.map_or(0, |c| c.code())),
            )
        };
        let Some(group) = self.groups.get_mut(request.group_id.as_str()) else {
            return respond(Some(ResponseError::UnknownMemberId));
        };
        let member_id = request.member_id.as_str();
        if let Err(code) = validate_member(
            group,
            member_id,
            request.group_instance_id.as_ref().map(|i| i.as_str()),
        ) {
            return respond(Some(code));
        }
        if request.generation_id != group.generation {
            return respond(Some(ResponseError::IllegalGeneration));
        }
        let state = group.state;
        group
            .member_mut(member_id)
            .expect("validated")
            .last_heartbeat_ms = now;
        match state {
            GroupState::Empty | GroupState::Dead => respond(Some(ResponseError::UnknownMemberId)),
            GroupState::PreparingRebalance => respond(Some(ResponseError::RebalanceInProgress)),
            GroupState::CompletingRebalance | GroupState::Stable => respond(None),
        }
    }

    pub fn leave_group(
        &mut self,
        now: i64,
        version: i16,
        request: LeaveGroupRequest,
    ) -> Outcome<LeaveGroupResponse> {
        let group_id = request.group_id.as_str().to_string();
        let identities: Vec<(String, Option<String>)> = if version < 3 {
            vec![(request.member_id.as_str().to_string(), None)]
        } else {
            request
                .members
                .iter()
                .map(|m| {
                    (
                        m.member_id.as_str().to_string(),
                        m.group_instance_id.as_ref().map(|i| i.as_str().to_string()),
                    )
                })
                .collect()
        };
        let mut out = Outcome::pending();
        let mut responses = Vec::new();
        let mut removed_any = false;
        for (member_id, instance_id) in identities {
            let code = match self.groups.get_mut(&group_id) {
                None => Some(ResponseError::UnknownMemberId),
                Some(group) => {
                    let target = match &instance_id {
                        Some(instance) => match group.member_by_instance(instance) {
                            None => Err(ResponseError::UnknownMemberId),
                            Some(m) if !member_id.is_empty() && m.member_id != member_id => {
                                Err(ResponseError::FencedInstanceId)
                            }
                            Some(m) => Ok(m.member_id.clone()),
                        },
                        None if group.pending_members.remove(&member_id).is_some() => {
                            responses.push((member_id.clone(), instance_id.clone(), None));
                            continue;
                        }
                        None => match group.member(&member_id) {
                            Some(_) => Ok(member_id.clone()),
                            None => Err(ResponseError::UnknownMemberId),
                        },
                    };
                    match target {
                        Ok(id) => {
                            remove_member(group, &id, &mut out);
                            removed_any = true;
                            tracing::debug!(group = %group_id, member = %id, "member left");
                            None
                        }
                        Err(code) => Some(code),
                    }
                }
            };
            responses.push((member_id, instance_id, code));
        }
        if removed_any {
            self.rebalance_after_removal(now, &group_id, &mut out);
        }
        let top_level = if version < 3 {
            responses.first().and_then(|r| r.2)
        } else {
            None
        };
        let members = if version < 3 {
            Vec::new()
        } else {
            responses
                .into_iter()
                .map(|(member_id, instance_id, code)| {
                    MemberResponse::default()
                        .with_member_id(s(&member_id))
                        .with_group_instance_id(instance_id.as_deref().map(s))
                        .with_error_code(code.map_or(0, |c| c.code()))
                })
                .collect()
        };
        out.response = Some(
            LeaveGroupResponse::default()
                .with_error_code(top_level.map_or(0, |c| c.code()))
                .with_members(members),
        );
        out
    }

    /// After members were removed: start (or finish) a rebalance.
    pub(crate) fn rebalance_after_removal<R>(
        &mut self,
        now: i64,
        group_id: &str,
        out: &mut Outcome<R>,
    ) {
        let Some(group) = self.groups.get(group_id) else {
            return;
        };
        match group.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                if group.members.is_empty() {
                    let group = self.groups.get_mut(group_id).unwrap();
                    group.generation += 1;
                    group.protocol = None;
                    group.leader = None;
                    group.transition(GroupState::Empty, now);
                    out.records
                        .push(group_record(group_id, Some(&group.to_value())));
                } else {
                    self.prepare_rebalance(now, group_id, out);
                }
            }
            GroupState::PreparingRebalance => {
                if group.members.is_empty() {
                    self.complete_join(now, group_id, out);
                } else {
                    self.maybe_complete_join(now, group_id, out);
                }
            }
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    /// Session and rebalance timeouts, and lapsed KIP-394 member ids.
    pub(crate) fn tick_classic<R>(&mut self, now: i64, out: &mut Outcome<R>) {
        let ids: Vec<String> = self.groups.keys().cloned().collect();
        for group_id in ids {
            let group = self.groups.get_mut(&group_id).unwrap();
            group.pending_members.retain(|_, deadline| *deadline > now);
            let expired: Vec<String> = group
                .members
                .iter()
                .filter(|m| m.session_expired(now))
                .map(|m| m.member_id.clone())
                .collect();
            for id in &expired {
                tracing::info!(group = %group_id, member = %id, "member session expired");
                remove_member(group, id, out);
            }
            if !expired.is_empty() {
                self.rebalance_after_removal(now, &group_id, out);
            }
            let group = &self.groups[&group_id];
            if group.state == GroupState::PreparingRebalance {
                if group.rebalance_deadline.is_some_and(|d| now >= d) {
                    self.complete_join(now, &group_id, out);
                } else {
                    self.maybe_complete_join(now, &group_id, out);
                }
            }
        }
    }
}

/// Checks that `member_id` (and its static instance id, if given) is current.
fn validate_member(
    group: &ClassicGroup,
    member_id: &str,
    instance_id: Option<&str>,
) -> Result<(), ResponseError> {
    if let Some(instance) = instance_id {
        if let Some(owner) = group.member_by_instance(instance) {
            if owner.member_id != member_id {
                return Err(ResponseError::FencedInstanceId);
            }
        }
    }
    if group.member(member_id).is_none() {
        return Err(ResponseError::UnknownMemberId);
    }
    Ok(())
}

/// Drops a member, failing any request of its that is parked.
fn remove_member<R>(group: &mut ClassicGroup, member_id: &str, out: &mut Outcome<R>) {
    if let Some(pos) = group.members.iter().position(|m| m.member_id == member_id) {
        let member = group.members.remove(pos);
        if let Some(t) = member.awaiting_join {
            out.completions.push(Completion::Join(
                t,
                join_error(ResponseError::UnknownMemberId, member_id),
            ));
        }
        if let Some(t) = member.awaiting_sync {
            out.completions.push(Completion::Sync(
                t,
                sync_error(ResponseError::UnknownMemberId),
            ));
        }
    }
}
