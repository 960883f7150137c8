//! Fetch: whole stored batches from each requested partition, long-polling
//! (woken by appends) until `min_bytes` are available or `max_wait_ms` passes.

use super::{blocking, RequestContext};
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

pub async fn handle(ctx: &RequestContext<'_>, request: FetchRequest) -> FetchResponse {
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
        let (responses, bytes, errors) = {
            let b = b.clone();
            let topics = topics.clone();
            blocking(move || read_all(&b, &topics, max_bytes, read_committed)).await
        };
        if bytes >= min_bytes
            || topics.is_empty()
            || errors
            || Instant::now() >= deadline
            || *shutdown.borrow()
        {
            let response = FetchResponse::default()
                .with_responses(responses)
                .with_session_id(0);
            b.metrics.fetched(b, &response);
            return response;
        }
        tokio::select! {
            _ = appended => {}
            _ = tokio::time::sleep_until(deadline.into()) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// One pass over every requested partition. Returns the responses, the
/// bytes of records in them, and whether any partition had an error.
fn read_all(
    b: &Arc<BrokerContext>,
    topics: &[TopicFetch],
    max_bytes: usize,
    read_committed: bool,
) -> (Vec<FetchableTopicResponse>, usize, bool) {
    let mut total = 0usize;
    let mut errors = false;
    let mut responses = Vec::with_capacity(topics.len());
    for t in topics {
        let topic = super::metadata::find_topic(b, t.name.as_str(), t.id);
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
            match log.read(p.fetch_offset, limit, upper) {
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
                    let mut records = read.records;
                    // Only the first non-empty partition may exceed the limits (KIP-74).
                    if total > 0 && records.len() > limit {
                        records = Bytes::new();
                    }
                    total += records.len();
                    data = data
                        .with_high_watermark(read.log_end_offset)
                        .with_last_stable_offset(last_stable)
                        .with_log_start_offset(read.log_start_offset)
                        .with_records(Some(records));
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
        responses.push(
            FetchableTopicResponse::default()
                .with_topic(t.name.clone())
                .with_topic_id(t.id)
                .with_partitions(partitions),
        );
    }
    (responses, total, errors)
}
