//! Transactions: InitProducerId with a transactional id, AddPartitionsToTxn,
//! AddOffsetsToTxn, EndTxn, TxnOffsetCommit. Decisions are the transaction
//! coordinator's (`strom_coordinator::txn`); markers are written by
//! `crate::transactions`.

use super::{blocking, RequestContext};
use crate::error::ApiError;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::*;
use strom_coordinator::txn::ProducerIdAndEpoch;

fn code(result: &Result<(), ResponseError>) -> i16 {
    result.err().map_or(0, |e| e.code())
}

pub async fn init_producer_id(
    ctx: &RequestContext<'_>,
    request: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let b = ctx.broker.clone();
    let transactional_id = request
        .transactional_id
        .as_ref()
        .map(|t| t.as_str().to_string())
        .unwrap_or_default();
    let expected = (request.producer_id.0 >= 0).then_some(ProducerIdAndEpoch {
        producer_id: request.producer_id.0,
        producer_epoch: request.producer_epoch,
    });
    let timeout = request.transaction_timeout_ms;
    let result = blocking(move || -> Result<ProducerIdAndEpoch, ApiError> {
        b.txns.txn_topic(&b.topics)?;
        // An open transaction is aborted first (markers written), then the
        // epoch is bumped: one retry covers it.
        let mut attempt = 0;
        loop {
            let topics = &b.topics;
            let result = b.txns.run(&b, |c, now| {
                c.init_producer_id(now, &transactional_id, timeout, expected, || {
                    topics.allocate_producer_id().map_err(|e| e.code)
                })
            })?;
            match result {
                Err(ResponseError::ConcurrentTransactions) if attempt == 0 => attempt += 1,
                Err(code) => return Err(ApiError::new(code, "InitProducerId refused")),
                Ok(ids) => return Ok(ids),
            }
        }
    })
    .await;
    match result {
        Ok(ids) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(ids.producer_id))
            .with_producer_epoch(ids.producer_epoch),
        Err(e) => InitProducerIdResponse::default()
            .with_error_code(e.code.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    }
}

pub async fn add_partitions(
    ctx: &RequestContext<'_>,
    request: AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    let b = ctx.broker.clone();
    let version = ctx.version;
    // v0-3 carry one transaction at the top level; v4+ a batch of them.
    let transactions: Vec<(
        TransactionalId,
        i64,
        i16,
        bool,
        Vec<add_partitions_to_txn_request::AddPartitionsToTxnTopic>,
    )> = if version < 4 {
        vec![(
            request.v3_and_below_transactional_id.clone(),
            request.v3_and_below_producer_id.0,
            request.v3_and_below_producer_epoch,
            false,
            request.v3_and_below_topics.clone(),
        )]
    } else {
        request
            .transactions
            .iter()
            .map(|t| {
                (
                    t.transactional_id.clone(),
                    t.producer_id.0,
                    t.producer_epoch,
                    t.verify_only,
                    t.topics.clone(),
                )
            })
            .collect()
    };
    let results = blocking(move || {
        transactions
            .into_iter()
            .map(|(txn_id, pid, epoch, verify_only, topics)| {
                let partitions: Vec<(String, i32)> = topics
                    .iter()
                    .flat_map(|t| {
                        t.partitions
                            .iter()
                            .map(move |p| (t.name.as_str().to_string(), *p))
                    })
                    .collect();
                let unknown: Vec<(String, i32)> = partitions
                    .iter()
                    .filter(|(t, p)| {
                        !b.topics
                            .get(t)
                            .is_some_and(|t| *p >= 0 && (*p as usize) < t.partitions.len())
                    })
                    .cloned()
                    .collect();
                let result: Result<(), ResponseError> = if !unknown.is_empty() {
                    Err(ResponseError::UnknownTopicOrPartition)
                } else if verify_only {
                    b.txns.read(|c| {
                        partitions
                            .iter()
                            .try_for_each(|p| c.verify_partition(txn_id.as_str(), pid, epoch, p))
                    })
                } else {
                    b.txns
                        .run(&b, |c, now| {
                            c.add_to_txn(now, txn_id.as_str(), pid, epoch, &partitions, None)
                        })
                        .map_err(|e| e.code)
                        .and_then(|r| r)
                };
                // Kafka answers OPERATION_NOT_ATTEMPTED for the valid
                // partitions of a request that fails on others.
                let per_partition = |t: &str, p: i32| match &result {
                    Err(ResponseError::UnknownTopicOrPartition)
                        if !unknown.contains(&(t.to_string(), p)) =>
                    {
                        ResponseError::OperationNotAttempted.code()
                    }
                    other => code(other),
                };
                let topic_results = topics
                    .iter()
                    .map(|t| {
                        AddPartitionsToTxnTopicResult::default()
                            .with_name(t.name.clone())
                            .with_results_by_partition(
                                t.partitions
                                    .iter()
                                    .map(|p| {
                                        AddPartitionsToTxnPartitionResult::default()
                                            .with_partition_index(*p)
                                            .with_partition_error_code(per_partition(
                                                t.name.as_str(),
                                                *p,
                                            ))
                                    })
                                    .collect(),
                            )
                    })
                    .collect::<Vec<_>>();
                (txn_id, topic_results)
            })
            .collect::<Vec<_>>()
    })
    .await;
    if version < 4 {
        let topics = results
            .into_iter()
            .next()
            .map(|(_, t)| t)
            .unwrap_or_default();
        return AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(topics);
    }
    AddPartitionsToTxnResponse::default().with_results_by_transaction(
        results
            .into_iter()
            .map(|(txn_id, topics)| {
                AddPartitionsToTxnResult::default()
                    .with_transactional_id(txn_id)
                    .with_topic_results(topics)
            })
            .collect(),
    )
}

pub async fn add_offsets(
    ctx: &RequestContext<'_>,
    request: AddOffsetsToTxnRequest,
) -> AddOffsetsToTxnResponse {
    let b = ctx.broker.clone();
    let result = blocking(move || {
        b.groups.offsets_topic(&b.topics)?;
        b.txns.run(&b, |c, now| {
            c.add_to_txn(
                now,
                request.transactional_id.as_str(),
                request.producer_id.0,
                request.producer_epoch,
                &[],
                Some(request.group_id.as_str()),
            )
        })
    })
    .await;
    let code = match result {
        Ok(r) => code(&r),
        Err(e) => e.code.code(),
    };
    AddOffsetsToTxnResponse::default().with_error_code(code)
}

pub async fn end_txn(ctx: &RequestContext<'_>, request: EndTxnRequest) -> EndTxnResponse {
    let b = ctx.broker.clone();
    let (pid, epoch) = (request.producer_id, request.producer_epoch);
    let result = blocking(move || {
        b.txns.run(&b, |c, now| {
            c.end_txn(
                now,
                request.transactional_id.as_str(),
                request.producer_id.0,
                request.producer_epoch,
                request.committed,
            )
        })
    })
    .await;
    let code = match result {
        Ok(r) => code(&r),
        Err(e) => {
            tracing::error!(error = %e, "ending transaction");
            e.code.code()
        }
    };
    EndTxnResponse::default()
        .with_error_code(code)
        .with_producer_id(pid)
        .with_producer_epoch(epoch)
}

pub async fn txn_offset_commit(
    ctx: &RequestContext<'_>,
    request: TxnOffsetCommitRequest,
) -> TxnOffsetCommitResponse {
    let b = ctx.broker.clone();
    let fallback = request.clone();
    let result = blocking(move || -> Result<TxnOffsetCommitResponse, ApiError> {
        // The group must be part of the producer's transaction (AddOffsetsToTxn).
        let in_txn = b.txns.read(|c| {
            c.get(request.transactional_id.as_str()).map(|m| {
                (
                    m.producer_id,
                    m.producer_epoch,
                    m.groups.contains(request.group_id.as_str()),
                )
            })
        });
        match in_txn {
            Some((pid, epoch, _))
                if pid != request.producer_id.0 || epoch != request.producer_epoch =>
            {
                return Err(ApiError::new(
                    ResponseError::ProducerFenced,
                    "stale producer",
                ));
            }
            Some((_, _, true)) => {}
            _ => {
                return Err(ApiError::new(
                    ResponseError::InvalidTxnState,
                    "group not added to the transaction",
                ))
            }
        }
        let topics = &b.topics;
        let (response, completions) = b.groups.run(topics, |c, now| {
            c.txn_commit_offsets(now, request, |t, p| {
                topics
                    .get(t)
                    .is_some_and(|t| p >= 0 && (p as usize) < t.partitions.len())
            })
        })?;
        b.groups.deliver(completions);
        response.ok_or_else(|| ApiError::new(ResponseError::UnknownServerError, "no response"))
    })
    .await;
    result.unwrap_or_else(|e| {
        let topics = fallback
            .topics
            .iter()
            .map(|t| {
                txn_offset_commit_response::TxnOffsetCommitResponseTopic::default().with_name(t.name.clone()).with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            txn_offset_commit_response::TxnOffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(e.code.code())
                        })
                        .collect(),
                )
            })
            .collect();
        TxnOffsetCommitResponse::default().with_topics(topics)
    })
}
