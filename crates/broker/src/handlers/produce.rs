//! Produce: validate and append record batches, fsync first when the
//! topic's flush policy is `always`, then answer with the base offsets.

use super::{blocking, str_bytes, RequestContext};
use crate::connection::ConnectionError;
use crate::error::ApiError;
use crate::topics::{validate_topic_name, Topic};
use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use std::sync::Arc;
use strom_log::FlushPolicy;

struct PartitionWork {
    topic_slot: usize,
    index: i32,
    records: Option<Bytes>,
    topic: Result<Arc<Topic>, ApiError>,
}

struct Appended {
    /// For the metrics: the topic, bytes and records appended.
    stats: (Arc<Topic>, usize, i64),
    base_offset: i64,
    log_append_time: i64,
    log_start_offset: i64,
}

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: ProduceRequest,
) -> Result<Option<ProduceResponse>, ConnectionError> {
    let b = ctx.broker;
    let acks = request.acks;
    let mut responses: Vec<TopicProduceResponse> = Vec::with_capacity(request.topic_data.len());
    let mut work = Vec::new();
    for topic_data in request.topic_data {
        let name = topic_data.name.as_str().to_string();
        let topic = resolve_topic(ctx, &name, topic_data.topic_id).await;
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic_data.name.clone())
                .with_topic_id(topic_data.topic_id),
        );
        for partition in topic_data.partition_data {
            work.push(PartitionWork {
                topic_slot: responses.len() - 1,
                index: partition.index,
                records: partition.records,
                topic: topic.clone(),
            });
        }
    }
    let valid_acks = matches!(acks, -1..=1);
    let transactional_id = request
        .transactional_id
        .as_ref()
        .map(|t| t.as_str().to_string());
    let txn_broker = b.clone();
    let results: Vec<(usize, i32, Result<Appended, ApiError>)> = blocking(move || {
        let mut results = Vec::with_capacity(work.len());
        let mut to_sync = Vec::new();
        for item in work {
            let position = results.len();
            let result = if !valid_acks {
                Err(ApiError::new(ResponseError::InvalidRequiredAcks, format!("acks must be -1, 0 or 1, not {acks}")))
            } else if let Err(e) = verify_transactional(&txn_broker, transactional_id.as_deref(), &item) {
                Err(e)
            } else {
                append(&item, position, &mut to_sync)
            };
            results.push((item.topic_slot, item.index, result));
        }
        // Group commit: one fsync per partition covers every batch of this
        // request, and concurrent requests share it inside the log.
        for (partition, end, positions) in to_sync {
            let synced = partition.log().and_then(|log| log.flush_up_to(end).map_err(ApiError::from));
            if let Err(e) = synced {
                tracing::error!(topic = %partition.topic, partition = partition.index, error = %e, "fsync failed");
                // Not durable, so not acknowledged.
                for position in positions {
                    results[position].2 = Err(e.clone());
                }
            }
        }
        results
    })
    .await;
    if results.iter().any(|(_, _, r)| r.is_ok()) {
        b.appended.notify_waiters();
    }
    let mut failed = 0;
    for (slot, index, result) in results {
        let response = PartitionProduceResponse::default().with_index(index);
        let response = match result {
            Ok(a) => {
                b.metrics.produced(&a.stats.0.name, a.stats.1, a.stats.2);
                response
                    .with_base_offset(a.base_offset)
                    .with_log_append_time_ms(a.log_append_time)
                    .with_log_start_offset(a.log_start_offset)
            }
            Err(e) => {
                failed += 1;
                tracing::info!(peer = %ctx.peer, topic = %responses[slot].name.as_str(), partition = index, error = %e, "produce rejected");
                response
                    .with_error_code(e.code.code())
                    .with_error_message(Some(str_bytes(e.message)))
                    .with_base_offset(-1)
                    .with_log_append_time_ms(-1)
                    .with_log_start_offset(-1)
            }
        };
        responses[slot].partition_responses.push(response);
    }
    if acks == 0 {
        // Kafka closes the connection when an acks=0 produce fails: the only
        // signal such a producer can get.
        if failed > 0 {
            return Err(ConnectionError::Malformed(format!(
                "{failed} partition(s) of an acks=0 produce failed"
            )));
        }
        return Ok(None);
    }
    Ok(Some(ProduceResponse::default().with_responses(responses)))
}

/// KIP-890 part 1: transactional data is accepted only for a partition the
/// producer's open transaction contains, so a late request cannot land in
/// the next transaction. Transactional batches need a transactional id.
fn verify_transactional(
    broker: &crate::server::BrokerContext,
    transactional_id: Option<&str>,
    item: &PartitionWork,
) -> Result<(), ApiError> {
    let Some(records) = item.records.as_ref() else {
        return Ok(());
    };
    let Ok(header) = strom_log::batch::BatchHeader::parse(records) else {
        return Ok(());
    };
    if !header.is_transactional() {
        return Ok(());
    }
    let Some(transactional_id) = transactional_id else {
        return Err(ApiError::new(
            ResponseError::InvalidTxnState,
            "transactional batch without a transactional id",
        ));
    };
    let Ok(topic) = item.topic.as_ref() else {
        return Ok(());
    };
    let partition = (topic.name.clone(), item.index);
    broker
        .txns
        .read(|c| {
            c.verify_partition(
                transactional_id,
                header.producer_id,
                header.producer_epoch,
                &partition,
            )
        })
        .map_err(|code| {
            ApiError::new(
                code,
                format!(
                    "{}-{} is not part of the producer's open transaction",
                    partition.0, partition.1
                ),
            )
        })
}

async fn resolve_topic(
    ctx: &RequestContext<'_>,
    name: &str,
    id: uuid::Uuid,
) -> Result<Arc<Topic>, ApiError> {
    let b = ctx.broker;
    if !id.is_nil() {
        return b.topics.get_by_id(id).ok_or_else(|| {
            ApiError::new(
                ResponseError::UnknownTopicId,
                format!("This server does not host topic id {id}"),
            )
        });
    }
    if let Some(topic) = b.topics.get(name) {
        return Ok(topic);
    }
    validate_topic_name(name)?;
    if !b.config.auto_create_topics_enable {
        return Err(ApiError::new(
            ResponseError::UnknownTopicOrPartition,
            format!("This server does not host this topic: {name}"),
        ));
    }
    super::metadata::auto_create(ctx.broker, name)
        .await
        .map_err(|code| ApiError::new(code, format!("could not create topic {name}")))
}

fn append(
    item: &PartitionWork,
    position: usize,
    to_sync: &mut Vec<(Arc<crate::topics::Partition>, i64, Vec<usize>)>,
) -> Result<Appended, ApiError> {
    let topic = item.topic.as_ref().map_err(Clone::clone)?;
    let partition = usize::try_from(item.index)
        .ok()
        .and_then(|i| topic.partitions.get(i))
        .ok_or_else(|| {
            ApiError::new(
                ResponseError::UnknownTopicOrPartition,
                format!("{} has no partition {}", topic.name, item.index),
            )
        })?;
    let records = match &item.records {
        Some(records) if !records.is_empty() => records,
        _ => {
            return Err(ApiError::new(
                ResponseError::InvalidRecord,
                "produce request carries no records",
            ))
        }
    };
    let log = partition.log()?;
    let config = log.config();
    if config.cleanup_policy.compact {
        check_keys(records, config.max_message_bytes, &topic.name, item.index)?;
    }
    let info = log.append(records, crate::metadata::now_ms())?;
    if config.flush == FlushPolicy::Always {
        match to_sync
            .iter_mut()
            .find(|(p, _, _)| Arc::ptr_eq(p, partition))
        {
            Some((_, end, positions)) => {
                *end = (*end).max(info.last_offset + 1);
                positions.push(position);
            }
            None => to_sync.push((partition.clone(), info.last_offset + 1, vec![position])),
        }
    }
    let (bytes_appended, records_appended) = match info.duplicate {
        true => (0, 0),
        false => (records.len(), info.record_count),
    };
    Ok(Appended {
        stats: (topic.clone(), bytes_appended, records_appended),
        base_offset: info.base_offset,
        log_append_time: info.log_append_time,
        log_start_offset: info.log_start_offset,
    })
}

/// A compacted topic keeps the latest record per key, so Kafka refuses
/// records without a key there. Seeing keys takes a record-level decode
/// (decompressing), which only compacted topics pay for; the append path of
/// other topics reads batch headers only.
fn check_keys(
    records: &Bytes,
    max_message_bytes: usize,
    topic: &str,
    partition: i32,
) -> Result<(), ApiError> {
    let too_large = strom_log::batch::batches(records)
        .any(|b| b.map_or(true, |b| b.bytes.len() > max_message_bytes));
    if too_large {
        // Malformed or oversized: the append refuses it with the right code.
        return Ok(());
    }
    let mut keyless = false;
    for found in strom_log::batch::batches(records) {
        let Ok(found) = found else {
            return Ok(()); // malformed: the append refuses it
        };
        // Strom's own decoder: bounded decompression, nothing reserved by
        // counts from the wire (kafka-protocol's RecordBatchDecoder
        // decompresses without a bound and reserves a map per record for a
        // claimed header count).
        let check = strom_log::records::check_keys(found.bytes).map_err(|e| {
            ApiError::new(
                ResponseError::CorruptMessage,
                format!("records for {topic}-{partition} could not be decoded: {e}"),
            )
        })?;
        keyless |= check.keyless > 0;
    }
    if keyless {
        return Err(ApiError::new(
            ResponseError::InvalidRecord,
            format!("Compacted topic cannot accept message without key in topic partition {topic}-{partition}."),
        ));
    }
    Ok(())
}
