//! ListOffsets: earliest, latest, max timestamp, and the first offset at
//! or after a timestamp.

use super::{blocking, RequestContext};
use crate::error::ApiError;
use crate::server::BrokerContext;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use std::sync::Arc;

pub const LATEST: i64 = -1;
pub const EARLIEST: i64 = -2;
pub const MAX_TIMESTAMP: i64 = -3;
pub const EARLIEST_LOCAL: i64 = -4;
pub const LATEST_TIERED: i64 = -5;

pub async fn handle(ctx: &RequestContext<'_>, request: ListOffsetsRequest) -> ListOffsetsResponse {
    let b = ctx.broker.clone();
    // The leader epoch field exists from v4 on.
    let leader_epoch = if ctx.version >= 4 { 0 } else { -1 };
    let read_committed = request.isolation_level == 1;
    let topics = blocking(move || {
        request
            .topics
            .into_iter()
            .map(|t| {
                let topic = b.topics.get(t.name.as_str());
                let partitions = t
                    .partitions
                    .into_iter()
                    .map(|p| {
                        let response = ListOffsetsPartitionResponse::default()
                            .with_partition_index(p.partition_index)
                            .with_leader_epoch(leader_epoch);
                        let partition = topic.as_ref().and_then(|topic| {
                            usize::try_from(p.partition_index)
                                .ok()
                                .and_then(|i| topic.partitions.get(i))
                        });
                        let result = match partition {
                            None => Err(ApiError::new(
                                ResponseError::UnknownTopicOrPartition,
                                "unknown partition",
                            )),
                            Some(partition) => lookup(&b, partition, p.timestamp, read_committed),
                        };
                        match result {
                            // Nothing found: no leader epoch either, as in Kafka.
                            Ok((timestamp, -1)) => response
                                .with_timestamp(timestamp)
                                .with_offset(-1)
                                .with_leader_epoch(-1),
                            Ok((timestamp, offset)) => {
                                response.with_timestamp(timestamp).with_offset(offset)
                            }
                            Err(e) => response
                                .with_error_code(e.code.code())
                                .with_timestamp(-1)
                                .with_offset(-1),
                        }
                    })
                    .collect();
                ListOffsetsTopicResponse::default()
                    .with_name(t.name)
                    .with_partitions(partitions)
            })
            .collect()
    })
    .await;
    ListOffsetsResponse::default().with_topics(topics)
}

/// (timestamp, offset) for one partition; (-1, -1) when nothing matches.
fn lookup(
    _b: &Arc<BrokerContext>,
    partition: &crate::topics::Partition,
    timestamp: i64,
    read_committed: bool,
) -> Result<(i64, i64), ApiError> {
    let log = partition.log()?;
    match timestamp {
        // A read_committed consumer's "latest" is the last stable offset.
        LATEST if read_committed => Ok((-1, log.last_stable_offset())),
        LATEST => Ok((-1, log.log_end_offset())),
        EARLIEST | EARLIEST_LOCAL => Ok((-1, log.log_start_offset())),
        LATEST_TIERED => Ok((-1, -1)),
        // The offset of the first record that carries the largest
        // timestamp (KIP-734; Kafka 3.8+ answers with the record, not with
        // the last offset of its batch): the first record at or after it.
        MAX_TIMESTAMP => match log.max_timestamp() {
            Some((ts, _)) => lookup(_b, partition, ts, read_committed),
            None => Ok((-1, -1)),
        },
        ts if ts < 0 => Err(ApiError::new(
            ResponseError::InvalidRequest,
            format!("unknown special timestamp {ts}"),
        )),
        ts => {
            let Some(batch) = log.batch_for_timestamp(ts)? else {
                return Ok((-1, -1));
            };
            // Strom's bounded decoder: the batch came from a producer.
            let records = strom_log::records::offsets_and_timestamps(&batch).map_err(|e| {
                ApiError::new(
                    ResponseError::CorruptMessage,
                    format!("decoding stored batch: {e}"),
                )
            })?;
            let start = log.log_start_offset();
            let header = strom_log::batch::BatchHeader::parse(&batch)?;
            let log_append = header.timestamp_type() == strom_log::TimestampType::LogAppendTime;
            let found = records
                .iter()
                .find(|(offset, record_ts)| *offset >= start && (log_append || *record_ts >= ts));
            Ok(match found {
                Some((offset, timestamp)) => (*timestamp, *offset),
                None => (-1, -1),
            })
        }
    }
}
