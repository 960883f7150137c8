//! InitProducerId for idempotent producers: a fresh producer id with epoch 0
//! (also when an idempotent producer asks to bump its epoch, KIP-360, as
//! Kafka does for producers without a transactional id). Transactional ids
//! go to `txn.rs`.

use super::{blocking, RequestContext};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: InitProducerIdRequest,
) -> InitProducerIdResponse {
    if request
        .transactional_id
        .as_ref()
        .is_some_and(|id| id.is_empty())
    {
        return InitProducerIdResponse::default()
            .with_error_code(ResponseError::InvalidRequest.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
    }
    let b = ctx.broker.clone();
    match blocking(move || b.topics.allocate_producer_id()).await {
        Ok(id) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Err(e) => InitProducerIdResponse::default()
            .with_error_code(e.code.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    }
}
