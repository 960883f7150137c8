//! DeleteRecords: advance each partition's log start offset.

use super::{blocking, RequestContext};
use crate::error::ApiError;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let b = ctx.broker.clone();
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
                        let result = DeleteRecordsPartitionResult::default()
                            .with_partition_index(p.partition_index);
                        let outcome = topic
                            .as_ref()
                            .and_then(|topic| {
                                usize::try_from(p.partition_index)
                                    .ok()
                                    .and_then(|i| topic.partitions.get(i))
                            })
                            .ok_or_else(|| {
                                ApiError::new(
                                    ResponseError::UnknownTopicOrPartition,
                                    "unknown partition",
                                )
                            })
                            .and_then(|partition| {
                                let log = partition.log()?;
                                // -1 means "up to the high watermark".
                                let offset = if p.offset == -1 {
                                    log.log_end_offset()
                                } else {
                                    p.offset
                                };
                                Ok(log.delete_records_before(offset)?)
                            });
                        match outcome {
                            Ok(low_watermark) => result.with_low_watermark(low_watermark),
                            Err(e) => result.with_error_code(e.code.code()).with_low_watermark(-1),
                        }
                    })
                    .collect();
                DeleteRecordsTopicResult::default()
                    .with_name(t.name)
                    .with_partitions(partitions)
            })
            .collect()
    })
    .await;
    DeleteRecordsResponse::default().with_topics(topics)
}
