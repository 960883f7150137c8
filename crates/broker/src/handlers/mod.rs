//! Request dispatch by API key, one module per API (or family).
//!
//! Version negotiation is ours: [`SUPPORTED`] lists what Strom implements.
//! A request for an API or version outside it closes the connection, as
//! Kafka does, except ApiVersions, which is answered with the v0 response
//! and UNSUPPORTED_VERSION so the client can pick a version it shares.

mod admin_topics;
mod api_versions;
mod configs;
mod delete_records;
mod describe_cluster;
mod describe_topic_partitions;
mod fetch;
mod groups;
mod list_offsets;
mod metadata;
mod produce;
mod producer_id;
mod txn;
mod txn_admin;

use crate::connection::{peek_header, ConnectionError};
use crate::response::{Placeholders, Response};
use crate::server::BrokerContext;
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use std::net::SocketAddr;
use std::sync::Arc;

/// The APIs and versions Strom implements.
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 13),
    (ApiKey::Fetch, 4, 18),
    (ApiKey::ListOffsets, 1, 10),
    (ApiKey::Metadata, 0, 13),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeCluster, 0, 2),
    (ApiKey::DescribeTopicPartitions, 0, 0),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::AddPartitionsToTxn, 0, 4),
    (ApiKey::AddOffsetsToTxn, 0, 4),
    (ApiKey::EndTxn, 0, 4),
    (ApiKey::TxnOffsetCommit, 0, 4),
    (ApiKey::DescribeTransactions, 0, 0),
    (ApiKey::ListTransactions, 0, 1),
    (ApiKey::DescribeProducers, 0, 0),
];

pub fn supported_range(key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, min, max)| (*min, *max))
}

/// What a request handler gets besides the request body.
pub struct RequestContext<'a> {
    pub broker: &'a Arc<BrokerContext>,
    pub header: &'a RequestHeader,
    pub version: i16,
    pub peer: SocketAddr,
}

/// Decodes and answers one frame. `Ok(None)`: no response is due (acks=0).
/// `Err`: the connection must be closed. Error codes in the response are
/// counted here, for every API alike; timing is the connection's.
pub async fn handle(
    broker: &Arc<BrokerContext>,
    frame: Bytes,
    peer: SocketAddr,
) -> Result<Option<Response>, ConnectionError> {
    let (raw_key, version, correlation_id) = peek_header(&frame).ok_or_else(|| {
        ConnectionError::Malformed(format!(
            "{}-byte frame is too short for a request header",
            frame.len()
        ))
    })?;
    let api_key = ApiKey::try_from(raw_key).map_err(|_| ConnectionError::UnknownApiKey(raw_key))?;
    let supported = supported_range(api_key).filter(|(min, max)| (*min..=*max).contains(&version));
    if supported.is_none() {
        if api_key == ApiKey::ApiVersions {
            tracing::info!(%peer, version, "ApiVersions version not supported: answering with v0");
            let body = ResponseKind::ApiVersions(api_versions::unsupported_version_response());
            broker.metrics.response_errors(api_key, &body);
            return encode_response(api_key, 0, correlation_id, &body).map(|b| Some(b.into()));
        }
        return Err(ConnectionError::UnsupportedVersion {
            api: format!("{api_key:?}"),
            version,
        });
    }
    let (header, request) = decode_request(api_key, version, frame)
        .map_err(|e| ConnectionError::Malformed(format!("{e} (from {peer})")))?;
    let ctx = RequestContext {
        broker,
        header: &header,
        version,
        peer,
    };
    tracing::trace!(%peer, ?api_key, version, correlation_id, "request");
    // Fetch's records, sent from their files once the rest is encoded.
    let mut files = Placeholders::default();
    let response = match request {
        RequestKind::ApiVersions(req) => ResponseKind::ApiVersions(api_versions::handle(&ctx, req)),
        RequestKind::Metadata(req) => ResponseKind::Metadata(metadata::handle(&ctx, req).await),
        RequestKind::Produce(req) => match produce::handle(&ctx, req).await? {
            Some(response) => ResponseKind::Produce(response),
            None => return Ok(None),
        },
        RequestKind::Fetch(req) => {
            let (response, slices) = fetch::handle(&ctx, req).await;
            files = slices;
            ResponseKind::Fetch(response)
        }
        RequestKind::ListOffsets(req) => {
            ResponseKind::ListOffsets(list_offsets::handle(&ctx, req).await)
        }
        RequestKind::CreateTopics(req) => {
            ResponseKind::CreateTopics(admin_topics::create_topics(&ctx, req).await)
        }
        RequestKind::DeleteTopics(req) => {
            ResponseKind::DeleteTopics(admin_topics::delete_topics(&ctx, req).await)
        }
        RequestKind::CreatePartitions(req) => {
            ResponseKind::CreatePartitions(admin_topics::create_partitions(&ctx, req).await)
        }
        RequestKind::DescribeConfigs(req) => {
            ResponseKind::DescribeConfigs(configs::describe(&ctx, req))
        }
        RequestKind::AlterConfigs(req) => {
            ResponseKind::AlterConfigs(configs::alter(&ctx, req).await)
        }
        RequestKind::IncrementalAlterConfigs(req) => {
            ResponseKind::IncrementalAlterConfigs(configs::incremental_alter(&ctx, req).await)
        }
        RequestKind::DeleteRecords(req) => {
            ResponseKind::DeleteRecords(delete_records::handle(&ctx, req).await)
        }
        RequestKind::DescribeCluster(req) => {
            ResponseKind::DescribeCluster(describe_cluster::handle(&ctx, req))
        }
        RequestKind::DescribeTopicPartitions(req) => {
            ResponseKind::DescribeTopicPartitions(describe_topic_partitions::handle(&ctx, req))
        }
        RequestKind::FindCoordinator(req) => {
            ResponseKind::FindCoordinator(groups::find_coordinator(&ctx, req).await)
        }
        RequestKind::JoinGroup(req) => ResponseKind::JoinGroup(groups::join_group(&ctx, req).await),
        RequestKind::SyncGroup(req) => ResponseKind::SyncGroup(groups::sync_group(&ctx, req).await),
        RequestKind::Heartbeat(req) => ResponseKind::Heartbeat(groups::heartbeat(&ctx, req).await),
        RequestKind::LeaveGroup(req) => {
            ResponseKind::LeaveGroup(groups::leave_group(&ctx, req).await)
        }
        RequestKind::OffsetCommit(req) => {
            ResponseKind::OffsetCommit(groups::offset_commit(&ctx, req).await)
        }
        RequestKind::OffsetFetch(req) => ResponseKind::OffsetFetch(groups::offset_fetch(&ctx, req)),
        RequestKind::ListGroups(req) => ResponseKind::ListGroups(groups::list_groups(&ctx, req)),
        RequestKind::DescribeGroups(req) => {
            ResponseKind::DescribeGroups(groups::describe_groups(&ctx, req))
        }
        RequestKind::DeleteGroups(req) => {
            ResponseKind::DeleteGroups(groups::delete_groups(&ctx, req).await)
        }
        RequestKind::OffsetDelete(req) => {
            ResponseKind::OffsetDelete(groups::offset_delete(&ctx, req).await)
        }
        RequestKind::ConsumerGroupHeartbeat(req) => {
            ResponseKind::ConsumerGroupHeartbeat(groups::consumer_group_heartbeat(&ctx, req).await)
        }
        RequestKind::ConsumerGroupDescribe(req) => {
            ResponseKind::ConsumerGroupDescribe(groups::consumer_group_describe(&ctx, req))
        }
        RequestKind::InitProducerId(req)
            if req.transactional_id.as_ref().is_some_and(|t| !t.is_empty()) =>
        {
            ResponseKind::InitProducerId(txn::init_producer_id(&ctx, req).await)
        }
        RequestKind::AddPartitionsToTxn(req) => {
            ResponseKind::AddPartitionsToTxn(txn::add_partitions(&ctx, req).await)
        }
        RequestKind::AddOffsetsToTxn(req) => {
            ResponseKind::AddOffsetsToTxn(txn::add_offsets(&ctx, req).await)
        }
        RequestKind::EndTxn(req) => ResponseKind::EndTxn(txn::end_txn(&ctx, req).await),
        RequestKind::TxnOffsetCommit(req) => {
            ResponseKind::TxnOffsetCommit(txn::txn_offset_commit(&ctx, req).await)
        }
        RequestKind::InitProducerId(req) => {
            ResponseKind::InitProducerId(producer_id::handle(&ctx, req).await)
        }
        RequestKind::DescribeTransactions(req) => {
            ResponseKind::DescribeTransactions(txn_admin::describe_transactions(&ctx, req))
        }
        RequestKind::ListTransactions(req) => {
            ResponseKind::ListTransactions(txn_admin::list_transactions(&ctx, req))
        }
        RequestKind::DescribeProducers(req) => {
            ResponseKind::DescribeProducers(txn_admin::describe_producers(&ctx, req).await)
        }
        other => {
            // Unreachable while SUPPORTED and this match agree; close rather than panic.
            return Err(ConnectionError::Malformed(format!(
                "no handler for {other:?}"
            )));
        }
    };
    broker.metrics.response_errors(api_key, &response);
    let encoded = encode_response(api_key, version, correlation_id, &response)?;
    if files.is_empty() {
        return Ok(Some(encoded.into()));
    }
    let flexible = version >= fetch::FIRST_FLEXIBLE_VERSION;
    Response::splice(encoded, files, flexible).map(Some)
}

/// Decodes a whole request frame (header and body) of a supported API and
/// version; the error says what failed. The fuzz target `request` runs this.
pub fn decode_request(
    api_key: ApiKey,
    version: i16,
    frame: Bytes,
) -> Result<(RequestHeader, RequestKind), String> {
    let mut buf = frame;
    let header = RequestHeader::decode(&mut buf, api_key.request_header_version(version))
        .map_err(|e| format!("{api_key:?} v{version} header: {e:#}"))?;
    let request = RequestKind::decode(api_key, &mut buf, version)
        .map_err(|e| format!("{api_key:?} v{version}: {e:#}"))?;
    Ok((header, request))
}

fn encode_response(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &ResponseKind,
) -> Result<BytesMut, ConnectionError> {
    let mut buf = BytesMut::new();
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    header
        .encode(&mut buf, api_key.response_header_version(version))
        .and_then(|_| body.encode(&mut buf, version))
        .map_err(|e| ConnectionError::Encode(format!("{api_key:?} v{version} response: {e:#}")))?;
    Ok(buf)
}

/// Runs blocking work (file I/O) without stalling the async workers.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(value) => value,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

pub fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}
