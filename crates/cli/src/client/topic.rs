//! `strom topic`: create, list, describe, delete topics and change their configs.

use super::common::{
    parse_key_value, print_json, print_stdout, render_table, ClientArgs, REQUEST_TIMEOUT,
};
use super::topic_config;
use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::metadata::Metadata;
use serde::Serialize;

pub type Admin = AdminClient<DefaultClientContext>;

/// Create, list, describe, delete and configure topics.
#[derive(Debug, Args)]
pub struct TopicArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub command: TopicCommand,
}

#[derive(Debug, Subcommand)]
pub enum TopicCommand {
    /// Create a topic.
    Create {
        /// Topic name.
        name: String,
        /// Number of partitions.
        #[arg(long, default_value_t = 1)]
        partitions: i32,
        /// Number of replicas of each partition.
        #[arg(long, default_value_t = 1)]
        replication_factor: i32,
        /// Topic config, e.g. `--config retention.ms=86400000` (repeatable).
        #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        configs: Vec<(String, String)>,
        /// Ask the broker to check the request without creating the topic.
        #[arg(long)]
        validate_only: bool,
    },
    /// List topics with their partition counts.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Include internal topics (names starting with `__`).
        #[arg(long)]
        all: bool,
    },
    /// Show a topic's partitions (leader, replicas, ISR, offsets) and configs.
    Describe {
        /// Topic name.
        name: String,
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
        /// Show every config, not only those that differ from the default.
        #[arg(long)]
        all_configs: bool,
    },
    /// Delete one or more topics.
    Delete {
        /// Topic names.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Set or remove topic config overrides.
    ///
    /// Kafka's AlterConfigs request replaces the whole set of overrides, so this
    /// reads the topic's current overrides, applies --set and --delete to them
    /// and writes the result back: other overrides are kept. A change made by
    /// someone else between the read and the write is lost.
    AlterConfig(topic_config::AlterConfigArgs),
}

pub async fn run(args: TopicArgs) -> anyhow::Result<()> {
    let admin: Admin = args
        .client
        // The admin handle is a producer underneath, and a producer's metadata
        // request would create a missing topic on brokers that auto-create.
        .config(&[("allow.auto.create.topics", "false")])
        .create()
        .context("creating the Kafka admin client")?;
    match args.command {
        TopicCommand::Create {
            name,
            partitions,
            replication_factor,
            configs,
            validate_only,
        } => {
            create(
                &admin,
                &name,
                partitions,
                replication_factor,
                &configs,
                validate_only,
            )
            .await
        }
        TopicCommand::List { json, all } => list(&admin, json, all),
        TopicCommand::Describe {
            name,
            json,
            all_configs,
        } => describe(&admin, &name, json, all_configs).await,
        TopicCommand::Delete { names } => delete(&admin, &names).await,
        TopicCommand::AlterConfig(alter) => topic_config::alter(&admin, &alter).await,
    }
}

pub fn admin_options() -> AdminOptions {
    AdminOptions::new()
        .request_timeout(Some(REQUEST_TIMEOUT))
        .operation_timeout(Some(REQUEST_TIMEOUT))
}

async fn create(
    admin: &Admin,
    name: &str,
    partitions: i32,
    replication_factor: i32,
    configs: &[(String, String)],
    validate_only: bool,
) -> anyhow::Result<()> {
    let mut topic = NewTopic::new(
        name,
        partitions,
        TopicReplication::Fixed(replication_factor),
    );
    for (key, value) in configs {
        topic = topic.set(key, value);
    }
    let options = admin_options().validate_only(validate_only);
    let results = admin
        .create_topics([&topic], &options)
        .await
        .context("CreateTopics request failed")?;
    for result in results {
        match result {
            Ok(created) if validate_only => print_stdout(&format!(
                "topic {created} is valid ({partitions} partitions, replication factor \
                 {replication_factor}); not created because of --validate-only\n"
            ))?,
            Ok(created) => print_stdout(&format!(
                "created topic {created} ({partitions} partitions, replication factor \
                 {replication_factor})\n"
            ))?,
            Err((topic, code)) => bail!("cannot create topic {topic}: {code}"),
        }
    }
    Ok(())
}

/// Metadata of the whole cluster or of one topic. librdkafka's call blocks,
/// so it runs where blocking is allowed.
pub fn fetch_metadata(admin: &Admin, topic: Option<&str>) -> anyhow::Result<Metadata> {
    tokio::task::block_in_place(|| admin.inner().fetch_metadata(topic, REQUEST_TIMEOUT))
        .context("fetching metadata")
}

#[derive(Debug, Serialize)]
struct TopicSummary {
    topic: String,
    partitions: usize,
    replication_factor: usize,
}

fn list(admin: &Admin, json: bool, all: bool) -> anyhow::Result<()> {
    let metadata = fetch_metadata(admin, None)?;
    let mut topics: Vec<TopicSummary> = metadata
        .topics()
        .iter()
        .filter(|topic| all || !topic.name().starts_with("__"))
        .map(|topic| TopicSummary {
            topic: topic.name().to_string(),
            partitions: topic.partitions().len(),
            replication_factor: topic
                .partitions()
                .iter()
                .map(|p| p.replicas().len())
                .max()
                .unwrap_or(0),
        })
        .collect();
    topics.sort_by(|a, b| a.topic.cmp(&b.topic));
    if json {
        return print_json(&topics);
    }
    let rows: Vec<Vec<String>> = topics
        .iter()
        .map(|t| {
            vec![
                t.topic.clone(),
                t.partitions.to_string(),
                t.replication_factor.to_string(),
            ]
        })
        .collect();
    print_stdout(&render_table(
        &["TOPIC", "PARTITIONS", "REPLICATION"],
        &rows,
    ))
}

#[derive(Debug, Serialize)]
struct PartitionDescription {
    partition: i32,
    leader: i32,
    replicas: Vec<i32>,
    isr: Vec<i32>,
    earliest_offset: Option<i64>,
    latest_offset: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Debug, Serialize)]
struct TopicDescription {
    topic: String,
    partitions: Vec<PartitionDescription>,
    configs: Vec<topic_config::ConfigDescription>,
}

async fn describe(admin: &Admin, name: &str, json: bool, all_configs: bool) -> anyhow::Result<()> {
    let metadata = fetch_metadata(admin, Some(name))?;
    let topic = metadata
        .topics()
        .iter()
        .find(|t| t.name() == name)
        .with_context(|| format!("topic {name} is missing from the metadata response"))?;
    if let Some(err) = topic.error() {
        bail!(
            "cannot describe topic {name}: {}",
            RDKafkaErrorCode::from(err)
        );
    }

    let mut partitions = Vec::with_capacity(topic.partitions().len());
    for partition in topic.partitions() {
        let mut error = partition
            .error()
            .map(|err| RDKafkaErrorCode::from(err).to_string());
        let watermarks = tokio::task::block_in_place(|| {
            admin
                .inner()
                .fetch_watermarks(name, partition.id(), REQUEST_TIMEOUT)
        });
        let (earliest_offset, latest_offset) = match watermarks {
            Ok((low, high)) => (Some(low), Some(high)),
            Err(err) => {
                error.get_or_insert_with(|| format!("offsets unavailable: {err}"));
                (None, None)
            }
        };
        partitions.push(PartitionDescription {
            partition: partition.id(),
            leader: partition.leader(),
            replicas: partition.replicas().to_vec(),
            isr: partition.isr().to_vec(),
            earliest_offset,
            latest_offset,
            error,
        });
    }
    partitions.sort_by_key(|p| p.partition);

    let configs = topic_config::describe(admin, name)
        .await?
        .into_iter()
        .filter(|c| all_configs || !c.is_default)
        .collect();
    let description = TopicDescription {
        topic: name.to_string(),
        partitions,
        configs,
    };
    if json {
        print_json(&description)
    } else {
        print_stdout(&render_description(&description, all_configs))
    }
}

fn render_description(description: &TopicDescription, all_configs: bool) -> String {
    let join = |ids: &[i32]| ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
    let offset = |o: Option<i64>| o.map_or_else(|| "-".to_string(), |o| o.to_string());
    let replication = description
        .partitions
        .iter()
        .map(|p| p.replicas.len())
        .max()
        .unwrap_or(0);
    let mut out = format!(
        "Topic: {}  Partitions: {}  Replication factor: {}\n\n",
        description.topic,
        description.partitions.len(),
        replication
    );
    let has_errors = description.partitions.iter().any(|p| p.error.is_some());
    let rows: Vec<Vec<String>> = description
        .partitions
        .iter()
        .map(|p| {
            let mut row = vec![
                p.partition.to_string(),
                p.leader.to_string(),
                join(&p.replicas),
                join(&p.isr),
                offset(p.earliest_offset),
                offset(p.latest_offset),
            ];
            if has_errors {
                row.push(p.error.clone().unwrap_or_default());
            }
            row
        })
        .collect();
    let mut headers = vec![
        "PARTITION",
        "LEADER",
        "REPLICAS",
        "ISR",
        "EARLIEST",
        "LATEST",
    ];
    if has_errors {
        headers.push("ERROR");
    }
    out.push_str(&render_table(&headers, &rows));
    out.push('\n');
    if description.configs.is_empty() {
        out.push_str("Configs: all defaults (use --all-configs to list them)\n");
    } else {
        out.push_str(if all_configs {
            "Configs:\n"
        } else {
            "Configs (non-default; --all-configs lists all):\n"
        });
        let rows: Vec<Vec<String>> = description
            .configs
            .iter()
            .map(|c| vec![c.name.clone(), c.display_value(), c.source.clone()])
            .collect();
        out.push_str(&render_table(&["NAME", "VALUE", "SOURCE"], &rows));
    }
    out
}

async fn delete(admin: &Admin, names: &[String]) -> anyhow::Result<()> {
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let results = admin
        .delete_topics(&names, &admin_options())
        .await
        .context("DeleteTopics request failed")?;
    let mut failed = 0;
    for result in results {
        match result {
            Ok(topic) => print_stdout(&format!("deleted topic {topic}\n"))?,
            Err((topic, code)) => {
                eprintln!("error: cannot delete topic {topic}: {code}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} topic deletions failed", names.len());
    }
    Ok(())
}
