//! The PostgreSQL sink: record values (structs or JSON objects) become rows.
//!
//! `insert.mode=upsert` with `pk.mode=record_key` keeps one row per record
//! key (`INSERT ... ON CONFLICT (pk) DO UPDATE`): the table holds the latest
//! value per key. Rows are buffered by `put` and written at `flush`, in one
//! transaction, as multi-row statements of up to `batch.size` rows.
//! `auto.create` creates a missing table from the first record's fields
//! (integers BIGINT, numbers DOUBLE PRECISION, booleans BOOLEAN, strings
//! TEXT, bytes BYTEA, nested values JSONB), `auto.evolve` adds missing
//! columns. A batch that fails on bad data is retried row by row, and the
//! rows that still fail go to the errant record reporter (the dead-letter
//! queue), or fail the task under `errors.tolerance=none`.

use crate::error::{ConnectError, Result};
use crate::sdk::config::{ConfigDef, ConfigMap, ConfigType, Importance, Validator};
use crate::sdk::data::{SinkRecord, Value};
use crate::sdk::{
    Connector, ConnectorPlugin, ConnectorType, CopyConfigConnector, SinkTask, SinkTaskContext,
};
use async_trait::async_trait;
use indexmap::IndexMap;
use std::collections::{BTreeMap, HashMap};
use tokio_postgres::{Client, NoTls};

pub struct PostgresSinkPlugin;

fn def() -> ConfigDef {
    ConfigDef::new()
        .define_with("connection.url", ConfigType::String, None, Importance::High, "PostgreSQL connection: a URL (postgresql://USER:PASSWORD@HOST:PORT/DB) or key=value pairs (host=... port=... dbname=...).", Validator::NonEmpty)
        .define("connection.user", ConfigType::String, Some(""), Importance::High, "User (overrides the URL's).")
        .define("connection.password", ConfigType::Password, Some(""), Importance::High, "Password (overrides the URL's).")
        .define_with("table.name.format", ConfigType::String, Some("${topic}"), Importance::Medium, "Table name; ${topic} is replaced by the record's topic. May be SCHEMA.TABLE.", Validator::NonEmpty)
        .define_with("insert.mode", ConfigType::String, Some("insert"), Importance::High, "insert: plain INSERT; upsert: INSERT ... ON CONFLICT (primary key) DO UPDATE.", Validator::OneOf(&["insert", "upsert"]))
        .define_with("pk.mode", ConfigType::String, Some("none"), Importance::High, "none; record_key: the key (a struct's fields, or a primitive key as the one pk.fields column); record_value: pk.fields of the value.", Validator::OneOf(&["none", "record_key", "record_value"]))
        .define("pk.fields", ConfigType::List, Some(""), Importance::Medium, "Primary key columns. A primitive key's column defaults to __connect_key.")
        .define("auto.create", ConfigType::Boolean, Some("false"), Importance::Medium, "Create a missing table from the record's fields (primary key from pk.mode/pk.fields).")
        .define("auto.evolve", ConfigType::Boolean, Some("false"), Importance::Medium, "Add columns for fields the table lacks.")
        .define("delete.enabled", ConfigType::Boolean, Some("false"), Importance::Medium, "A null value (tombstone) deletes the row with its key (needs pk.mode=record_key).")
        .define_with("batch.size", ConfigType::Int, Some("3000"), Importance::Medium, "Rows per statement.", Validator::AtLeast(1.0))
        .in_group("PostgreSQL")
}

impl ConnectorPlugin for PostgresSinkPlugin {
    fn class(&self) -> &'static str {
        "io.strom.connect.postgres.PostgresSinkConnector"
    }
    fn aliases(&self) -> &'static [&'static str] {
        &["PostgresSink", "postgres-sink", "postgresql-sink"]
    }
    fn connector_type(&self) -> ConnectorType {
        ConnectorType::Sink
    }
    fn config_def(&self) -> ConfigDef {
        def()
    }
    fn validate(&self, config: &ConfigMap) -> BTreeMap<String, Vec<String>> {
        let mut errors: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let get = |k: &str| {
            config
                .get(k)
                .map(|v| v.trim().to_ascii_lowercase())
                .unwrap_or_default()
        };
        if get("insert.mode") == "upsert" && matches!(get("pk.mode").as_str(), "" | "none") {
            errors
                .entry("pk.mode".into())
                .or_default()
                .push("insert.mode=upsert needs pk.mode record_key or record_value".into());
        }
        if get("pk.mode") == "record_value" && get("pk.fields").is_empty() {
            errors
                .entry("pk.fields".into())
                .or_default()
                .push("pk.mode=record_value needs pk.fields".into());
        }
        if get("delete.enabled") == "true" && get("pk.mode") != "record_key" {
            errors
                .entry("delete.enabled".into())
                .or_default()
                .push("delete.enabled=true needs pk.mode=record_key".into());
        }
        if let Some(url) = config.get("connection.url") {
            if let Err(e) = url.parse::<tokio_postgres::Config>() {
                errors
                    .entry("connection.url".into())
                    .or_default()
                    .push(format!(
                        "Invalid value for configuration connection.url: {e}"
                    ));
            }
        }
        errors
    }
    fn connector(&self) -> Box<dyn Connector> {
        Box::new(CopyConfigConnector::per_task())
    }
    fn sink_task(&self) -> Option<Box<dyn SinkTask>> {
        Some(Box::new(PostgresSinkTask::default()))
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Default)]
enum PkMode {
    #[default]
    None,
    RecordKey,
    RecordValue,
}

/// One pending write: a row to insert or upsert, or a key to delete, with
/// the primary key columns.
enum Op {
    Row(IndexMap<String, Value>, Vec<String>),
    Delete(IndexMap<String, Value>, Vec<String>),
}

/// Rows by (columns, primary key): each group is one statement shape.
type RowGroups<'a> = IndexMap<(Vec<String>, Vec<String>), Vec<&'a IndexMap<String, Value>>>;

#[derive(Default)]
struct PostgresSinkTask {
    pg: Option<tokio_postgres::Config>,
    client: Option<Client>,
    ctx: Option<SinkTaskContext>,
    table_format: String,
    upsert: bool,
    pk_mode: PkMode,
    pk_fields: Vec<String>,
    auto_create: bool,
    auto_evolve: bool,
    delete_enabled: bool,
    batch_size: usize,
    /// Table → pending operations (with the record, for error reports).
    pending: IndexMap<String, Vec<(Op, SinkRecord)>>,
    /// Table → column → SQL type.
    columns: HashMap<String, IndexMap<String, String>>,
}

fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

/// `schema.table` or `table`, each part quoted.
fn quote_table(name: &str) -> String {
    name.split('.').map(quote).collect::<Vec<_>>().join(".")
}

fn sql_type(value: &Value) -> &'static str {
    match value {
        Value::Bool(_) => "BOOLEAN",
        Value::Int(_) => "BIGINT",
        Value::Float(_) => "DOUBLE PRECISION",
        Value::String(_) | Value::Null => "TEXT",
        Value::Bytes(_) => "BYTEA",
        Value::Array(_) | Value::Struct(_) => "JSONB",
    }
}

/// The value as text for `CAST($n::text AS type)`; bytes as hex for decode().
fn as_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Bytes(b) => Some(b.iter().map(|x| format!("{x:02x}")).collect()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Int(i) => Some(i.to_string()),
        Value::Float(f) => Some(f.to_string()),
        other => Some(serde_json::to_string(other).unwrap_or_default()),
    }
}

fn placeholder(n: usize, ty: &str) -> String {
    if ty.eq_ignore_ascii_case("bytea") {
        format!("decode(${n}::text, 'hex')")
    } else {
        format!("CAST(${n}::text AS {ty})")
    }
}

/// Connection failures are worth retrying; bad data and SQL errors are not.
fn pg_error(context: &str, e: tokio_postgres::Error) -> ConnectError {
    let data_error = e.code().is_some_and(|c| {
        c.code().starts_with("22") || c.code().starts_with("23") || c.code().starts_with("42")
    });
    if data_error {
        ConnectError::Failed(format!("{context}: {e}"))
    } else {
        ConnectError::retriable(format!("{context}: {e}"))
    }
}

impl PostgresSinkTask {
    async fn client(&mut self) -> Result<&Client> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            let config = self.pg.clone().expect("started");
            let (client, connection) = config
                .connect(NoTls)
                .await
                .map_err(|e| ConnectError::retriable(format!("connecting to PostgreSQL: {e}")))?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::warn!(error = %e, "PostgreSQL connection ended");
                }
            });
            self.client = Some(client);
            self.columns.clear();
        }
        Ok(self.client.as_ref().expect("connected"))
    }

    /// The row (key columns, then value fields) of a record.
    fn row(&self, record: &SinkRecord) -> std::result::Result<Option<Op>, String> {
        let mut key_columns = IndexMap::new();
        if self.pk_mode == PkMode::RecordKey {
            match &record.record.key {
                None | Some(Value::Null) => {
                    return Err("the record has no key (pk.mode=record_key)".into())
                }
                Some(Value::Struct(fields)) => {
                    for (k, v) in fields {
                        if self.pk_fields.is_empty() || self.pk_fields.contains(k) {
                            key_columns.insert(k.clone(), v.clone());
                        }
                    }
                }
                Some(primitive) => {
                    let column = self
                        .pk_fields
                        .first()
                        .cloned()
                        .unwrap_or_else(|| "__connect_key".into());
                    key_columns.insert(column, primitive.clone());
                }
            }
        }
        let value = match &record.record.value {
            None | Some(Value::Null) if self.delete_enabled => {
                let pk = key_columns.keys().cloned().collect();
                return Ok(Some(Op::Delete(key_columns, pk)));
            }
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Struct(fields)) => fields,
            Some(other) => {
                return Err(format!(
                    "the record value is not a struct or JSON object: {}",
                    other.to_json()
                ))
            }
        };
        let pk: Vec<String> = match self.pk_mode {
            PkMode::None => Vec::new(),
            PkMode::RecordKey => key_columns.keys().cloned().collect(),
            PkMode::RecordValue => self.pk_fields.clone(),
        };
        let mut row = key_columns;
        for (k, v) in value {
            row.entry(k.clone()).or_insert_with(|| v.clone());
        }
        if self.pk_mode == PkMode::RecordValue {
            for pk in &self.pk_fields {
                if !row.contains_key(pk) {
                    return Err(format!("the record value has no field {pk} (pk.fields)"));
                }
            }
        }
        Ok(Some(Op::Row(row, pk)))
    }

    /// Makes sure the table exists with every column of `row`.
    async fn prepare_table(
        &mut self,
        table: &str,
        row: &IndexMap<String, Value>,
        pk: &[String],
    ) -> Result<()> {
        if !self.columns.contains_key(table) {
            let columns = self.read_columns(table).await?;
            if columns.is_empty() {
                if !self.auto_create {
                    return Err(ConnectError::Failed(format!(
                        "table {table} does not exist (set auto.create=true to create it)"
                    )));
                }
                let mut defs: Vec<String> = row
                    .iter()
                    .map(|(k, v)| {
                        let not_null = if pk.contains(k) { " NOT NULL" } else { "" };
                        format!("{} {}{not_null}", quote(k), sql_type(v))
                    })
                    .collect();
                if !pk.is_empty() {
                    defs.push(format!(
                        "PRIMARY KEY ({})",
                        pk.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ")
                    ));
                }
                let sql = format!(
                    "CREATE TABLE IF NOT EXISTS {} ({})",
                    quote_table(table),
                    defs.join(", ")
                );
                self.client()
                    .await?
                    .batch_execute(&sql)
                    .await
                    .map_err(|e| pg_error("creating the table", e))?;
                tracing::info!(table, "created table");
                let columns = self.read_columns(table).await?;
                self.columns.insert(table.to_string(), columns);
            } else {
                self.columns.insert(table.to_string(), columns);
            }
        }
        let missing: Vec<(String, &'static str)> = row
            .iter()
            .filter(|(k, _)| !self.columns[table].contains_key(*k))
            .map(|(k, v)| (k.clone(), sql_type(v)))
            .collect();
        if !missing.is_empty() {
            if !self.auto_evolve {
                return Err(ConnectError::Failed(format!(
                    "table {table} has no column {} (set auto.evolve=true to add columns)",
                    missing
                        .iter()
                        .map(|(c, _)| c.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            for (column, ty) in missing {
                let sql = format!(
                    "ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {ty}",
                    quote_table(table),
                    quote(&column)
                );
                self.client()
                    .await?
                    .batch_execute(&sql)
                    .await
                    .map_err(|e| pg_error("adding a column", e))?;
            }
            let columns = self.read_columns(table).await?;
            self.columns.insert(table.to_string(), columns);
        }
        Ok(())
    }

    async fn read_columns(&mut self, table: &str) -> Result<IndexMap<String, String>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a \
                 WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                &[&quote_table(table)],
            )
            .await
            .map_err(|e| pg_error("reading the table's columns", e))?;
        Ok(rows
            .iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
            .collect())
    }

    /// One statement for rows of the same columns (upsert or insert).
    fn upsert_sql(&self, table: &str, columns: &[String], pk: &[String], rows: usize) -> String {
        let empty = IndexMap::new();
        let types = self.columns.get(table).unwrap_or(&empty);
        let mut values = Vec::with_capacity(rows);
        let mut n = 0;
        for _ in 0..rows {
            let cells: Vec<String> = columns
                .iter()
                .map(|c| {
                    n += 1;
                    placeholder(n, types.get(c).map_or("text", String::as_str))
                })
                .collect();
            values.push(format!("({})", cells.join(", ")));
        }
        let mut sql = format!(
            "INSERT INTO {} ({}) VALUES {}",
            quote_table(table),
            columns
                .iter()
                .map(|c| quote(c))
                .collect::<Vec<_>>()
                .join(", "),
            values.join(", ")
        );
        if self.upsert && !pk.is_empty() {
            let updates: Vec<String> = columns
                .iter()
                .filter(|c| !pk.contains(c))
                .map(|c| format!("{} = EXCLUDED.{}", quote(c), quote(c)))
                .collect();
            let action = if updates.is_empty() {
                "NOTHING".to_string()
            } else {
                format!("UPDATE SET {}", updates.join(", "))
            };
            sql.push_str(&format!(
                " ON CONFLICT ({}) DO {action}",
                pk.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ")
            ));
        }
        sql
    }

    /// Writes one table's operations (deduplicated by key for upserts).
    async fn write_table(
        &mut self,
        table: &str,
        ops: &[(Op, SinkRecord)],
        transaction: bool,
    ) -> Result<()> {
        let mut groups: RowGroups<'_> = IndexMap::new();
        let mut deletes = Vec::new();
        let mut latest: IndexMap<String, usize> = IndexMap::new();
        for (i, (op, _)) in ops.iter().enumerate() {
            let (row, pk) = match op {
                Op::Row(r, pk) | Op::Delete(r, pk) => (r, pk),
            };
            if (self.upsert && !pk.is_empty()) || matches!(op, Op::Delete(..)) {
                let key = serde_json::to_string(
                    &pk.iter()
                        .map(|c| row.get(c).map(Value::to_json))
                        .collect::<Vec<_>>(),
                )
                .unwrap_or_default();
                latest.insert(key, i);
            } else {
                latest.insert(format!("#{i}"), i);
            }
        }
        let mut chosen: Vec<usize> = latest.into_values().collect();
        chosen.sort_unstable();
        for i in chosen {
            match &ops[i].0 {
                Op::Row(row, pk) => groups
                    .entry((row.keys().cloned().collect(), pk.clone()))
                    .or_default()
                    .push(row),
                Op::Delete(key, _) => deletes.push(key),
            }
        }
        let client = self.client.as_ref().expect("connected");
        if transaction {
            client
                .batch_execute("BEGIN")
                .await
                .map_err(|e| pg_error("BEGIN", e))?;
        }
        let result: Result<()> = async {
            for key in deletes {
                let conditions: Vec<String> = key
                    .keys()
                    .enumerate()
                    .map(|(n, c)| {
                        let ty = self
                            .columns
                            .get(table)
                            .and_then(|t| t.get(c))
                            .map_or("text", String::as_str);
                        format!("{} = {}", quote(c), placeholder(n + 1, ty))
                    })
                    .collect();
                let params: Vec<Option<String>> = key.values().map(as_text).collect();
                let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
                    params.iter().map(|p| p as _).collect();
                let sql = format!(
                    "DELETE FROM {} WHERE {}",
                    quote_table(table),
                    conditions.join(" AND ")
                );
                client
                    .execute(&sql, &refs)
                    .await
                    .map_err(|e| pg_error("DELETE", e))?;
            }
            for ((columns, pk), rows) in &groups {
                let per_statement = self.batch_size.min(60_000 / columns.len().max(1)).max(1);
                for chunk in rows.chunks(per_statement) {
                    let sql = self.upsert_sql(table, columns, pk, chunk.len());
                    let params: Vec<Option<String>> = chunk
                        .iter()
                        .flat_map(|row| row.values().map(as_text))
                        .collect();
                    let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
                        params.iter().map(|p| p as _).collect();
                    client
                        .execute(&sql, &refs)
                        .await
                        .map_err(|e| pg_error("INSERT", e))?;
                }
            }
            Ok(())
        }
        .await;
        if transaction {
            let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
            let closing = client
                .batch_execute(end)
                .await
                .map_err(|e| pg_error(end, e));
            result?;
            return closing;
        }
        result
    }
}

#[async_trait]
impl SinkTask for PostgresSinkTask {
    async fn start(&mut self, config: &ConfigMap, ctx: SinkTaskContext) -> Result<()> {
        let config = def().parse(config)?;
        let mut pg: tokio_postgres::Config = config
            .string("connection.url")
            .parse()
            .map_err(|e| ConnectError::BadRequest(format!("connection.url: {e}")))?;
        if let Some(user) = config.optional_string("connection.user") {
            pg.user(&user);
        }
        if let Some(password) = config.optional_string("connection.password") {
            pg.password(password);
        }
        pg.application_name("strom-connect");
        self.pg = Some(pg);
        self.table_format = config.string("table.name.format");
        self.upsert = config.string("insert.mode").eq_ignore_ascii_case("upsert");
        self.pk_mode = match config.string("pk.mode").to_ascii_lowercase().as_str() {
            "record_key" => PkMode::RecordKey,
            "record_value" => PkMode::RecordValue,
            _ => PkMode::None,
        };
        self.pk_fields = config.list("pk.fields");
        self.auto_create = config.bool("auto.create");
        self.auto_evolve = config.bool("auto.evolve");
        self.delete_enabled = config.bool("delete.enabled");
        self.batch_size = config.int("batch.size").max(1) as usize;
        self.ctx = Some(ctx);
        self.client().await?;
        Ok(())
    }

    async fn put(&mut self, records: Vec<SinkRecord>) -> Result<()> {
        for record in records {
            let table = self.table_format.replace("${topic}", &record.record.topic);
            match self.row(&record) {
                Ok(Some(op)) => self.pending.entry(table).or_default().push((op, record)),
                Ok(None) => {}
                Err(problem) => {
                    let ctx = self.ctx.clone().expect("started");
                    ctx.errant_record_reporter.report(&record, &problem).await?;
                }
            }
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        let pending = std::mem::take(&mut self.pending);
        for (table, ops) in pending {
            self.client().await?;
            for (op, _) in &ops {
                if let Op::Row(row, pk) = op {
                    self.prepare_table(&table, row, pk).await?;
                }
            }
            match self.write_table(&table, &ops, true).await {
                Ok(()) => {}
                Err(e) if e.is_retriable() => {
                    self.client = None;
                    return Err(e);
                }
                Err(batch_error) => {
                    // Find the bad rows: one at a time, each its own statement.
                    tracing::warn!(table, error = %batch_error, "batch failed; writing row by row");
                    let ctx = self.ctx.clone().expect("started");
                    for (op, record) in ops {
                        let single = [(op, record)];
                        match self.write_table(&table, &single, false).await {
                            Ok(()) => {}
                            Err(e) if e.is_retriable() => return Err(e),
                            Err(e) => {
                                ctx.errant_record_reporter
                                    .report(&single[0].1, &e.to_string())
                                    .await?
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }
}
