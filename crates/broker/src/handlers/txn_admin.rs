//! The read-only transaction APIs for operators: DescribeTransactions and
//! ListTransactions (the transaction coordinator's view) and
//! DescribeProducers (each partition's producer state). They change
//! nothing, so they only read under the coordinator's lock or the log's.

use super::{blocking, str_bytes, RequestContext};
use crate::error::ApiError;
use crate::metadata::now_ms;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::list_transactions_response::TransactionState as ListedTransaction;
use kafka_protocol::messages::*;
use std::collections::{BTreeMap, BTreeSet};
use strom_coordinator::txn::{TransactionMetadata, TxnState};

const ALL_STATES: [TxnState; 6] = [
    TxnState::Empty,
    TxnState::Ongoing,
    TxnState::PrepareCommit,
    TxnState::PrepareAbort,
    TxnState::CompleteCommit,
    TxnState::CompleteAbort,
];

/// Kafka state names Strom never reaches: a filter naming them is valid and
/// matches nothing, rather than being reported as unknown.
const KAFKA_ONLY_STATES: [&str; 2] = ["Dead", "PrepareEpochFence"];

pub fn describe_transactions(
    ctx: &RequestContext<'_>,
    request: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let states = ctx.broker.txns.read(|c| {
        request
            .transactional_ids
            .into_iter()
            .map(|id| match c.get(id.as_str()) {
                Some(meta) => described(meta).with_transactional_id(id),
                None => TransactionState::default()
                    .with_transactional_id(id)
                    .with_error_code(ResponseError::TransactionalIdNotFound.code())
                    .with_transaction_start_time_ms(-1)
                    .with_producer_id(ProducerId(-1))
                    .with_producer_epoch(-1),
            })
            .collect()
    });
    DescribeTransactionsResponse::default().with_transaction_states(states)
}

fn described(meta: &TransactionMetadata) -> TransactionState {
    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in &meta.partitions {
        topics.entry(topic).or_default().push(*partition);
    }
    TransactionState::default()
        .with_transaction_state(str_bytes(meta.state.name()))
        .with_transaction_timeout_ms(meta.timeout_ms)
        .with_transaction_start_time_ms(meta.start_timestamp.max(-1))
        .with_producer_id(ProducerId(meta.producer_id))
        .with_producer_epoch(meta.producer_epoch)
        .with_topics(
            topics
                .into_iter()
                .map(|(topic, partitions)| {
                    TopicData::default()
                        .with_topic(TopicName(str_bytes(topic)))
                        .with_partitions(partitions)
                })
                .collect(),
        )
}

/// v0: state and producer id filters; v1 adds `duration_filter`, which keeps
/// transactions whose current one started more than that many ms ago (one
/// that never started has no duration and is left out).
pub fn list_transactions(
    ctx: &RequestContext<'_>,
    request: ListTransactionsRequest,
) -> ListTransactionsResponse {
    let mut states = Vec::new();
    let mut unknown = Vec::new();
    for name in &request.state_filters {
        match ALL_STATES.iter().find(|s| s.name() == name.as_str()) {
            Some(state) => states.push(*state),
            None if KAFKA_ONLY_STATES.contains(&name.as_str()) => {}
            None => unknown.push(name.clone()),
        }
    }
    let producer_ids: BTreeSet<i64> = request.producer_id_filters.iter().map(|p| p.0).collect();
    let duration =
        (ctx.version >= 1 && request.duration_filter >= 0).then_some(request.duration_filter);
    let now = now_ms();
    let listed = ctx.broker.txns.read(|c| {
        c.transactions()
            .filter(|t| request.state_filters.is_empty() || states.contains(&t.state))
            .filter(|t| producer_ids.is_empty() || producer_ids.contains(&t.producer_id))
            .filter(|t| {
                duration.is_none_or(|d| t.start_timestamp >= 0 && now - t.start_timestamp > d)
            })
            .map(|t| {
                ListedTransaction::default()
                    .with_transactional_id(TransactionalId(str_bytes(t.transactional_id.as_str())))
                    .with_producer_id(ProducerId(t.producer_id))
                    .with_transaction_state(str_bytes(t.state.name()))
            })
            .collect()
    });
    ListTransactionsResponse::default()
        .with_unknown_state_filters(unknown)
        .with_transaction_states(listed)
}

pub async fn describe_producers(
    ctx: &RequestContext<'_>,
    request: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let b = ctx.broker.clone();
    let topics = blocking(move || {
        request
            .topics
            .into_iter()
            .map(|t| {
                let topic = b.topics.get(t.name.as_str());
                let partitions = t
                    .partition_indexes
                    .into_iter()
                    .map(|index| {
                        let result = PartitionResponse::default().with_partition_index(index);
                        let producers = topic
                            .as_ref()
                            .and_then(|topic| {
                                usize::try_from(index)
                                    .ok()
                                    .and_then(|i| topic.partitions.get(i))
                            })
                            .ok_or_else(|| {
                                ApiError::new(
                                    ResponseError::UnknownTopicOrPartition,
                                    "unknown partition",
                                )
                            })
                            .and_then(|partition| Ok(partition.log()?.producer_states()));
                        match producers {
                            Ok(producers) => result.with_active_producers(
                                producers.into_iter().map(producer_state).collect(),
                            ),
                            Err(e) => result
                                .with_error_code(e.code.code())
                                .with_error_message(Some(str_bytes(e.message))),
                        }
                    })
                    .collect();
                TopicResponse::default()
                    .with_name(t.name)
                    .with_partitions(partitions)
            })
            .collect()
    })
    .await;
    DescribeProducersResponse::default().with_topics(topics)
}

fn producer_state(
    (producer_id, entry): (i64, strom_log::producer_state::ProducerEntry),
) -> ProducerState {
    ProducerState::default()
        .with_producer_id(ProducerId(producer_id))
        .with_producer_epoch(entry.epoch.into())
        .with_last_sequence(entry.batches.back().map_or(-1, |b| b.last_seq))
        .with_last_timestamp(entry.last_timestamp)
        // Markers are written by this node's only coordinator, which has no epoch.
        .with_coordinator_epoch(-1)
        .with_current_txn_start_offset(entry.current_txn_first_offset.unwrap_or(-1))
}
