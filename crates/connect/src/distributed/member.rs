//! The worker's membership of the Connect group: a classic-protocol group
//! member with protocol type `connect` (what Kafka Connect's
//! WorkerGroupMember does), over kafka-protocol messages. The leader assigns
//! connectors and tasks round-robin; the protocol is eager: before every
//! rejoin the herder stops everything it runs.
//!
//! Member metadata and assignments are JSON (Kafka Connect's are binary
//! structs, so Strom and Java workers cannot share a group).

use crate::distributed::wire::{connect_to_coordinator, error_name, Connection};
use crate::error::{ConnectError, Result};
use crate::runtime::store::{ConfigState, ConfigStore, TaskId};
use bytes::Bytes;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ApiKey, GroupId, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, SyncGroupRequest,
};
use kafka_protocol::protocol::StrBytes;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

pub const PROTOCOL_TYPE: &str = "connect";
const PROTOCOL_NAME: &str = "default";

// Kafka error codes the member reacts to.
const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
const COORDINATOR_NOT_AVAILABLE: i16 = 15;
const NOT_COORDINATOR: i16 = 16;
const ILLEGAL_GENERATION: i16 = 22;
const UNKNOWN_MEMBER_ID: i16 = 25;
const REBALANCE_IN_PROGRESS: i16 = 27;
const MEMBER_ID_REQUIRED: i16 = 79;

#[derive(Clone, Debug, Serialize, Deserialize)]
struct MemberMetadata {
    url: String,
    config_offset: i64,
}

/// What the leader hands each member.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    pub generation: i32,
    pub member_id: String,
    pub leader: String,
    pub leader_url: String,
    /// The config log position the leader assigned from.
    pub config_offset: i64,
    pub connectors: Vec<String>,
    pub tasks: Vec<TaskId>,
    /// `connector:tasks,...` of the whole group's assignment: when the config
    /// state no longer matches it, the leader asks for a rebalance.
    pub signature: String,
    /// Every member's REST URL, by member id.
    pub urls: BTreeMap<String, String>,
}

impl Assignment {
    pub fn is_leader(&self) -> bool {
        !self.member_id.is_empty() && self.member_id == self.leader
    }
}

/// The connectors and their task counts that an assignment must cover.
pub fn signature(state: &ConfigState) -> String {
    let ids = state.task_ids();
    state
        .connectors
        .keys()
        .map(|name| {
            let tasks = ids.iter().filter(|t| &t.connector == name).count();
            format!("{name}:{tasks}")
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The leader's round-robin assignment: connectors, then tasks, over the
/// members sorted by id (Kafka Connect's eager assignor).
pub fn assign(
    members: &[(String, String)],
    state: &ConfigState,
    generation: i32,
    leader: &str,
) -> BTreeMap<String, Assignment> {
    let mut ids: Vec<&(String, String)> = members.iter().collect();
    ids.sort();
    let urls: BTreeMap<String, String> = members.iter().cloned().collect();
    let leader_url = urls.get(leader).cloned().unwrap_or_default();
    let mut out: BTreeMap<String, Assignment> = ids
        .iter()
        .map(|(id, _)| {
            (
                id.clone(),
                Assignment {
                    generation,
                    member_id: id.clone(),
                    leader: leader.to_string(),
                    leader_url: leader_url.clone(),
                    config_offset: state.offset,
                    signature: signature(state),
                    urls: urls.clone(),
                    ..Assignment::default()
                },
            )
        })
        .collect();
    if ids.is_empty() {
        return out;
    }
    let mut next = 0usize;
    for name in state.connectors.keys() {
        let member = &ids[next % ids.len()].0;
        out.get_mut(member)
            .expect("member")
            .connectors
            .push(name.clone());
        next += 1;
    }
    for task in state.task_ids() {
        let member = &ids[next % ids.len()].0;
        out.get_mut(member).expect("member").tasks.push(task);
        next += 1;
    }
    out
}

/// What the member tells the herder.
pub enum MemberEvent {
    /// Stop everything (a rebalance begins); reply when done.
    Revoke(oneshot::Sender<()>),
    Assigned(Assignment),
}

pub struct MemberSettings {
    pub bootstrap: String,
    pub group_id: String,
    pub url: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub heartbeat_interval: Duration,
}

/// Handle on the member task.
pub struct Member {
    rejoin: mpsc::UnboundedSender<()>,
    shutdown: watch::Sender<bool>,
    join: tokio::task::JoinHandle<()>,
}

impl Member {
    pub fn start(
        settings: MemberSettings,
        configs: Arc<dyn ConfigStore>,
        events: mpsc::Sender<MemberEvent>,
    ) -> Member {
        let (rejoin, rejoin_rx) = mpsc::unbounded_channel();
        let (shutdown, shutdown_rx) = watch::channel(false);
        let join = tokio::spawn(run(settings, configs, events, rejoin_rx, shutdown_rx));
        Member {
            rejoin,
            shutdown,
            join,
        }
    }

    /// Asks for a rebalance (after a config change the assignment lacks).
    pub fn request_rejoin(&self) {
        let _ = self.rejoin.send(());
    }

    /// Leaves the group (after a last revoke) and waits.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(15), self.join).await;
    }
}

struct State {
    settings: MemberSettings,
    configs: Arc<dyn ConfigStore>,
    events: mpsc::Sender<MemberEvent>,
    member_id: String,
    generation: i32,
    /// True while the herder runs an assignment (so a revoke is due first).
    assigned: bool,
}

enum Outcome {
    Rejoin,
    Reconnect,
    Shutdown,
}

async fn run(
    settings: MemberSettings,
    configs: Arc<dyn ConfigStore>,
    events: mpsc::Sender<MemberEvent>,
    mut rejoin: mpsc::UnboundedReceiver<()>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut state = State {
        settings,
        configs,
        events,
        member_id: String::new(),
        generation: -1,
        assigned: false,
    };
    let mut backoff = Duration::from_millis(200);
    'connect: loop {
        if *shutdown.borrow() {
            break;
        }
        let mut connection =
            match connect_to_coordinator(&state.settings.bootstrap, &state.settings.group_id).await
            {
                Ok(c) => {
                    backoff = Duration::from_millis(200);
                    c
                }
                Err(e) => {
                    tracing::warn!(error = %e, "finding the group coordinator");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.changed() => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
        loop {
            let outcome = match join_and_sync(&mut state, &mut connection).await {
                Ok(()) => {
                    heartbeat_loop(&mut state, &mut connection, &mut rejoin, &mut shutdown).await
                }
                Err(e) => {
                    tracing::warn!(error = %e, "joining the group");
                    Outcome::Reconnect
                }
            };
            match outcome {
                Outcome::Rejoin => continue,
                Outcome::Reconnect => {
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.changed() => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue 'connect;
                }
                Outcome::Shutdown => {
                    revoke(&mut state).await;
                    leave(&state, &mut connection).await;
                    break 'connect;
                }
            }
        }
    }
}

async fn revoke(state: &mut State) {
    if !state.assigned {
        return;
    }
    let (tx, rx) = oneshot::channel();
    if state.events.send(MemberEvent::Revoke(tx)).await.is_ok() {
        let _ = rx.await;
    }
    state.assigned = false;
}

fn coordinator_error(code: i16) -> bool {
    matches!(
        code,
        COORDINATOR_LOAD_IN_PROGRESS | COORDINATOR_NOT_AVAILABLE | NOT_COORDINATOR
    )
}

/// One JoinGroup + SyncGroup round; on success the herder has the assignment.
async fn join_and_sync(state: &mut State, connection: &mut Connection) -> Result<()> {
    revoke(state).await;
    let request_timeout = state.settings.rebalance_timeout + Duration::from_secs(5);
    loop {
        let metadata = MemberMetadata {
            url: state.settings.url.clone(),
            config_offset: state.configs.snapshot().offset,
        };
        let request = JoinGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(
                state.settings.group_id.clone(),
            )))
            .with_session_timeout_ms(state.settings.session_timeout.as_millis() as i32)
            .with_rebalance_timeout_ms(state.settings.rebalance_timeout.as_millis() as i32)
            .with_member_id(StrBytes::from_string(state.member_id.clone()))
            .with_protocol_type(StrBytes::from_static_str(PROTOCOL_TYPE))
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name(StrBytes::from_static_str(PROTOCOL_NAME))
                .with_metadata(Bytes::from(
                    serde_json::to_vec(&metadata).expect("JSON"),
                ))]);
        let (_, response) = connection.send(&request, 7, request_timeout).await?;
        match response.error_code {
            0 => {}
            MEMBER_ID_REQUIRED => {
                state.member_id = response.member_id.to_string();
                continue;
            }
            UNKNOWN_MEMBER_ID => {
                state.member_id.clear();
                continue;
            }
            REBALANCE_IN_PROGRESS => continue,
            code if coordinator_error(code) => {
                return Err(ConnectError::retriable(format!(
                    "JoinGroup: {}",
                    error_name(code)
                )))
            }
            code => {
                tokio::time::sleep(Duration::from_millis(500)).await;
                tracing::warn!("JoinGroup: {}", error_name(code));
                continue;
            }
        }
        state.member_id = response.member_id.to_string();
        state.generation = response.generation_id;
        let leader = response.leader.to_string();
        let assignments = if leader == state.member_id {
            state.configs.refresh().await?;
            let snapshot = state.configs.snapshot();
            let members: Vec<(String, String)> = response
                .members
                .iter()
                .map(|m| {
                    let url = serde_json::from_slice::<MemberMetadata>(&m.metadata)
                        .map(|meta| meta.url)
                        .unwrap_or_default();
                    (m.member_id.to_string(), url)
                })
                .collect();
            let assignment = assign(&members, &snapshot, state.generation, &leader);
            tracing::info!(
                generation = state.generation,
                members = members.len(),
                "assigning as the group leader"
            );
            assignment
                .into_iter()
                .map(|(id, a)| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(StrBytes::from_string(id))
                        .with_assignment(Bytes::from(serde_json::to_vec(&a).expect("JSON")))
                })
                .collect()
        } else {
            Vec::new()
        };
        let sync_version = connection.version(ApiKey::SyncGroup, 5)?;
        let mut sync = SyncGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(
                state.settings.group_id.clone(),
            )))
            .with_generation_id(state.generation)
            .with_member_id(StrBytes::from_string(state.member_id.clone()))
            .with_assignments(assignments);
        if sync_version >= 5 {
            sync = sync
                .with_protocol_type(Some(StrBytes::from_static_str(PROTOCOL_TYPE)))
                .with_protocol_name(Some(StrBytes::from_static_str(PROTOCOL_NAME)));
        }
        let (_, response) = connection
            .send(&sync, sync_version, request_timeout)
            .await?;
        match response.error_code {
            0 => {}
            REBALANCE_IN_PROGRESS | ILLEGAL_GENERATION => continue,
            UNKNOWN_MEMBER_ID => {
                state.member_id.clear();
                continue;
            }
            code if coordinator_error(code) => {
                return Err(ConnectError::retriable(format!(
                    "SyncGroup: {}",
                    error_name(code)
                )))
            }
            code => {
                tracing::warn!("SyncGroup: {}", error_name(code));
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        }
        let assignment: Assignment = serde_json::from_slice(&response.assignment).map_err(|e| {
            ConnectError::Protocol(format!("invalid assignment from the leader: {e}"))
        })?;
        if assignment.config_offset > state.configs.snapshot().offset {
            state.configs.refresh().await?;
        }
        tracing::info!(
            generation = state.generation,
            connectors = assignment.connectors.len(),
            tasks = assignment.tasks.len(),
            leader = assignment.is_leader(),
            "joined the group"
        );
        state.assigned = true;
        if state
            .events
            .send(MemberEvent::Assigned(assignment))
            .await
            .is_err()
        {
            return Err(ConnectError::ShuttingDown);
        }
        return Ok(());
    }
}

async fn heartbeat_loop(
    state: &mut State,
    connection: &mut Connection,
    rejoin: &mut mpsc::UnboundedReceiver<()>,
    shutdown: &mut watch::Receiver<bool>,
) -> Outcome {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(state.settings.heartbeat_interval) => {}
            Some(()) = rejoin.recv() => {
                while rejoin.try_recv().is_ok() {}
                tracing::info!("rejoining the group after a config change");
                return Outcome::Rejoin;
            }
            _ = shutdown.changed() => return Outcome::Shutdown,
        }
        let request = HeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(
                state.settings.group_id.clone(),
            )))
            .with_generation_id(state.generation)
            .with_member_id(StrBytes::from_string(state.member_id.clone()));
        match connection.send(&request, 4, Duration::from_secs(10)).await {
            Ok((_, response)) => match response.error_code {
                0 => {}
                REBALANCE_IN_PROGRESS => {
                    tracing::info!("the group is rebalancing");
                    return Outcome::Rejoin;
                }
                ILLEGAL_GENERATION => return Outcome::Rejoin,
                UNKNOWN_MEMBER_ID => {
                    state.member_id.clear();
                    return Outcome::Rejoin;
                }
                code if coordinator_error(code) => return Outcome::Reconnect,
                code => {
                    tracing::warn!("Heartbeat: {}", error_name(code));
                    return Outcome::Rejoin;
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "heartbeat failed");
                return Outcome::Reconnect;
            }
        }
    }
}

async fn leave(state: &State, connection: &mut Connection) {
    if state.member_id.is_empty() {
        return;
    }
    let Ok(version) = connection.version(ApiKey::LeaveGroup, 4) else {
        return;
    };
    let group = GroupId(StrBytes::from_string(state.settings.group_id.clone()));
    let member = StrBytes::from_string(state.member_id.clone());
    // v3+ leaves in a batch of members; before, one member id.
    let request = if version >= 3 {
        LeaveGroupRequest::default()
            .with_group_id(group)
            .with_members(vec![MemberIdentity::default().with_member_id(member)])
    } else {
        LeaveGroupRequest::default()
            .with_group_id(group)
            .with_member_id(member)
    };
    match connection
        .send(&request, version, Duration::from_secs(5))
        .await
    {
        Ok((_, response)) if response.error_code != 0 => {
            tracing::warn!("LeaveGroup: {}", error_name(response.error_code))
        }
        Ok(_) => tracing::info!("left the group"),
        Err(e) => tracing::warn!(error = %e, "leaving the group"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::store::{ConnectorEntry, TargetState};

    #[test]
    fn round_robin_covers_everything_once() {
        let mut state = ConfigState::default();
        for (name, tasks) in [("a", 3), ("b", 2)] {
            state.connectors.insert(
                name.into(),
                ConnectorEntry {
                    config: Default::default(),
                    target: TargetState::Started,
                    tasks: Some(vec![Default::default(); tasks]),
                },
            );
        }
        let members = vec![
            ("m2".to_string(), "u2".to_string()),
            ("m1".to_string(), "u1".to_string()),
        ];
        let out = assign(&members, &state, 3, "m1");
        let all_tasks: usize = out.values().map(|a| a.tasks.len()).sum();
        let all_connectors: usize = out.values().map(|a| a.connectors.len()).sum();
        assert_eq!((all_connectors, all_tasks), (2, 5));
        assert_eq!(out["m1"].connectors, vec!["a"]);
        assert!(out["m1"].is_leader() && !out["m2"].is_leader());
        assert_eq!(out["m1"].tasks.len() + out["m1"].connectors.len(), 4);
        assert_eq!(out["m2"].signature, "a:3,b:2");
    }
}
