//! `strom group reset-offsets`: move a group's committed offsets of one topic,
//! as Kafka's `kafka-consumer-groups --reset-offsets` does. A dry run unless
//! `--execute` is given.

use super::common::{print_json, print_stdout, render_table, ClientArgs, REQUEST_TIMEOUT};
use super::group::{committed_offsets, find_group, group_consumer, topic_partitions};
use super::start::StartFrom;
use anyhow::{bail, Context as _};
use clap::{ArgGroup, Args};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// Reset a group's committed offsets of a topic.
///
/// Prints, per partition, the current committed offset and the new one. Only
/// with --execute are the new offsets committed, and only while the group has
/// no active members (state Empty, or Dead for a group that does not exist
/// yet): stop its consumers first. New offsets are clamped to the partition's
/// earliest and latest offsets, as Kafka does.
#[derive(Debug, Args)]
#[command(group(
    ArgGroup::new("target")
        .required(true)
        .args(["to_earliest", "to_latest", "to_offset", "to_datetime", "shift_by"])
))]
pub struct ResetArgs {
    /// Group id.
    pub group: String,
    /// Topic whose offsets to reset.
    #[arg(long, value_name = "TOPIC")]
    pub topic: String,
    /// Only this partition (repeatable); default: every partition of the topic.
    #[arg(long = "partition", value_name = "N")]
    pub partitions: Vec<i32>,
    /// Reset to the earliest retained offset.
    #[arg(long)]
    pub to_earliest: bool,
    /// Reset to the log end offset (skip everything produced so far).
    #[arg(long)]
    pub to_latest: bool,
    /// Reset to this offset.
    #[arg(long, value_name = "OFFSET", value_parser = clap::value_parser!(i64).range(0..))]
    pub to_offset: Option<i64>,
    /// Reset to the first record with a timestamp at or after TIME: @MILLIS
    /// since the epoch or RFC 3339 such as 2024-01-01T00:00:00Z (as `strom
    /// consume --from`). Where there is none, the log end offset.
    #[arg(long, value_name = "TIME", value_parser = parse_datetime)]
    pub to_datetime: Option<i64>,
    /// Move the committed offset by N (negative goes back).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub shift_by: Option<i64>,
    /// Commit the new offsets (without it, only show them).
    #[arg(long)]
    pub execute: bool,
    /// Only show the new offsets (the default; for kafka-consumer-groups habits).
    #[arg(long, conflicts_with = "execute")]
    pub dry_run: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Where the offsets go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetTarget {
    Earliest,
    Latest,
    Offset(i64),
    /// Milliseconds since the Unix epoch.
    Datetime(i64),
    ShiftBy(i64),
}

impl ResetArgs {
    pub fn target(&self) -> ResetTarget {
        if self.to_earliest {
            ResetTarget::Earliest
        } else if self.to_latest {
            ResetTarget::Latest
        } else if let Some(offset) = self.to_offset {
            ResetTarget::Offset(offset)
        } else if let Some(millis) = self.to_datetime {
            ResetTarget::Datetime(millis)
        } else if let Some(shift) = self.shift_by {
            ResetTarget::ShiftBy(shift)
        } else {
            // clap's required "target" group makes this unreachable from the
            // command line; earliest is Kafka's most common choice.
            ResetTarget::Earliest
        }
    }
}

/// `@MILLIS` or an RFC 3339 time, the timestamp forms of `strom consume --from`.
fn parse_datetime(input: &str) -> Result<i64, String> {
    match input.parse::<StartFrom>() {
        Ok(StartFrom::Timestamp(millis)) => Ok(millis),
        _ => Err(format!(
            "`{input}`: expected @MILLIS since the Unix epoch or an RFC 3339 time \
             such as 2024-01-01T00:00:00Z"
        )),
    }
}

/// What is known about one partition before choosing its new offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionPosition {
    pub committed: Option<i64>,
    pub earliest: i64,
    pub latest: i64,
    /// For --to-datetime: the first offset at or after the time, if any.
    pub at_time: Option<i64>,
}

/// The new committed offset of a partition, clamped to [earliest, latest] as
/// Kafka clamps it.
pub fn new_offset(target: ResetTarget, position: &PartitionPosition) -> Result<i64, String> {
    let wanted = match target {
        ResetTarget::Earliest => position.earliest,
        ResetTarget::Latest => position.latest,
        ResetTarget::Offset(offset) => offset,
        ResetTarget::Datetime(_) => position.at_time.unwrap_or(position.latest),
        ResetTarget::ShiftBy(shift) => position
            .committed
            .ok_or("the group has no committed offset to shift")?
            .saturating_add(shift),
    };
    Ok(wanted
        .min(position.latest)
        .max(position.earliest.min(position.latest)))
}

#[derive(Debug, Serialize)]
struct PlannedReset {
    topic: String,
    partition: i32,
    current_offset: Option<i64>,
    new_offset: i64,
}

#[derive(Debug, Serialize)]
struct ResetReport<'a> {
    group: &'a str,
    executed: bool,
    partitions: &'a [PlannedReset],
}

pub fn run(client: &ClientArgs, args: &ResetArgs) -> anyhow::Result<()> {
    let group = args.group.as_str();
    let topic = args.topic.as_str();
    let consumer = group_consumer(client, group)?;
    // Metadata first: it connects at once, while fetch_group_list on a fresh
    // consumer waits for librdkafka's next one-second tick to connect.
    let existing = topic_partitions(&consumer, Some(topic))?
        .remove(topic)
        .unwrap_or_default();

    if let Some(summary) = find_group(&consumer, group)? {
        if !summary.is_inactive() {
            let problem = format!(
                "offsets can only be reset while group {group} is inactive, but it is {} \
                 with {} member(s); stop its consumers first",
                summary.state, summary.members
            );
            if args.execute {
                bail!("{problem}");
            }
            eprintln!("warning: {problem}");
        }
    }

    let selected: Vec<i32> = if args.partitions.is_empty() {
        existing
    } else {
        let chosen: BTreeSet<i32> = args.partitions.iter().copied().collect();
        if let Some(missing) = chosen.iter().find(|p| !existing.contains(p)) {
            bail!(
                "topic {topic} has no partition {missing} (it has {})",
                existing.len()
            );
        }
        chosen.into_iter().collect()
    };
    if selected.is_empty() {
        bail!("topic {topic} has no partitions");
    }

    let keys: BTreeSet<(String, i32)> = selected.iter().map(|p| (topic.to_string(), *p)).collect();
    let committed = committed_offsets(&consumer, &keys)?;
    let target = args.target();
    let at_time = match target {
        ResetTarget::Datetime(millis) => offsets_at_time(&consumer, topic, &selected, millis)?,
        _ => BTreeMap::new(),
    };

    let mut plan = Vec::with_capacity(selected.len());
    for partition in selected {
        let (earliest, latest) = consumer
            .fetch_watermarks(topic, partition, REQUEST_TIMEOUT)
            .with_context(|| format!("fetching the offsets of {topic}/{partition}"))?;
        let position = PartitionPosition {
            committed: committed
                .get(&(topic.to_string(), partition))
                .copied()
                .flatten(),
            earliest,
            latest,
            at_time: at_time.get(&partition).copied().flatten(),
        };
        let new = new_offset(target, &position)
            .map_err(|err| anyhow::anyhow!("{topic}/{partition}: {err}"))?;
        plan.push(PlannedReset {
            topic: topic.to_string(),
            partition,
            current_offset: position.committed,
            new_offset: new,
        });
    }

    if args.execute {
        commit(&consumer, &plan)?;
    }
    if args.json {
        print_json(&ResetReport {
            group,
            executed: args.execute,
            partitions: &plan,
        })?;
    } else {
        let rows: Vec<Vec<String>> = plan
            .iter()
            .map(|p| {
                vec![
                    p.topic.clone(),
                    p.partition.to_string(),
                    p.current_offset
                        .map_or_else(|| "-".to_string(), |o| o.to_string()),
                    p.new_offset.to_string(),
                ]
            })
            .collect();
        print_stdout(&render_table(
            &["TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET"],
            &rows,
        ))?;
    }
    if args.execute {
        eprintln!(
            "committed new offsets of {} partition(s) for group {group}",
            plan.len()
        );
    } else {
        eprintln!("dry run: nothing committed; add --execute to commit these offsets");
    }
    Ok(())
}

/// The first offset at or after `millis` per partition (ListOffsets by
/// timestamp); None where no record is that new.
fn offsets_at_time(
    consumer: &super::group::GroupConsumer,
    topic: &str,
    partitions: &[i32],
    millis: i64,
) -> anyhow::Result<BTreeMap<i32, Option<i64>>> {
    let mut query = TopicPartitionList::new();
    for partition in partitions {
        query.add_partition_offset(topic, *partition, Offset::Offset(millis))?;
    }
    let found = consumer
        .offsets_for_times(query, REQUEST_TIMEOUT)
        .context("looking up offsets for the time")?;
    let mut offsets = BTreeMap::new();
    for element in found.elements() {
        element
            .error()
            .with_context(|| format!("looking up the time in {topic}/{}", element.partition()))?;
        let offset = match element.offset() {
            Offset::Offset(offset) if offset >= 0 => Some(offset),
            _ => None,
        };
        offsets.insert(element.partition(), offset);
    }
    Ok(offsets)
}

/// Commits the plan outside any group generation (as an admin tool does) and
/// reads the offsets back, since librdkafka may not report a rejected
/// partition of a synchronous commit.
fn commit(consumer: &super::group::GroupConsumer, plan: &[PlannedReset]) -> anyhow::Result<()> {
    let mut offsets = TopicPartitionList::new();
    for p in plan {
        offsets.add_partition_offset(&p.topic, p.partition, Offset::Offset(p.new_offset))?;
    }
    consumer
        .commit(&offsets, CommitMode::Sync)
        .context("committing the new offsets")?;
    let keys: BTreeSet<(String, i32)> = plan
        .iter()
        .map(|p| (p.topic.clone(), p.partition))
        .collect();
    let stored = committed_offsets(consumer, &keys)?;
    for p in plan {
        let now = stored
            .get(&(p.topic.clone(), p.partition))
            .copied()
            .flatten();
        if now != Some(p.new_offset) {
            bail!(
                "the commit of {}/{} did not take: the group's offset is {} instead of {}",
                p.topic,
                p.partition,
                now.map_or_else(|| "none".to_string(), |o| o.to_string()),
                p.new_offset
            );
        }
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
        args: ResetArgs,
    }

    fn parse(args: &[&str]) -> Result<ResetArgs, clap::Error> {
        TestCli::try_parse_from(std::iter::once("reset-offsets").chain(args.iter().copied()))
            .map(|cli| cli.args)
    }

    #[test]
    fn exactly_one_target_is_required() {
        assert!(parse(&["g", "--topic", "t"]).is_err());
        assert!(parse(&["g", "--topic", "t", "--to-earliest", "--to-latest"]).is_err());
        assert!(parse(&["g", "--topic", "t", "--to-offset", "3", "--shift-by", "1"]).is_err());
        assert!(
            parse(&["g", "--to-earliest"]).is_err(),
            "--topic is required"
        );
    }

    #[test]
    fn targets_parse() {
        let target = |extra: &[&str]| {
            let mut args = vec!["g", "--topic", "t"];
            args.extend_from_slice(extra);
            parse(&args).map(|a| a.target())
        };
        assert_eq!(target(&["--to-earliest"]).unwrap(), ResetTarget::Earliest);
        assert_eq!(target(&["--to-latest"]).unwrap(), ResetTarget::Latest);
        assert_eq!(
            target(&["--to-offset", "42"]).unwrap(),
            ResetTarget::Offset(42)
        );
        assert!(target(&["--to-offset", "-1"]).is_err());
        assert_eq!(
            target(&["--shift-by", "-3"]).unwrap(),
            ResetTarget::ShiftBy(-3)
        );
        assert_eq!(
            target(&["--shift-by", "5"]).unwrap(),
            ResetTarget::ShiftBy(5)
        );
        assert_eq!(
            target(&["--to-datetime", "2024-01-01T00:00:00Z"]).unwrap(),
            ResetTarget::Datetime(1_704_067_200_000)
        );
        assert_eq!(
            target(&["--to-datetime", "@1700000000000"]).unwrap(),
            ResetTarget::Datetime(1_700_000_000_000)
        );
        assert!(target(&["--to-datetime", "42"]).is_err());
        assert!(target(&["--to-datetime", "beginning"]).is_err());
        assert!(target(&["--to-datetime", "2024-01-01"]).is_err());
    }

    #[test]
    fn execute_dry_run_and_partitions() {
        let args = parse(&["g", "--topic", "t", "--to-latest"]).unwrap();
        assert!(!args.execute);
        assert!(args.partitions.is_empty());
        let args = parse(&[
            "g",
            "--topic",
            "t",
            "--to-latest",
            "--partition",
            "0",
            "--partition",
            "2",
            "--execute",
        ])
        .unwrap();
        assert!(args.execute);
        assert_eq!(args.partitions, vec![0, 2]);
        assert!(parse(&["g", "--topic", "t", "--to-latest", "--execute", "--dry-run"]).is_err());
    }

    fn position(committed: Option<i64>, earliest: i64, latest: i64) -> PartitionPosition {
        PartitionPosition {
            committed,
            earliest,
            latest,
            at_time: None,
        }
    }

    #[test]
    fn new_offsets_follow_the_target() {
        let p = position(Some(4), 2, 10);
        assert_eq!(new_offset(ResetTarget::Earliest, &p), Ok(2));
        assert_eq!(new_offset(ResetTarget::Latest, &p), Ok(10));
        assert_eq!(new_offset(ResetTarget::Offset(7), &p), Ok(7));
        assert_eq!(new_offset(ResetTarget::ShiftBy(3), &p), Ok(7));
        assert_eq!(new_offset(ResetTarget::ShiftBy(-1), &p), Ok(3));
        let timed = PartitionPosition {
            at_time: Some(5),
            ..p
        };
        assert_eq!(new_offset(ResetTarget::Datetime(0), &timed), Ok(5));
        // No record at or after the time: the log end offset, as Kafka does.
        assert_eq!(new_offset(ResetTarget::Datetime(0), &p), Ok(10));
    }

    #[test]
    fn new_offsets_are_clamped() {
        let p = position(Some(4), 2, 10);
        assert_eq!(new_offset(ResetTarget::Offset(0), &p), Ok(2));
        assert_eq!(new_offset(ResetTarget::Offset(99), &p), Ok(10));
        assert_eq!(new_offset(ResetTarget::ShiftBy(-100), &p), Ok(2));
        assert_eq!(new_offset(ResetTarget::ShiftBy(100), &p), Ok(10));
        assert_eq!(new_offset(ResetTarget::ShiftBy(i64::MAX), &p), Ok(10));
        let empty = position(None, 5, 5);
        assert_eq!(new_offset(ResetTarget::Offset(0), &empty), Ok(5));
    }

    #[test]
    fn shifting_needs_a_committed_offset() {
        let p = position(None, 0, 10);
        assert!(new_offset(ResetTarget::ShiftBy(1), &p).is_err());
        assert_eq!(new_offset(ResetTarget::Offset(3), &p), Ok(3));
    }
}
