//! `strom group`: list, describe and delete consumer groups, and reset their
//! committed offsets (in [`super::group_reset`]).
//!
//! Everything goes through librdkafka: ListGroups + DescribeGroups
//! (`fetch_group_list`), OffsetFetch (`committed_offsets` of a consumer that
//! carries the group's id but never subscribes, so it never joins the group),
//! ListOffsets for the log end offsets, and DeleteGroups.

use super::common::{print_json, print_stdout, render_table, ClientArgs, REQUEST_TIMEOUT};
use super::group_reset::{self, ResetArgs};
use super::topic::{admin_options, Admin};
use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};
use kafka_protocol::messages::ConsumerProtocolAssignment;
use kafka_protocol::protocol::Decodable;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::groups::GroupInfo;
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// A consumer that only reads and commits a group's offsets; it never joins.
pub type GroupConsumer = BaseConsumer;

/// List, describe and delete consumer groups, and reset their offsets.
#[derive(Debug, Args)]
pub struct GroupArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub command: GroupCommand,
}

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// List consumer groups with their state and protocol type.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Only groups in this state (Empty, Stable, PreparingRebalance,
        /// CompletingRebalance, Dead); case-insensitive.
        #[arg(long, value_name = "STATE")]
        state: Option<String>,
    },
    /// Show a group's members, assignments, committed offsets and lag.
    ///
    /// Per partition: the committed offset, the log end offset (high
    /// watermark) and the lag between them. Partitions shown: those assigned to a member, and every partition of a
    /// non-internal topic for which the group has a committed offset.
    Describe {
        /// Group id.
        group: String,
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Delete one or more groups and their committed offsets.
    ///
    /// A group with active members cannot be deleted (NON_EMPTY_GROUP).
    Delete {
        /// Group ids.
        #[arg(required = true)]
        groups: Vec<String>,
    },
    ResetOffsets(ResetArgs),
}

pub async fn run(args: GroupArgs) -> anyhow::Result<()> {
    let client = args.client;
    match args.command {
        GroupCommand::Delete { groups } => delete(&client, &groups).await,
        GroupCommand::List { json, state } => {
            blocking(move || list(&client, json, state.as_deref())).await
        }
        GroupCommand::Describe { group, json } => {
            blocking(move || describe(&client, &group, json)).await
        }
        GroupCommand::ResetOffsets(reset) => {
            blocking(move || group_reset::run(&client, &reset)).await
        }
    }
}

/// librdkafka's metadata, offset and group-list calls block: run them where
/// blocking is allowed.
async fn blocking(
    work: impl FnOnce() -> anyhow::Result<()> + Send + 'static,
) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(work)
        .await
        .context("the group command's thread panicked")?
}

/// A consumer with the group's id, used for OffsetFetch and OffsetCommit only:
/// it never subscribes, so it never joins the group, and it commits nothing on
/// its own.
pub fn group_consumer(client: &ClientArgs, group: &str) -> anyhow::Result<GroupConsumer> {
    client
        .config(&[
            ("group.id", group),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("allow.auto.create.topics", "false"),
        ])
        .create()
        .context("creating the Kafka consumer")
}

/// What ListGroups and DescribeGroups say about one group.
#[derive(Debug, Clone, Serialize)]
pub struct GroupSummary {
    pub group: String,
    pub state: String,
    pub protocol_type: String,
    pub protocol: String,
    pub members: usize,
}

impl GroupSummary {
    fn from_info(info: &GroupInfo) -> GroupSummary {
        GroupSummary {
            group: info.name().to_string(),
            state: info.state().to_string(),
            protocol_type: info.protocol_type().to_string(),
            protocol: info.protocol().to_string(),
            members: info.members().len(),
        }
    }

    /// Kafka lets offsets be changed from outside only while nobody consumes.
    pub fn is_inactive(&self) -> bool {
        matches!(self.state.as_str(), "Empty" | "Dead")
    }
}

/// The group as the cluster lists it, or None when no broker knows it.
pub fn find_group(consumer: &GroupConsumer, group: &str) -> anyhow::Result<Option<GroupSummary>> {
    let list = consumer
        .fetch_group_list(Some(group), REQUEST_TIMEOUT)
        .with_context(|| format!("describing group {group}"))?;
    Ok(list
        .groups()
        .iter()
        .find(|g| g.name() == group)
        .map(GroupSummary::from_info))
}

fn list(client: &ClientArgs, json: bool, state: Option<&str>) -> anyhow::Result<()> {
    let admin: Admin = client
        .config(&[("allow.auto.create.topics", "false")])
        .create()
        .context("creating the Kafka admin client")?;
    let list = admin
        .inner()
        .fetch_group_list(None, REQUEST_TIMEOUT)
        .context("listing groups")?;
    let mut groups: Vec<GroupSummary> = list
        .groups()
        .iter()
        .map(GroupSummary::from_info)
        .filter(|g| state.is_none_or(|s| g.state.eq_ignore_ascii_case(s)))
        .collect();
    groups.sort_by(|a, b| a.group.cmp(&b.group));
    if json {
        return print_json(&groups);
    }
    let rows: Vec<Vec<String>> = groups
        .iter()
        .map(|g| {
            vec![
                g.group.clone(),
                g.state.clone(),
                g.protocol_type.clone(),
                g.protocol.clone(),
                g.members.to_string(),
            ]
        })
        .collect();
    print_stdout(&render_table(
        &["GROUP", "STATE", "PROTOCOL-TYPE", "PROTOCOL", "MEMBERS"],
        &rows,
    ))
}

/// The partitions of one topic in a member's assignment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AssignedTopic {
    pub topic: String,
    pub partitions: Vec<i32>,
}

#[derive(Debug, Serialize)]
struct MemberDescription {
    member_id: String,
    client_id: String,
    host: String,
    /// None when the assignment is not in the consumer protocol's format.
    assignment: Option<Vec<AssignedTopic>>,
}

#[derive(Debug, Serialize)]
struct PartitionOffsets {
    topic: String,
    partition: i32,
    committed_offset: Option<i64>,
    log_end_offset: Option<i64>,
    lag: Option<i64>,
    member_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Debug, Serialize)]
struct GroupDescription {
    group: String,
    state: String,
    protocol_type: String,
    protocol: String,
    members: Vec<MemberDescription>,
    offsets: Vec<PartitionOffsets>,
}

/// Decodes a member assignment of the `consumer` protocol type (Kafka's
/// ConsumerProtocolAssignment: a version, then topics with partitions).
/// Empty bytes are an empty assignment, as a group that is rebalancing sends.
pub fn decode_assignment(bytes: &[u8]) -> anyhow::Result<Vec<AssignedTopic>> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let Some((version, mut buf)) = bytes.split_first_chunk::<2>() else {
        bail!(
            "the assignment is {} byte(s), too short for a version",
            bytes.len()
        );
    };
    let version = i16::from_be_bytes(*version);
    if version < 0 {
        bail!("the assignment has an invalid version {version}");
    }
    // Newer versions only add fields at the end, so read them as the newest we know.
    let version = version.min(3);
    let assignment = ConsumerProtocolAssignment::decode(&mut buf, version)
        .context("decoding the consumer protocol assignment")?;
    let mut topics: Vec<AssignedTopic> = assignment
        .assigned_partitions
        .into_iter()
        .map(|t| {
            let mut partitions = t.partitions;
            partitions.sort_unstable();
            AssignedTopic {
                topic: t.topic.as_str().to_string(),
                partitions,
            }
        })
        .collect();
    topics.sort_by(|a, b| a.topic.cmp(&b.topic));
    Ok(topics)
}

/// The partition ids of every topic in the cluster metadata, or of `only`.
pub fn topic_partitions(
    consumer: &GroupConsumer,
    only: Option<&str>,
) -> anyhow::Result<BTreeMap<String, Vec<i32>>> {
    let metadata = consumer
        .fetch_metadata(only, REQUEST_TIMEOUT)
        .context("fetching metadata")?;
    let mut topics = BTreeMap::new();
    for topic in metadata.topics() {
        if let Some(err) = topic.error() {
            if only.is_some() {
                bail!(
                    "cannot read topic {}: {}",
                    topic.name(),
                    RDKafkaErrorCode::from(err)
                );
            }
            continue;
        }
        let mut ids: Vec<i32> = topic.partitions().iter().map(|p| p.id()).collect();
        ids.sort_unstable();
        topics.insert(topic.name().to_string(), ids);
    }
    if let Some(name) = only {
        if !topics.contains_key(name) {
            bail!("topic {name} is missing from the metadata response");
        }
    }
    Ok(topics)
}

/// The group's committed offset of each partition asked for: None where it
/// has none.
pub fn committed_offsets(
    consumer: &GroupConsumer,
    partitions: &BTreeSet<(String, i32)>,
) -> anyhow::Result<BTreeMap<(String, i32), Option<i64>>> {
    if partitions.is_empty() {
        return Ok(BTreeMap::new());
    }
    let mut query = TopicPartitionList::new();
    for (topic, partition) in partitions {
        query.add_partition(topic, *partition);
    }
    let found = consumer
        .committed_offsets(query, REQUEST_TIMEOUT)
        .context("fetching the group's committed offsets")?;
    let mut committed = BTreeMap::new();
    for element in found.elements() {
        element.error().with_context(|| {
            format!(
                "fetching the committed offset of {}/{}",
                element.topic(),
                element.partition()
            )
        })?;
        let offset = match element.offset() {
            Offset::Offset(offset) if offset >= 0 => Some(offset),
            _ => None,
        };
        committed.insert((element.topic().to_string(), element.partition()), offset);
    }
    Ok(committed)
}

fn describe(client: &ClientArgs, group: &str, json: bool) -> anyhow::Result<()> {
    let consumer = group_consumer(client, group)?;
    // Metadata first: it connects at once, while fetch_group_list on a fresh
    // consumer waits for librdkafka's next one-second tick to connect.
    let topics = topic_partitions(&consumer, None)?;
    let list = consumer
        .fetch_group_list(Some(group), REQUEST_TIMEOUT)
        .with_context(|| format!("describing group {group}"))?;
    let info = list.groups().iter().find(|g| g.name() == group);
    let summary = info.map(GroupSummary::from_info);
    let decode = summary
        .as_ref()
        .is_some_and(|s| s.protocol_type == "consumer" || s.protocol_type.is_empty());

    let mut members = Vec::new();
    let mut owner: BTreeMap<(String, i32), String> = BTreeMap::new();
    for member in info.map(GroupInfo::members).unwrap_or_default() {
        let assignment = if decode {
            match decode_assignment(member.assignment().unwrap_or_default()) {
                Ok(topics) => Some(topics),
                Err(err) => {
                    tracing::warn!("member {}: {err:#}", member.id());
                    None
                }
            }
        } else {
            None
        };
        for topic in assignment.iter().flatten() {
            for partition in &topic.partitions {
                owner.insert((topic.topic.clone(), *partition), member.id().to_string());
            }
        }
        members.push(MemberDescription {
            member_id: member.id().to_string(),
            client_id: member.client_id().to_string(),
            host: member.client_host().to_string(),
            assignment,
        });
    }
    members.sort_by(|a, b| a.member_id.cmp(&b.member_id));

    let mut wanted: BTreeSet<(String, i32)> = owner.keys().cloned().collect();
    for (topic, partitions) in topics {
        if !topic.starts_with("__") {
            wanted.extend(partitions.into_iter().map(|p| (topic.clone(), p)));
        }
    }
    let committed = committed_offsets(&consumer, &wanted)?;

    let exists = summary.as_ref().is_some_and(|s| s.state != "Dead")
        || committed.values().any(Option::is_some);
    if !exists {
        bail!("consumer group {group} does not exist");
    }

    let mut offsets = Vec::new();
    for ((topic, partition), committed_offset) in committed {
        let member_id = owner.get(&(topic.clone(), partition)).cloned();
        if committed_offset.is_none() && member_id.is_none() {
            continue;
        }
        let (log_end_offset, error) =
            match consumer.fetch_watermarks(&topic, partition, REQUEST_TIMEOUT) {
                Ok((_, high)) => (Some(high), None),
                Err(err) => (None, Some(format!("log end offset unavailable: {err}"))),
            };
        let lag = committed_offset
            .zip(log_end_offset)
            .map(|(committed, end)| (end - committed).max(0));
        offsets.push(PartitionOffsets {
            topic,
            partition,
            committed_offset,
            log_end_offset,
            lag,
            member_id,
            error,
        });
    }

    let summary = summary.unwrap_or_else(|| GroupSummary {
        group: group.to_string(),
        state: "Empty".into(),
        protocol_type: String::new(),
        protocol: String::new(),
        members: 0,
    });
    let description = GroupDescription {
        group: summary.group,
        state: summary.state,
        protocol_type: summary.protocol_type,
        protocol: summary.protocol,
        members,
        offsets,
    };
    if json {
        print_json(&description)
    } else {
        print_stdout(&render_description(&description))
    }
}

fn render_description(description: &GroupDescription) -> String {
    let or_dash = |value: &str| {
        if value.is_empty() {
            "-".to_string()
        } else {
            value.to_string()
        }
    };
    let number = |n: Option<i64>| n.map_or_else(|| "-".to_string(), |n| n.to_string());
    let mut out = format!(
        "Group: {}  State: {}  Protocol type: {}  Protocol: {}  Members: {}\n\n",
        description.group,
        description.state,
        or_dash(&description.protocol_type),
        or_dash(&description.protocol),
        description.members.len()
    );
    if !description.members.is_empty() {
        let rows: Vec<Vec<String>> = description
            .members
            .iter()
            .map(|m| {
                vec![
                    m.member_id.clone(),
                    m.client_id.clone(),
                    m.host.clone(),
                    m.assignment
                        .as_deref()
                        .map_or_else(|| "?".to_string(), format_assignment),
                ]
            })
            .collect();
        out.push_str(&render_table(
            &["MEMBER-ID", "CLIENT-ID", "HOST", "ASSIGNMENT"],
            &rows,
        ));
        out.push('\n');
    }
    if description.offsets.is_empty() {
        out.push_str("No committed offsets or assigned partitions.\n");
        return out;
    }
    let has_errors = description.offsets.iter().any(|p| p.error.is_some());
    let rows: Vec<Vec<String>> = description
        .offsets
        .iter()
        .map(|p| {
            let mut row = vec![
                p.topic.clone(),
                p.partition.to_string(),
                number(p.committed_offset),
                number(p.log_end_offset),
                number(p.lag),
                p.member_id.clone().unwrap_or_else(|| "-".to_string()),
            ];
            if has_errors {
                row.push(p.error.clone().unwrap_or_default());
            }
            row
        })
        .collect();
    let mut headers = vec![
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "LOG-END-OFFSET",
        "LAG",
        "MEMBER-ID",
    ];
    if has_errors {
        headers.push("ERROR");
    }
    out.push_str(&render_table(&headers, &rows));
    out
}

/// `orders:0,1 payments:2`, or `-` for no partitions.
fn format_assignment(topics: &[AssignedTopic]) -> String {
    if topics.iter().all(|t| t.partitions.is_empty()) {
        return "-".to_string();
    }
    topics
        .iter()
        .filter(|t| !t.partitions.is_empty())
        .map(|t| {
            let partitions: Vec<String> = t.partitions.iter().map(i32::to_string).collect();
            format!("{}:{}", t.topic, partitions.join(","))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

async fn delete(client: &ClientArgs, groups: &[String]) -> anyhow::Result<()> {
    let admin: Admin = client
        .config(&[("allow.auto.create.topics", "false")])
        .create()
        .context("creating the Kafka admin client")?;
    let names: Vec<&str> = groups.iter().map(String::as_str).collect();
    let results = admin
        .delete_groups(&names, &admin_options())
        .await
        .context("DeleteGroups request failed")?;
    let mut failed = 0;
    for result in results {
        match result {
            Ok(group) => print_stdout(&format!("deleted group {group}\n"))?,
            Err((group, code)) => {
                eprintln!("error: cannot delete group {group}: {code}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} group deletions failed", names.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct TestCli {
        #[command(flatten)]
        args: GroupArgs,
    }

    fn parse(args: &[&str]) -> Result<GroupArgs, clap::Error> {
        TestCli::try_parse_from(std::iter::once("group").chain(args.iter().copied()))
            .map(|cli| cli.args)
    }

    #[test]
    fn list_and_describe_parse() {
        let args = parse(&["list", "--json", "--state", "empty"]).unwrap();
        assert!(matches!(
            args.command,
            GroupCommand::List { json: true, state: Some(ref s) } if s == "empty"
        ));
        let args = parse(&["describe", "g", "--bootstrap", "h:1"]).unwrap();
        assert_eq!(args.client.bootstrap, "h:1");
        assert!(matches!(
            args.command,
            GroupCommand::Describe { ref group, json: false } if group == "g"
        ));
        assert!(parse(&["describe"]).is_err());
    }

    #[test]
    fn delete_needs_at_least_one_group() {
        assert!(parse(&["delete"]).is_err());
        let args = parse(&["delete", "a", "b"]).unwrap();
        assert!(matches!(
            args.command,
            GroupCommand::Delete { ref groups } if groups == &["a", "b"]
        ));
    }

    /// Hand-assembled bytes of ConsumerProtocolAssignment v0 as the Java
    /// client and librdkafka send them.
    fn assignment_v0(topics: &[(&str, &[i32])], user_data: Option<&[u8]>) -> Vec<u8> {
        let mut bytes = 0i16.to_be_bytes().to_vec();
        bytes.extend((topics.len() as i32).to_be_bytes());
        for (topic, partitions) in topics {
            bytes.extend((topic.len() as i16).to_be_bytes());
            bytes.extend(topic.as_bytes());
            bytes.extend((partitions.len() as i32).to_be_bytes());
            for p in *partitions {
                bytes.extend(p.to_be_bytes());
            }
        }
        match user_data {
            Some(data) => {
                bytes.extend((data.len() as i32).to_be_bytes());
                bytes.extend(data);
            }
            None => bytes.extend((-1i32).to_be_bytes()),
        }
        bytes
    }

    #[test]
    fn assignments_decode() {
        let bytes = assignment_v0(&[("b", &[2, 0]), ("a", &[1])], None);
        assert_eq!(
            decode_assignment(&bytes).unwrap(),
            vec![
                AssignedTopic {
                    topic: "a".into(),
                    partitions: vec![1]
                },
                AssignedTopic {
                    topic: "b".into(),
                    partitions: vec![0, 2]
                },
            ]
        );
        let with_data = assignment_v0(&[("t", &[0])], Some(b"xyz"));
        assert_eq!(decode_assignment(&with_data).unwrap().len(), 1);
        assert_eq!(decode_assignment(&[]).unwrap(), Vec::new());
        assert!(decode_assignment(&bytes[..7]).is_err());
    }

    #[test]
    fn assignment_text() {
        let topics = vec![
            AssignedTopic {
                topic: "a".into(),
                partitions: vec![0, 1],
            },
            AssignedTopic {
                topic: "b".into(),
                partitions: vec![],
            },
            AssignedTopic {
                topic: "c".into(),
                partitions: vec![2],
            },
        ];
        assert_eq!(format_assignment(&topics), "a:0,1 c:2");
        assert_eq!(format_assignment(&[]), "-");
    }
}
