//! `strom txn list|describe` and `strom producers`: what the transaction
//! coordinator and the partitions know about transactions and producers.
//!
//! librdkafka has no API for ListTransactions, DescribeTransactions or
//! DescribeProducers, so these go over [`super::wire`] at fixed versions
//! (ListTransactions v0, DescribeTransactions v0, DescribeProducers v0,
//! Metadata v4), which Strom and Kafka 3.0+ both serve.

use super::common::{print_json, print_stdout, render_table, ClientArgs};
use super::wire;
use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use serde::Serialize;

/// List and describe transactions.
#[derive(Debug, Args)]
pub struct TxnArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub command: TxnCommand,
}

#[derive(Debug, Subcommand)]
pub enum TxnCommand {
    /// List transactional ids with their producer id and state.
    List {
        /// Only transactions in this state (Empty, Ongoing, PrepareCommit,
        /// PrepareAbort, CompleteCommit, CompleteAbort); repeatable.
        #[arg(long, value_name = "STATE")]
        state: Vec<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show a transaction's state, producer, timeout and partitions.
    Describe {
        /// Transactional id.
        transactional_id: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Show the active producers of a topic's partitions (DescribeProducers).
#[derive(Debug, Args)]
pub struct ProducersArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Topic.
    pub topic: String,
    /// Only this partition (all partitions of the topic otherwise).
    #[arg(long, value_name = "N")]
    pub partition: Option<i32>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct ListedTxn {
    transactional_id: String,
    producer_id: i64,
    state: String,
}

#[derive(Debug, Serialize)]
struct DescribedTxn {
    transactional_id: String,
    state: String,
    producer_id: i64,
    producer_epoch: i16,
    timeout_ms: i32,
    /// Milliseconds since the epoch; -1 when no transaction has started.
    start_time_ms: i64,
    partitions: Vec<TxnPartition>,
}

#[derive(Debug, Serialize)]
struct TxnPartition {
    topic: String,
    partition: i32,
}

#[derive(Debug, Serialize)]
struct ActiveProducer {
    topic: String,
    partition: i32,
    producer_id: i64,
    producer_epoch: i32,
    last_sequence: i32,
    last_timestamp: i64,
    coordinator_epoch: i32,
    /// -1 when the producer has no open transaction in this partition.
    current_txn_start_offset: i64,
}

pub async fn run(args: TxnArgs) -> anyhow::Result<()> {
    match args.command {
        TxnCommand::List { state, json } => list(&args.client, state, json).await,
        TxnCommand::Describe {
            transactional_id,
            json,
        } => describe(&args.client, &transactional_id, json).await,
    }
}

fn check(code: i16, what: impl FnOnce() -> String) -> anyhow::Result<()> {
    if code == 0 {
        return Ok(());
    }
    match ResponseError::try_from_code(code) {
        Some(error) => bail!("{}: {error:?} ({error})", what()),
        None => bail!("{}: error code {code}", what()),
    }
}

async fn list(client: &ClientArgs, states: Vec<String>, json: bool) -> anyhow::Result<()> {
    let request = ListTransactionsRequest::default()
        .with_state_filters(states.into_iter().map(StrBytes::from_string).collect());
    let response = wire::request(client, 0, &request).await?;
    check(response.error_code, || "ListTransactions".into())?;
    if !response.unknown_state_filters.is_empty() {
        let unknown: Vec<&str> = response
            .unknown_state_filters
            .iter()
            .map(|s| s.as_str())
            .collect();
        bail!("unknown transaction state(s): {}", unknown.join(", "));
    }
    let mut listed: Vec<ListedTxn> = response
        .transaction_states
        .into_iter()
        .map(|t| ListedTxn {
            transactional_id: t.transactional_id.to_string(),
            producer_id: t.producer_id.0,
            state: t.transaction_state.to_string(),
        })
        .collect();
    listed.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
    if json {
        return print_json(&listed);
    }
    let rows: Vec<Vec<String>> = listed
        .iter()
        .map(|t| {
            vec![
                t.transactional_id.clone(),
                t.producer_id.to_string(),
                t.state.clone(),
            ]
        })
        .collect();
    print_stdout(&render_table(
        &["TRANSACTIONAL ID", "PRODUCER ID", "STATE"],
        &rows,
    ))
}

async fn describe(client: &ClientArgs, transactional_id: &str, json: bool) -> anyhow::Result<()> {
    let request =
        DescribeTransactionsRequest::default().with_transactional_ids(vec![TransactionalId(
            StrBytes::from_string(transactional_id.to_string()),
        )]);
    let response = wire::request(client, 0, &request).await?;
    let state = response
        .transaction_states
        .into_iter()
        .next()
        .context("DescribeTransactions answered with no transaction")?;
    check(state.error_code, || {
        format!("transactional id `{transactional_id}`")
    })?;
    let described = DescribedTxn {
        transactional_id: state.transactional_id.to_string(),
        state: state.transaction_state.to_string(),
        producer_id: state.producer_id.0,
        producer_epoch: state.producer_epoch,
        timeout_ms: state.transaction_timeout_ms,
        start_time_ms: state.transaction_start_time_ms,
        partitions: state
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(|p| TxnPartition {
                    topic: t.topic.to_string(),
                    partition: *p,
                })
            })
            .collect(),
    };
    if json {
        return print_json(&described);
    }
    let partitions = described
        .partitions
        .iter()
        .map(|p| format!("{}-{}", p.topic, p.partition))
        .collect::<Vec<_>>()
        .join(", ");
    let rows = vec![
        vec![
            "transactional id".into(),
            described.transactional_id.clone(),
        ],
        vec!["state".into(), described.state.clone()],
        vec!["producer id".into(), described.producer_id.to_string()],
        vec![
            "producer epoch".into(),
            described.producer_epoch.to_string(),
        ],
        vec!["timeout ms".into(), described.timeout_ms.to_string()],
        vec!["start time ms".into(), described.start_time_ms.to_string()],
        vec!["partitions".into(), partitions],
    ];
    print_stdout(&render_table(&["FIELD", "VALUE"], &rows))
}

pub async fn producers(args: ProducersArgs) -> anyhow::Result<()> {
    let client = &args.client;
    let partitions = match args.partition {
        Some(partition) => vec![partition],
        None => partitions_of(client, &args.topic).await?,
    };
    let request = DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
        .with_name(TopicName(StrBytes::from_string(args.topic.clone())))
        .with_partition_indexes(partitions)]);
    let response = wire::request(client, 0, &request).await?;
    let mut producers = Vec::new();
    for topic in response.topics {
        for partition in topic.partitions {
            check(partition.error_code, || {
                format!(
                    "partition {}-{}",
                    topic.name.as_str(),
                    partition.partition_index
                )
            })?;
            producers.extend(
                partition
                    .active_producers
                    .into_iter()
                    .map(|p| ActiveProducer {
                        topic: topic.name.to_string(),
                        partition: partition.partition_index,
                        producer_id: p.producer_id.0,
                        producer_epoch: p.producer_epoch,
                        last_sequence: p.last_sequence,
                        last_timestamp: p.last_timestamp,
                        coordinator_epoch: p.coordinator_epoch,
                        current_txn_start_offset: p.current_txn_start_offset,
                    }),
            );
        }
    }
    producers.sort_by_key(|p| (p.partition, p.producer_id));
    if args.json {
        return print_json(&producers);
    }
    let rows: Vec<Vec<String>> = producers
        .iter()
        .map(|p| {
            vec![
                p.partition.to_string(),
                p.producer_id.to_string(),
                p.producer_epoch.to_string(),
                p.last_sequence.to_string(),
                p.last_timestamp.to_string(),
                p.current_txn_start_offset.to_string(),
            ]
        })
        .collect();
    print_stdout(&render_table(
        &[
            "PARTITION",
            "PRODUCER ID",
            "EPOCH",
            "LAST SEQUENCE",
            "LAST TIMESTAMP",
            "TXN START OFFSET",
        ],
        &rows,
    ))
}

/// The topic's partition ids, from a Metadata request for that topic only.
async fn partitions_of(client: &ClientArgs, topic: &str) -> anyhow::Result<Vec<i32>> {
    let request = MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(
            TopicName(StrBytes::from_string(topic.to_string())),
        ))]))
        .with_allow_auto_topic_creation(false);
    let response = wire::request(client, 4, &request).await?;
    let found = response
        .topics
        .into_iter()
        .next()
        .context("Metadata answered with no topic")?;
    check(found.error_code, || format!("topic `{topic}`"))?;
    let mut partitions: Vec<i32> = found.partitions.iter().map(|p| p.partition_index).collect();
    partitions.sort_unstable();
    Ok(partitions)
}
