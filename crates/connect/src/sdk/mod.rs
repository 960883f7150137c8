//! The connector SDK: what a source or sink connector implements.
//!
//! A [`ConnectorPlugin`] names a connector class, defines its settings and
//! creates its [`Connector`] (which splits the work into task configs) and
//! tasks. A [`SourceTask`] polls an external system and returns
//! [`SourceRecord`]s; the runtime converts, transforms and produces them and
//! stores their source offsets once Kafka has acknowledged them. A
//! [`SinkTask`] is given [`SinkRecord`]s read by a consumer group; the
//! runtime commits their offsets only after a successful [`SinkTask::flush`]
//! (at-least-once).
//!
//! Task contract: `poll` and `put` should return within about a second when
//! there is nothing to do, so that pause, stop and rebalances are prompt.
//! Return [`ConnectError::Retriable`](crate::ConnectError::Retriable) for
//! failures worth retrying: a sink is then given the same records again.

pub mod config;
pub mod converter;
pub mod data;

use crate::error::Result;
use async_trait::async_trait;
use config::{ConfigDef, ConfigMap};
use data::{SinkRecord, SourceRecord};
use serde::Serialize;
use serde_json::Map as JsonMap;
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectorType {
    Source,
    Sink,
}

/// A connector class: its name, settings and factories.
pub trait ConnectorPlugin: Send + Sync {
    /// The class name, e.g. `org.apache.kafka.connect.file.FileStreamSourceConnector`.
    fn class(&self) -> &'static str;
    /// Other names it may be configured by (e.g. `FileStreamSource`).
    fn aliases(&self) -> &'static [&'static str] {
        &[]
    }
    fn connector_type(&self) -> ConnectorType;
    fn version(&self) -> &'static str {
        env!("CARGO_PKG_VERSION")
    }
    /// The connector's own settings (the runtime adds the common ones:
    /// `name`, `connector.class`, `tasks.max`, converters, transforms, ...).
    fn config_def(&self) -> ConfigDef;
    /// Checks across fields, beyond what the definition checks.
    fn validate(&self, _config: &ConfigMap) -> BTreeMap<String, Vec<String>> {
        BTreeMap::new()
    }
    fn connector(&self) -> Box<dyn Connector>;
    fn source_task(&self) -> Option<Box<dyn SourceTask>> {
        None
    }
    fn sink_task(&self) -> Option<Box<dyn SinkTask>> {
        None
    }
    /// Whether a source can run exactly-once (KIP-618): its offsets
    /// determine what it reads next, so offsets written in the same
    /// transaction as the records are enough.
    fn exactly_once_support(&self, _config: &ConfigMap) -> bool {
        false
    }
}

/// What a connector may ask of the runtime.
#[derive(Clone)]
pub struct ConnectorContext {
    pub(crate) reconfigure: Arc<dyn Fn() + Send + Sync>,
}

impl ConnectorContext {
    /// Asks the runtime to call [`Connector::task_configs`] again (e.g. when
    /// the external system's partitions changed).
    pub fn request_task_reconfiguration(&self) {
        (self.reconfigure)()
    }
}

/// A running connector: it owns no data, it splits the work into tasks.
#[async_trait]
pub trait Connector: Send + Sync {
    async fn start(&mut self, config: &ConfigMap, ctx: ConnectorContext) -> Result<()>;
    /// At most `max_tasks` task configs.
    fn task_configs(&self, max_tasks: usize) -> Result<Vec<ConfigMap>>;
    async fn stop(&mut self) {}
}

/// A connector whose tasks all get the connector's config: one task for a
/// source that cannot split its work, `tasks.max` for a sink (the consumer
/// group shares the partitions among them).
pub struct CopyConfigConnector {
    config: ConfigMap,
    single_task: bool,
}

impl CopyConfigConnector {
    pub fn single_task() -> CopyConfigConnector {
        CopyConfigConnector {
            config: ConfigMap::new(),
            single_task: true,
        }
    }

    pub fn per_task() -> CopyConfigConnector {
        CopyConfigConnector {
            config: ConfigMap::new(),
            single_task: false,
        }
    }
}

#[async_trait]
impl Connector for CopyConfigConnector {
    async fn start(&mut self, config: &ConfigMap, _ctx: ConnectorContext) -> Result<()> {
        self.config = config.clone();
        Ok(())
    }

    fn task_configs(&self, max_tasks: usize) -> Result<Vec<ConfigMap>> {
        let n = if self.single_task {
            1
        } else {
            max_tasks.max(1)
        };
        Ok(vec![self.config.clone(); n])
    }
}

/// Reads committed source offsets.
#[async_trait]
pub trait OffsetReader: Send + Sync {
    async fn offset(
        &self,
        partition: &JsonMap<String, serde_json::Value>,
    ) -> Result<Option<JsonMap<String, serde_json::Value>>>;
}

/// Given to a source task at start.
#[derive(Clone)]
pub struct SourceTaskContext {
    pub connector: String,
    pub task: u32,
    pub offsets: Arc<dyn OffsetReader>,
}

/// A source task: reads from outside, returns records.
#[async_trait]
pub trait SourceTask: Send + Sync {
    async fn start(&mut self, config: &ConfigMap, ctx: SourceTaskContext) -> Result<()>;
    /// The next records (possibly none). Should return within about a second.
    async fn poll(&mut self) -> Result<Vec<SourceRecord>>;
    /// Called once Kafka has acknowledged `record` (or a transform dropped
    /// it): the place to acknowledge it upstream.
    async fn commit_record(&mut self, _record: &SourceRecord) -> Result<()> {
        Ok(())
    }
    /// Called after offsets were stored.
    async fn commit(&mut self) -> Result<()> {
        Ok(())
    }
    async fn stop(&mut self) {}
}

/// Reports a record a sink task could not handle to the dead-letter queue
/// (Kafka Connect's ErrantRecordReporter, KIP-610).
#[async_trait]
pub trait ErrantRecordReporter: Send + Sync {
    async fn report(&self, record: &SinkRecord, error: &str) -> Result<()>;
}

/// Given to a sink task at start.
#[derive(Clone)]
pub struct SinkTaskContext {
    pub connector: String,
    pub task: u32,
    pub errant_record_reporter: Arc<dyn ErrantRecordReporter>,
}

/// A sink task: writes records outside.
#[async_trait]
pub trait SinkTask: Send + Sync {
    async fn start(&mut self, config: &ConfigMap, ctx: SinkTaskContext) -> Result<()>;
    /// Takes records; may write them now or buffer them until `flush`.
    async fn put(&mut self, records: Vec<SinkRecord>) -> Result<()>;
    /// Everything given to `put` so far must be written when this returns
    /// `Ok`: the runtime then commits the consumer offsets.
    async fn flush(&mut self) -> Result<()>;
    async fn stop(&mut self) {}
}
