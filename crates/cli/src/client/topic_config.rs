//! Topic configs: reading them with DescribeConfigs and changing the
//! per-topic overrides with AlterConfigs.

use super::common::{parse_key_value, print_stdout};
use super::topic::{admin_options, Admin};
use anyhow::{bail, Context as _};
use clap::Args;
use rdkafka::admin::{AlterConfig, ConfigEntry, ConfigSource, ResourceSpecifier};
use serde::Serialize;
use std::collections::BTreeMap;

/// Arguments of `strom topic alter-config`.
#[derive(Debug, Args)]
pub struct AlterConfigArgs {
    /// Topic name.
    pub name: String,
    /// Set a config override, e.g. `--set retention.ms=3600000` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub set: Vec<(String, String)>,
    /// Remove a config override so the default applies again (repeatable).
    #[arg(long = "delete", value_name = "KEY")]
    pub delete: Vec<String>,
}

/// One topic config as DescribeConfigs reports it.
#[derive(Debug, Clone, Serialize)]
pub struct ConfigDescription {
    pub name: String,
    pub value: Option<String>,
    /// Where the value comes from: `topic`, `broker`, `broker-default`,
    /// `broker-static`, `default` or `unknown`.
    pub source: String,
    #[serde(rename = "default")]
    pub is_default: bool,
    pub read_only: bool,
    pub sensitive: bool,
    /// Whether this is a per-topic override (what AlterConfigs replaces).
    #[serde(skip)]
    pub is_topic_override: bool,
}

impl ConfigDescription {
    fn from_entry(entry: &ConfigEntry) -> Self {
        let source = match entry.source {
            ConfigSource::DynamicTopic => "topic",
            ConfigSource::DynamicBroker => "broker",
            ConfigSource::DynamicDefaultBroker => "broker-default",
            ConfigSource::StaticBroker => "broker-static",
            ConfigSource::Default => "default",
            ConfigSource::Unknown => "unknown",
        };
        // Brokers before Kafka 1.1 don't report a source; fall back to the flag.
        let is_default = match entry.source {
            ConfigSource::Unknown => entry.is_default,
            ConfigSource::Default => true,
            _ => false,
        };
        let is_topic_override = match entry.source {
            ConfigSource::DynamicTopic => true,
            ConfigSource::Unknown => !entry.is_default,
            _ => false,
        };
        ConfigDescription {
            name: entry.name.clone(),
            value: entry.value.clone(),
            source: source.to_string(),
            is_default,
            read_only: entry.is_read_only,
            sensitive: entry.is_sensitive,
            is_topic_override,
        }
    }

    pub fn display_value(&self) -> String {
        match &self.value {
            Some(value) => value.clone(),
            None if self.sensitive => "(sensitive)".to_string(),
            None => "(null)".to_string(),
        }
    }
}

/// All configs of a topic, sorted by name.
pub async fn describe(admin: &Admin, topic: &str) -> anyhow::Result<Vec<ConfigDescription>> {
    let results = admin
        .describe_configs([&ResourceSpecifier::Topic(topic)], &admin_options())
        .await
        .context("DescribeConfigs request failed")?;
    let resource = match results.into_iter().next() {
        Some(Ok(resource)) => resource,
        Some(Err(code)) => bail!("cannot describe configs of topic {topic}: {code}"),
        None => bail!("DescribeConfigs returned no result for topic {topic}"),
    };
    let mut configs: Vec<ConfigDescription> = resource
        .entries
        .iter()
        .map(ConfigDescription::from_entry)
        .collect();
    configs.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(configs)
}

/// The full set of overrides to send: the current ones with `set` applied and
/// `delete` removed. Names both set and deleted are a mistake, not a race.
pub fn merge_overrides(
    current: &BTreeMap<String, String>,
    set: &[(String, String)],
    delete: &[String],
) -> Result<BTreeMap<String, String>, String> {
    if set.is_empty() && delete.is_empty() {
        return Err("nothing to change: give --set KEY=VALUE and/or --delete KEY".into());
    }
    if let Some((key, _)) = set.iter().find(|(key, _)| delete.contains(key)) {
        return Err(format!("{key} is given to both --set and --delete"));
    }
    let mut merged = current.clone();
    for key in delete {
        merged.remove(key);
    }
    for (key, value) in set {
        merged.insert(key.clone(), value.clone());
    }
    Ok(merged)
}

/// The per-topic overrides among `configs`, and the names of those whose
/// value the broker does not return (sensitive ones).
fn topic_overrides(configs: &[ConfigDescription]) -> (BTreeMap<String, String>, Vec<String>) {
    let mut readable = BTreeMap::new();
    let mut hidden = Vec::new();
    for config in configs.iter().filter(|c| c.is_topic_override) {
        match &config.value {
            Some(value) => {
                readable.insert(config.name.clone(), value.clone());
            }
            None => hidden.push(config.name.clone()),
        }
    }
    (readable, hidden)
}

pub async fn alter(admin: &Admin, args: &AlterConfigArgs) -> anyhow::Result<()> {
    let topic = args.name.as_str();
    let (current, hidden) = topic_overrides(&describe(admin, topic).await?);
    // AlterConfigs would drop an override whose value we cannot send back.
    if let Some(name) = hidden
        .iter()
        .find(|name| !args.delete.contains(name) && !args.set.iter().any(|(key, _)| key == *name))
    {
        bail!(
            "topic {topic} has override {name} whose value the broker does not return \
             (sensitive); AlterConfigs would reset it. Pass it again with --set or \
             remove it with --delete"
        );
    }
    for key in &args.delete {
        if !current.contains_key(key) {
            eprintln!("warning: {key} is not overridden on topic {topic}; nothing to delete");
        }
    }
    let merged = merge_overrides(&current, &args.set, &args.delete).map_err(anyhow::Error::msg)?;
    if merged == current {
        return print_stdout(&format!("configs of topic {topic} unchanged\n"));
    }

    let mut request = AlterConfig::new(ResourceSpecifier::Topic(topic));
    for (key, value) in &merged {
        request = request.set(key, value);
    }
    let results = admin
        .alter_configs([&request], &admin_options())
        .await
        .context("AlterConfigs request failed")?;
    for result in results {
        if let Err((_, code)) = result {
            bail!("cannot alter configs of topic {topic}: {code}");
        }
    }
    verify_applied(admin, topic, &current, &merged).await?;

    let mut summary = format!("updated configs of topic {topic}\n");
    for (key, value) in &args.set {
        summary.push_str(&format!("  set    {key}={value}\n"));
    }
    for key in &args.delete {
        summary.push_str(&format!("  delete {key}\n"));
    }
    print_stdout(&summary)
}

/// rdkafka 0.39 reports every AlterConfigs resource as a success, even one the
/// broker rejected (an invalid value, say), so read the overrides back. A
/// broker may apply the change a moment after answering, hence the retries.
async fn verify_applied(
    admin: &Admin,
    topic: &str,
    before: &BTreeMap<String, String>,
    wanted: &BTreeMap<String, String>,
) -> anyhow::Result<()> {
    let mut now = BTreeMap::new();
    for attempt in 0..10 {
        if attempt > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        now = topic_overrides(&describe(admin, topic).await?).0;
        if now == *wanted {
            return Ok(());
        }
    }
    if now == *before {
        bail!(
            "the broker did not apply the change to topic {topic}; it most likely \
             rejected a name or value (the client library does not pass on the reason)"
        );
    }
    eprintln!("warning: topic {topic} now has overrides {now:?}, not the requested {wanted:?}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn set(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn keeps_other_overrides() {
        let current = map(&[("retention.ms", "1000"), ("cleanup.policy", "compact")]);
        let merged = merge_overrides(
            &current,
            &set(&[("retention.ms", "2000"), ("segment.bytes", "1048576")]),
            &["cleanup.policy".to_string()],
        )
        .unwrap();
        assert_eq!(
            merged,
            map(&[("retention.ms", "2000"), ("segment.bytes", "1048576")])
        );
    }

    #[test]
    fn rejects_empty_or_contradictory_changes() {
        assert!(merge_overrides(&BTreeMap::new(), &[], &[]).is_err());
        assert!(merge_overrides(
            &BTreeMap::new(),
            &set(&[("retention.ms", "1")]),
            &["retention.ms".to_string()]
        )
        .is_err());
    }

    #[test]
    fn deleting_an_absent_key_is_harmless() {
        let current = map(&[("retention.ms", "1000")]);
        let merged = merge_overrides(&current, &[], &["segment.ms".to_string()]).unwrap();
        assert_eq!(merged, current);
    }
}
