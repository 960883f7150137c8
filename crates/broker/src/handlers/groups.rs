//! The classic group protocol and committed offsets: FindCoordinator,
//! JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch,
//! ListGroups, DescribeGroups, DeleteGroups, OffsetDelete. Decisions are the
//! coordinator's (`strom-coordinator`); this module does the I/O.

use super::{blocking, str_bytes, RequestContext};
use crate::groups::ParkGuard;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::*;
use strom_coordinator::ClientInfo;

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

pub async fn find_coordinator(
    ctx: &RequestContext<'_>,
    request: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let b = ctx.broker;
    let node = BrokerId(b.config.node_id);
    let error = if request.key_type == KEY_TYPE_GROUP {
        let broker = b.clone();
        blocking(move || broker.groups.offsets_topic(&broker.topics).err()).await
    } else if request.key_type == KEY_TYPE_TRANSACTION {
        let broker = b.clone();
        blocking(move || broker.txns.txn_topic(&broker.topics).err()).await
    } else {
        Some(crate::error::ApiError::new(
            ResponseError::InvalidRequest,
            format!("unknown key type {}", request.key_type),
        ))
    };
    let code = error.as_ref().map_or(0, |e| e.code.code());
    let message = error.map(|e| str_bytes(e.message));
    if ctx.version < 4 {
        return FindCoordinatorResponse::default()
            .with_error_code(code)
            .with_error_message(message)
            .with_node_id(if code == 0 { node } else { BrokerId(-1) })
            .with_host(str_bytes(if code == 0 {
                b.advertised_host.clone()
            } else {
                String::new()
            }))
            .with_port(if code == 0 { b.advertised_port } else { -1 });
    }
    let coordinators = request
        .coordinator_keys
        .into_iter()
        .map(|key| {
            Coordinator::default()
                .with_key(key)
                .with_node_id(if code == 0 { node } else { BrokerId(-1) })
                .with_host(str_bytes(if code == 0 {
                    b.advertised_host.clone()
                } else {
                    String::new()
                }))
                .with_port(if code == 0 { b.advertised_port } else { -1 })
                .with_error_code(code)
                .with_error_message(message.clone())
        })
        .collect();
    FindCoordinatorResponse::default().with_coordinators(coordinators)
}

pub async fn join_group(ctx: &RequestContext<'_>, request: JoinGroupRequest) -> JoinGroupResponse {
    let b = ctx.broker.clone();
    let service = &ctx.broker.groups;
    let token = service.next_token();
    let receiver = service.park_join(token);
    let mut guard = ParkGuard {
        service,
        token,
        armed: true,
    };
    let version = ctx.version;
    let client_id = ctx
        .header
        .client_id
        .as_ref()
        .map(|c| c.as_str().to_string())
        .unwrap_or_default();
    let client_host = format!("/{}", ctx.peer.ip());
    let member_id = request.member_id.clone();
    let result = blocking(move || {
        b.groups.run(&b.topics, |c, now| {
            c.join_group(
                now,
                token,
                version,
                ClientInfo {
                    client_id: &client_id,
                    client_host: &client_host,
                },
                request,
            )
        })
    })
    .await;
    let (response, completions) = match result {
        Ok(r) => r,
        Err(e) => {
            service.unpark(token, true);
            guard.armed = false;
            return JoinGroupResponse::default()
                .with_error_code(e.code.code())
                .with_member_id(member_id);
        }
    };
    service.deliver(completions);
    if let Some(response) = response {
        service.unpark(token, false);
        guard.armed = false;
        return response;
    }
    let response = receiver.await;
    guard.armed = false;
    response.unwrap_or_else(|_| {
        JoinGroupResponse::default()
            .with_error_code(ResponseError::UnknownMemberId.code())
            .with_member_id(member_id)
    })
}

pub async fn sync_group(ctx: &RequestContext<'_>, request: SyncGroupRequest) -> SyncGroupResponse {
    let b = ctx.broker.clone();
    let service = &ctx.broker.groups;
    let token = service.next_token();
    let receiver = service.park_sync(token);
    let mut guard = ParkGuard {
        service,
        token,
        armed: true,
    };
    let result = blocking(move || {
        b.groups
            .run(&b.topics, |c, now| c.sync_group(now, token, request))
    })
    .await;
    let (response, completions) = match result {
        Ok(r) => r,
        Err(e) => {
            service.unpark(token, true);
            guard.armed = false;
            return SyncGroupResponse::default().with_error_code(e.code.code());
        }
    };
    service.deliver(completions);
    if let Some(response) = response {
        service.unpark(token, false);
        guard.armed = false;
        return response;
    }
    let response = receiver.await;
    guard.armed = false;
    response.unwrap_or_else(|_| {
        SyncGroupResponse::default().with_error_code(ResponseError::UnknownMemberId.code())
    })
}

/// Runs a coordinator call that never parks, delivering what it completes.
async fn immediate<R: Send + 'static>(
    ctx: &RequestContext<'_>,
    f: impl FnOnce(&mut strom_coordinator::GroupCoordinator, i64) -> strom_coordinator::Outcome<R>
        + Send
        + 'static,
) -> Result<R, crate::error::ApiError> {
    let b = ctx.broker.clone();
    let (response, completions) = blocking(move || b.groups.run(&b.topics, f)).await?;
    ctx.broker.groups.deliver(completions);
    response.ok_or_else(|| {
        crate::error::ApiError::new(ResponseError::UnknownServerError, "no response")
    })
}

pub async fn heartbeat(ctx: &RequestContext<'_>, request: HeartbeatRequest) -> HeartbeatResponse {
    immediate(ctx, move |c, now| c.heartbeat(now, request))
        .await
        .unwrap_or_else(|e| HeartbeatResponse::default().with_error_code(e.code.code()))
}

pub async fn leave_group(
    ctx: &RequestContext<'_>,
    request: LeaveGroupRequest,
) -> LeaveGroupResponse {
    let version = ctx.version;
    immediate(ctx, move |c, now| c.leave_group(now, version, request))
        .await
        .unwrap_or_else(|e| LeaveGroupResponse::default().with_error_code(e.code.code()))
}

pub async fn offset_commit(
    ctx: &RequestContext<'_>,
    request: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let b = ctx.broker.clone();
    let fallback = request.clone();
    let result = immediate(ctx, move |c, now| {
        c.commit_offsets(now, request, |topic, partition| {
            b.topics
                .get(topic)
                .is_some_and(|t| partition >= 0 && (partition as usize) < t.partitions.len())
        })
    })
    .await;
    result.unwrap_or_else(|e| {
        // The records could not be stored: nothing was committed.
        tracing::error!(peer = %ctx.peer, error = %e, "offset commit failed");
        let topics = fallback
            .topics
            .into_iter()
            .map(|t| {
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        offset_commit_response::OffsetCommitResponsePartition::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(e.code.code())
                    })
                    .collect();
                offset_commit_response::OffsetCommitResponseTopic::default()
                    .with_name(t.name)
                    .with_topic_id(t.topic_id)
                    .with_partitions(partitions)
            })
            .collect();
        OffsetCommitResponse::default().with_topics(topics)
    })
}

pub fn offset_fetch(ctx: &RequestContext<'_>, request: OffsetFetchRequest) -> OffsetFetchResponse {
    let version = ctx.version;
    ctx.broker
        .groups
        .read(|c| c.fetch_offsets(version, request))
}

pub fn list_groups(ctx: &RequestContext<'_>, request: ListGroupsRequest) -> ListGroupsResponse {
    ctx.broker.groups.read(|c| c.list_groups(request))
}

pub fn describe_groups(
    ctx: &RequestContext<'_>,
    request: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let version = ctx.version;
    ctx.broker
        .groups
        .read(|c| c.describe_groups(version, request))
}

pub async fn delete_groups(
    ctx: &RequestContext<'_>,
    request: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    immediate(ctx, move |c, _| c.delete_groups(request))
        .await
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "delete groups failed");
            DeleteGroupsResponse::default()
        })
}

pub async fn offset_delete(
    ctx: &RequestContext<'_>,
    request: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    immediate(ctx, move |c, _| c.delete_offsets(request))
        .await
        .unwrap_or_else(|e| OffsetDeleteResponse::default().with_error_code(e.code.code()))
}

/// The broker's topics as the coordinator sees them.
struct Topics<'a>(&'a crate::topics::TopicManager);

impl strom_coordinator::TopicsView for Topics<'_> {
    fn by_name(&self, name: &str) -> Option<(uuid::Uuid, i32)> {
        self.0.get(name).map(|t| (t.id, t.partitions.len() as i32))
    }
    fn by_id(&self, id: uuid::Uuid) -> Option<(String, i32)> {
        self.0
            .get_by_id(id)
            .map(|t| (t.name.clone(), t.partitions.len() as i32))
    }
}

pub async fn consumer_group_heartbeat(
    ctx: &RequestContext<'_>,
    request: ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    let b = ctx.broker.clone();
    let client_id = ctx
        .header
        .client_id
        .as_ref()
        .map(|c| c.as_str().to_string())
        .unwrap_or_default();
    let client_host = format!("/{}", ctx.peer.ip());
    immediate(ctx, move |c, now| {
        c.consumer_heartbeat(
            now,
            ClientInfo {
                client_id: &client_id,
                client_host: &client_host,
            },
            request,
            &Topics(&b.topics),
        )
    })
    .await
    .unwrap_or_else(|e| {
        ConsumerGroupHeartbeatResponse::default()
            .with_error_code(e.code.code())
            .with_error_message(Some(str_bytes(e.message)))
    })
}

pub fn consumer_group_describe(
    ctx: &RequestContext<'_>,
    request: ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
    let topics = Topics(&ctx.broker.topics);
    ctx.broker
        .groups
        .read(|c| c.consumer_group_describe(request, &topics))
}
