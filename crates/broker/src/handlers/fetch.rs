//! Fetch: whole stored batches from each requested partition, long-polling
//! (woken by appends) until `min_bytes` are available or `max_wait_ms` passes.
//!
//! Records are not read into memory: each partition's batches are a file
//! range (one segment's, as in Kafka) that the connection sends with
//! sendfile ([`crate::response`]). Ranges below [`INLINE_BELOW`] bytes are
//! read and copied instead, where a system call per partition would cost
//! more than the copy.

use super::{blocking, RequestContext};
use crate::response::Placeholders;
use crate::server::BrokerContext;
use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, ProducerId, TopicName};
use std::sync::Arc;
use std::time::{Duration, Instant};
use strom_log::LogError;
use uuid::Uuid;

/// File ranges smaller than this are copied into the response.
const INLINE_BELOW: u64 = 16 * 1024;

/// The first Fetch version with flexible (compact) encodings.
pub const FIRST_FLEXIBLE_VERSION: i16 = 12;

/// What one pass over the partitions found.
struct Pass {
    responses: Vec<FetchableTopicResponse>,
    /// Bytes of records in the response.
    bytes: usize,
    /// Some partition had an error.
    errors: bool,
    /// The file ranges the response's records stand for.
    files: Placeholders,
    /// Per topic with records: name, bytes and offsets returned.
    fetched: Vec<(String, u64, u64)>,
}

#[derive(Clone)]
struct PartitionFetch {
    index: i32,
    fetch_offset: i64,
    partition_max_bytes: i32,
}

#[derive(Clone)]
struct TopicFetch {
    name: TopicName,
    id: Uuid,
    partitions: Vec<PartitionFetch>,
}

/// Answers a Fetch; the response's records are placeholders for the
/// returned file ranges (see [`crate::response::Response::splice`]).
pub async fn handle(
    ctx: &RequestContext<'_>,
    request: FetchRequest,
) -> (FetchResponse, Placeholders) {
    let b = ctx.broker;
    let read_committed = request.isolation_level == 1;
    let topics: Vec<TopicFetch> = request
        .topics
        .into_iter()
        .map(|t| TopicFetch {
            name: t.topic,
            id: t.topic_id,
            partitions: t
                .partitions
                .into_iter()
                .map(|p| PartitionFetch {
                    index: p.partition,
                    fetch_offset: p.fetch_offset,
                    partition_max_bytes: p.partition_max_bytes,
                })
                .collect(),
        })
        .collect();
    // The broker's `fetch.max.bytes` caps what a request may ask for.
    let max_bytes = (request.max_bytes.max(0) as usize).min(b.config.fetch_max_bytes);
    let min_bytes = request.min_bytes.max(0) as usize;
    let deadline = Instant::now() + Duration::from_millis(request.max_wait_ms.max(0) as u64);
    let mut shutdown = b.shutdown.clone();
    loop {
        // Register for wake-ups before reading, so no append is missed between.
        let appended = b.appended.notified();
        tokio::pin!(appended);
        appended.as_mut().enable();
        let pass = {
            let b = b.clone();
            let topics = topics.clone();
            blocking(move || read_all(&b, &topics, max_bytes, read_committed)).await
        };
        if pass.bytes >= min_bytes
            || topics.is_empty()
            || pass.errors
            || Instant::now() >= deadline
            || *shutdown.borrow()
        {
            for (topic, bytes, offsets) in &pass.fetched {
                b.metrics.fetched(topic, *bytes, *offsets);
            }
            let response = FetchResponse::default()
                .with_responses(pass.responses)
                .with_session_id(0);
            return (response, pass.files);
        }
        tokio::select! {
            _ = appended => {}
            _ = tokio::time::sleep_until(deadline.into()) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// One pass over every requested partition.
fn read_all(
    b: &Arc<BrokerContext>,
    topics: &[TopicFetch],
    max_bytes: usize,
    read_committed: bool,
) -> Pass {
    let mut total = 0usize;
    let mut errors = false;
    let mut files = Placeholders::default();
    let mut fetched = Vec::new();
    let mut responses = Vec::with_capacity(topics.len());
    for t in topics {
        let topic = super::metadata::find_topic(b, t.name.as_str(), t.id);
        let (mut topic_bytes, mut topic_offsets) = (0u64, 0u64);
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let mut data = PartitionData::default()
                .with_partition_index(p.index)
                .with_high_watermark(-1)
                .with_last_stable_offset(-1)
                .with_log_start_offset(-1)
                .with_preferred_read_replica(BrokerId(-1))
                .with_aborted_transactions(read_committed.then(Vec::new))
                .with_records(Some(Bytes::new()));
            let partition = match &topic {
                Ok(topic) => usize::try_from(p.index)
                    .ok()
                    .and_then(|i| topic.partitions.get(i))
                    .cloned(),
                Err(_) => None,
            };
            let Some(partition) = partition else {
                let code = match &topic {
                    Err(code) => *code,
                    Ok(_) => ResponseError::UnknownTopicOrPartition,
                };
                errors = true;
                partitions.push(data.with_error_code(code.code()));
                continue;
            };
            let log = match partition.log() {
                Ok(log) => log,
                Err(e) => {
                    errors = true;
                    partitions.push(data.with_error_code(e.code.code()));
                    continue;
                }
            };
            let limit =
                (p.partition_max_bytes.max(0) as usize).min(max_bytes.saturating_sub(total));
            // read_committed stops at the last stable offset and lists the
            // aborted transactions in the range, for the client to skip.
            let last_stable = log.last_stable_offset();
            let upper = read_committed.then_some(last_stable);
            match log.read_slice(p.fetch_offset, limit, upper) {
                Ok(read) => {
                    if read_committed {
                        let aborted = log
                            .aborted_transactions(p.fetch_offset, last_stable)
                            .into_iter()
                            .map(|a| {
                                AbortedTransaction::default()
                                    .with_producer_id(ProducerId(a.producer_id))
                                    .with_first_offset(a.first_offset)
                            })
                            .collect();
                        data = data.with_aborted_transactions(Some(aborted));
                    }
                    // Only the first non-empty partition may exceed the limits (KIP-74).
                    let slice = read
                        .slice
                        .filter(|s| total == 0 || s.len() as usize <= limit);
                    let records = match slice {
                        None => Ok(Bytes::new()),
                        Some(slice) => {
                            total += slice.len() as usize;
                            topic_bytes += slice.len();
                            topic_offsets += (slice.next_offset() - p.fetch_offset).max(0) as u64;
                            if slice.len() < INLINE_BELOW || slice.file().is_none() {
                                slice.read()
                            } else {
                                Ok(files.add(slice))
                            }
                        }
                    };
                    data = match records {
                        Ok(records) => data
                            .with_high_watermark(read.log_end_offset)
                            .with_last_stable_offset(last_stable)
                            .with_log_start_offset(read.log_start_offset)
                            .with_records(Some(records)),
                        Err(e) => {
                            tracing::error!(topic = %partition.topic, partition = p.index, error = %e, "read failed");
                            errors = true;
                            data.with_error_code(crate::error::log_error_code(&e).code())
                        }
                    };
                }
                Err(LogError::OffsetOutOfRange {
                    log_start, log_end, ..
                }) => {
                    errors = true;
                    data = data
                        .with_error_code(ResponseError::OffsetOutOfRange.code())
                        .with_high_watermark(log_end)
                        .with_last_stable_offset(log_end)
                        .with_log_start_offset(log_start);
                }
                Err(e) => {
                    tracing::error!(topic = %partition.topic, partition = p.index, error = %e, "read failed");
                    errors = true;
                    data = data.with_error_code(crate::error::log_error_code(&e).code());
                }
            }
            partitions.push(data);
        }
        if topic_bytes > 0 {
            if let Ok(topic) = &topic {
                fetched.push((topic.name.to_string(), topic_bytes, topic_offsets));
            }
        }
        responses.push(
            FetchableTopicResponse::default()
                .with_topic(t.name.clone())
                .with_topic_id(t.id)
                .with_partitions(partitions),
        );
    }
    Pass {
        responses,
        bytes: total,
        errors,
        files,
        fetched,
    }
}
