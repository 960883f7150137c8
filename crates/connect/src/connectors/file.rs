//! FileStreamSource and FileStreamSink (Kafka's classes and names).
//!
//! The source tails a file and produces one record per line (split at `\n`,
//! which is not part of the value; a line is produced once its `\n` is
//! there). Its offset is the byte position after the last line produced, so
//! a restart continues where it left off. The sink appends each record's
//! value and a `\n`, and fsyncs on every flush before offsets are committed.

use crate::error::{ConnectError, Result};
use crate::sdk::config::{ConfigDef, ConfigMap, ConfigType, Importance, Validator};
use crate::sdk::data::{Record, Schema, SchemaType, SinkRecord, SourceRecord, Value};
use crate::sdk::{
    Connector, ConnectorPlugin, ConnectorType, CopyConfigConnector, SinkTask, SinkTaskContext,
    SourceTask, SourceTaskContext,
};
use async_trait::async_trait;
use serde_json::json;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::time::Duration;

pub struct FileSourcePlugin;
pub struct FileSinkPlugin;

impl ConnectorPlugin for FileSourcePlugin {
    fn class(&self) -> &'static str {
        "org.apache.kafka.connect.file.FileStreamSourceConnector"
    }
    fn aliases(&self) -> &'static [&'static str] {
        &["FileStreamSource", "file-source"]
    }
    fn connector_type(&self) -> ConnectorType {
        ConnectorType::Source
    }
    fn config_def(&self) -> ConfigDef {
        ConfigDef::new()
            .define_with("file", ConfigType::String, None, Importance::High, "Source filename.", Validator::NonEmpty)
            .define_with("topic", ConfigType::String, None, Importance::High, "The topic to publish data to.", Validator::NonEmpty)
            .define_with("batch.size", ConfigType::Int, Some("2000"), Importance::Low, "The maximum number of records the source task can read from the file each time it is polled.", Validator::AtLeast(1.0))
    }
    fn connector(&self) -> Box<dyn Connector> {
        Box::new(CopyConfigConnector::single_task())
    }
    fn source_task(&self) -> Option<Box<dyn SourceTask>> {
        Some(Box::new(FileSourceTask::default()))
    }
    fn exactly_once_support(&self, _config: &ConfigMap) -> bool {
        // The byte position fully determines what is read next.
        true
    }
}

#[derive(Default)]
struct FileSourceTask {
    path: PathBuf,
    filename: String,
    topic: String,
    batch_size: usize,
    /// Byte position after the last complete line handed out.
    position: u64,
    /// Bytes read past `position` that do not end in `\n` yet.
    partial: Vec<u8>,
}

#[async_trait]
impl SourceTask for FileSourceTask {
    async fn start(&mut self, config: &ConfigMap, ctx: SourceTaskContext) -> Result<()> {
        let def = FileSourcePlugin.config_def();
        let config = def.parse(config)?;
        self.filename = config.string("file");
        self.path = PathBuf::from(&self.filename);
        self.topic = config.string("topic");
        self.batch_size = config.int("batch.size").max(1) as usize;
        let partition = json!({"filename": self.filename});
        let partition = partition.as_object().expect("object");
        if let Some(offset) = ctx.offsets.offset(partition).await? {
            self.position = offset.get("position").and_then(|p| p.as_u64()).unwrap_or(0);
            tracing::info!(
                file = self.filename,
                position = self.position,
                "resuming the file source"
            );
        }
        Ok(())
    }

    async fn poll(&mut self) -> Result<Vec<SourceRecord>> {
        let path = self.path.clone();
        let start = self.position + self.partial.len() as u64;
        let chunk = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
            let mut file = match std::fs::File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(e),
            };
            let length = file.metadata()?.len();
            if length <= start {
                return Ok(Vec::new());
            }
            file.seek(SeekFrom::Start(start))?;
            let mut buf = vec![0u8; ((length - start) as usize).min(1 << 20)];
            let n = file.read(&mut buf)?;
            buf.truncate(n);
            Ok(buf)
        })
        .await
        .map_err(ConnectError::failed)?
        .map_err(|e| ConnectError::retriable(format!("reading {}: {e}", self.filename)))?;
        if chunk.is_empty() && self.partial.iter().all(|&b| b != b'\n') {
            tokio::time::sleep(Duration::from_millis(200)).await;
            return Ok(Vec::new());
        }
        self.partial.extend_from_slice(&chunk);
        let mut records = Vec::new();
        let mut consumed = 0usize;
        while records.len() < self.batch_size {
            let Some(newline) = self.partial[consumed..].iter().position(|&b| b == b'\n') else {
                break;
            };
            let line = &self.partial[consumed..consumed + newline];
            consumed += newline + 1;
            let value = match std::str::from_utf8(line) {
                Ok(s) => Value::String(s.to_string()),
                Err(_) => Value::Bytes(line.to_vec()),
            };
            let schema = match value {
                Value::String(_) => SchemaType::String,
                _ => SchemaType::Bytes,
            };
            let position = self.position + consumed as u64;
            let mut record = Record::new(self.topic.clone()).with_value(value);
            record.value_schema = Some(Schema::new(schema));
            records.push(SourceRecord {
                source_partition: json!({"filename": self.filename})
                    .as_object()
                    .cloned()
                    .expect("object"),
                source_offset: json!({"position": position})
                    .as_object()
                    .cloned()
                    .expect("object"),
                record,
                tag: 0,
            });
        }
        self.partial.drain(..consumed);
        self.position += consumed as u64;
        Ok(records)
    }
}

impl ConnectorPlugin for FileSinkPlugin {
    fn class(&self) -> &'static str {
        "org.apache.kafka.connect.file.FileStreamSinkConnector"
    }
    fn aliases(&self) -> &'static [&'static str] {
        &["FileStreamSink", "file-sink"]
    }
    fn connector_type(&self) -> ConnectorType {
        ConnectorType::Sink
    }
    fn config_def(&self) -> ConfigDef {
        ConfigDef::new().define_with(
            "file",
            ConfigType::String,
            None,
            Importance::High,
            "Destination filename.",
            Validator::NonEmpty,
        )
    }
    fn connector(&self) -> Box<dyn Connector> {
        Box::new(CopyConfigConnector::per_task())
    }
    fn sink_task(&self) -> Option<Box<dyn SinkTask>> {
        Some(Box::new(FileSinkTask::default()))
    }
}

#[derive(Default)]
struct FileSinkTask {
    file: Option<std::fs::File>,
    filename: String,
    buffer: Vec<u8>,
}

#[async_trait]
impl SinkTask for FileSinkTask {
    async fn start(&mut self, config: &ConfigMap, _ctx: SinkTaskContext) -> Result<()> {
        let config = FileSinkPlugin.config_def().parse(config)?;
        self.filename = config.string("file");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.filename)
            .map_err(|e| ConnectError::io(format!("opening {}", self.filename), e))?;
        self.file = Some(file);
        Ok(())
    }

    async fn put(&mut self, records: Vec<SinkRecord>) -> Result<()> {
        for record in records {
            match &record.record.value {
                Some(Value::Bytes(b)) => self.buffer.extend_from_slice(b),
                Some(v) => self.buffer.extend_from_slice(v.to_text().as_bytes()),
                None => self.buffer.extend_from_slice(b"null"),
            }
            self.buffer.push(b'\n');
        }
        if self.buffer.len() >= 1 << 20 {
            self.write_buffer()?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        self.write_buffer()?;
        if let Some(file) = &self.file {
            file.sync_data()
                .map_err(|e| ConnectError::retriable(format!("fsync of {}: {e}", self.filename)))?;
        }
        Ok(())
    }
}

impl FileSinkTask {
    fn write_buffer(&mut self) -> Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| ConnectError::Failed("the file sink is not started".into()))?;
        file.write_all(&self.buffer)
            .map_err(|e| ConnectError::retriable(format!("writing {}: {e}", self.filename)))?;
        self.buffer.clear();
        Ok(())
    }
}
