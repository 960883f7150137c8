//! Handles on the series the request path updates, resolved once.
//!
//! `Family::get_or_create` hashes a label set and takes the family's lock
//! on every call; for a broker answering tens of thousands of small
//! requests a second that was most of the cost of its metrics (measured
//! with callgrind: 12% of the broker's instructions with one record per
//! Produce). The series are the same ones the families hold (a counter or
//! histogram clone shares its value), so the scrape output is unchanged.

use parking_lot::RwLock;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use std::collections::HashMap;
use std::sync::OnceLock;

/// The latency histograms of one API and its request counters by version.
pub struct ApiSeries {
    pub key: kafka_protocol::messages::ApiKey,
    pub total: Histogram,
    pub queue: Histogram,
    pub processing: Histogram,
    pub send: Histogram,
    /// Lowest supported version: `versions[v - min_version]`.
    pub min_version: i16,
    pub versions: Vec<OnceLock<Counter>>,
}

/// One slot per API key; `None` once resolved for a key Strom does not serve.
pub struct ApiSlots(Vec<OnceLock<Option<ApiSeries>>>);

impl ApiSlots {
    pub fn new() -> ApiSlots {
        // Kafka's API keys are below 100.
        ApiSlots((0..100).map(|_| OnceLock::new()).collect())
    }

    /// The series of API `raw_key`, built by `build` the first time.
    pub fn get(
        &self,
        raw_key: i16,
        build: impl FnOnce() -> Option<ApiSeries>,
    ) -> Option<&ApiSeries> {
        let slot = self.0.get(usize::try_from(raw_key).ok()?)?;
        slot.get_or_init(build).as_ref()
    }
}

impl ApiSeries {
    /// The request counter of `version`, created by `make` the first time;
    /// `None` for a version outside the supported range.
    pub fn version_counter(
        &self,
        version: i16,
        make: impl FnOnce() -> Counter,
    ) -> Option<&Counter> {
        let index = usize::try_from(version.checked_sub(self.min_version)?).ok()?;
        Some(self.versions.get(index)?.get_or_init(make))
    }
}

/// Produce and Fetch throughput counters of one topic.
pub struct TopicSeries {
    pub produce_bytes: Counter,
    pub produce_records: Counter,
    pub fetch_bytes: Counter,
    pub fetch_records: Counter,
}

/// Topic name → its counters, looked up by `&str` without allocating.
#[derive(Default)]
pub struct TopicSlots(RwLock<HashMap<String, TopicSeries>>);

impl TopicSlots {
    /// Runs `update` on the topic's series, made by `make` the first time.
    pub fn with(
        &self,
        topic: &str,
        make: impl FnOnce() -> TopicSeries,
        update: impl FnOnce(&TopicSeries),
    ) {
        if let Some(series) = self.0.read().get(topic) {
            return update(series);
        }
        update(self.0.write().entry(topic.to_string()).or_insert_with(make))
    }
}
