//! Field transforms: InsertField, ReplaceField, MaskField, ValueToKey,
//! ExtractField. They act on struct (or JSON object) keys and values; a
//! null value (a tombstone) passes through unchanged, as in Kafka.

use super::{Side, TransformPlugin, Transformation};
use crate::error::{ConnectError, Result};
use crate::sdk::config::{Config, ConfigDef, ConfigType, Importance};
use crate::sdk::data::{Record, Schema, SchemaType, Value};
use indexmap::IndexMap;
use std::collections::BTreeMap;

fn side_value(record: &Record, side: Side) -> (&Option<Value>, &Option<Schema>) {
    match side {
        Side::Key => (&record.key, &record.key_schema),
        Side::Value => (&record.value, &record.value_schema),
    }
}

fn set_side(record: &mut Record, side: Side, value: Option<Value>, schema: Option<Schema>) {
    match side {
        Side::Key => {
            record.key = value;
            record.key_schema = schema;
        }
        Side::Value => {
            record.value = value;
            record.value_schema = schema;
        }
    }
}

fn require_struct<'a>(
    name: &str,
    value: &'a Value,
    side: Side,
) -> Result<&'a IndexMap<String, Value>> {
    value.as_struct().ok_or_else(|| {
        ConnectError::Transform(format!(
            "{name}: only struct or map {} values are supported, got {}",
            if side == Side::Key { "key" } else { "record" },
            value.to_json()
        ))
    })
}

/// A struct schema for `fields`, keeping the field schemas of `old` where a
/// field kept its name (or was renamed from `renamed_from`).
fn reshape(
    old: &Option<Schema>,
    fields: &IndexMap<String, Value>,
    renamed_from: &BTreeMap<String, String>,
) -> Option<Schema> {
    let old = old.as_ref()?;
    let mut schema = Schema::new(SchemaType::Struct);
    schema.optional = old.optional;
    schema.name = old.name.clone();
    for (name, value) in fields {
        let source = renamed_from.get(name).unwrap_or(name);
        let field_schema = old
            .field(source)
            .cloned()
            .unwrap_or_else(|| Schema::infer(value));
        schema.fields.push((name.clone(), field_schema));
    }
    Some(schema)
}

// --- InsertField ---------------------------------------------------------

struct InsertField {
    side: Side,
    topic: Option<(String, bool)>,
    partition: Option<(String, bool)>,
    offset: Option<(String, bool)>,
    timestamp: Option<(String, bool)>,
    static_field: Option<(String, bool)>,
    static_value: String,
}

/// `name!` = required, `name?` = optional (the default), as in Kafka.
fn field_spec(config: &Config, key: &str) -> Option<(String, bool)> {
    let raw = config.optional_string(key)?;
    Some(if let Some(name) = raw.strip_suffix('!') {
        (name.to_string(), true)
    } else if let Some(name) = raw.strip_suffix('?') {
        (name.to_string(), false)
    } else {
        (raw, false)
    })
}

pub(super) fn insert_field() -> TransformPlugin {
    TransformPlugin {
        name: "InsertField",
        sided: true,
        config_def: || {
            ConfigDef::new()
                .define("topic.field", ConfigType::String, Some(""), Importance::Medium, "Field name for the Kafka topic. Suffix with ! to make it required, ? to keep it optional (the default).")
                .define("partition.field", ConfigType::String, Some(""), Importance::Medium, "Field name for the Kafka partition.")
                .define("offset.field", ConfigType::String, Some(""), Importance::Medium, "Field name for the Kafka offset (sink connectors only).")
                .define("timestamp.field", ConfigType::String, Some(""), Importance::Medium, "Field name for the record timestamp.")
                .define("static.field", ConfigType::String, Some(""), Importance::Medium, "Field name for a static data field.")
                .define("static.value", ConfigType::String, Some(""), Importance::Medium, "Static field value, if a field name is configured.")
        },
        build: |side, config| {
            Ok(Box::new(InsertField {
                side,
                topic: field_spec(config, "topic.field"),
                partition: field_spec(config, "partition.field"),
                offset: field_spec(config, "offset.field"),
                timestamp: field_spec(config, "timestamp.field"),
                static_field: field_spec(config, "static.field"),
                static_value: config.string("static.value"),
            }))
        },
    }
}

impl Transformation for InsertField {
    fn apply(&self, mut record: Record, offset: Option<i64>) -> Result<Option<Record>> {
        let (value, schema) = side_value(&record, self.side);
        let Some(value) = value else {
            return Ok(Some(record));
        };
        let mut fields = require_struct("InsertField", value, self.side)?.clone();
        let mut put = |spec: &Option<(String, bool)>, v: Option<Value>| -> Result<()> {
            if let Some((name, required)) = spec {
                match v {
                    Some(v) => {
                        fields.insert(name.clone(), v);
                    }
                    None if *required => {
                        return Err(ConnectError::Transform(format!(
                            "InsertField: required field {name} has no value for this record"
                        )))
                    }
                    None => {
                        fields.insert(name.clone(), Value::Null);
                    }
                }
            }
            Ok(())
        };
        put(&self.topic, Some(Value::String(record.topic.clone())))?;
        put(
            &self.partition,
            record.partition.map(|p| Value::Int(p.into())),
        )?;
        put(&self.offset, offset.map(Value::Int))?;
        put(&self.timestamp, record.timestamp.map(Value::Int))?;
        put(
            &self.static_field,
            Some(Value::String(self.static_value.clone())),
        )?;
        let schema = reshape(schema, &fields, &BTreeMap::new());
        set_side(&mut record, self.side, Some(Value::Struct(fields)), schema);
        Ok(Some(record))
    }
}

// --- ReplaceField --------------------------------------------------------

struct ReplaceField {
    side: Side,
    exclude: Vec<String>,
    include: Vec<String>,
    renames: Vec<(String, String)>,
}

pub(super) fn replace_field() -> TransformPlugin {
    TransformPlugin {
        name: "ReplaceField",
        sided: true,
        config_def: || {
            ConfigDef::new()
                .define(
                    "exclude",
                    ConfigType::List,
                    Some(""),
                    Importance::Medium,
                    "Fields to exclude. Takes precedence over include.",
                )
                .define(
                    "include",
                    ConfigType::List,
                    Some(""),
                    Importance::Medium,
                    "Fields to include; if set, only these are kept.",
                )
                .define(
                    "blacklist",
                    ConfigType::List,
                    Some(""),
                    Importance::Low,
                    "Deprecated alias of exclude.",
                )
                .define(
                    "whitelist",
                    ConfigType::List,
                    Some(""),
                    Importance::Low,
                    "Deprecated alias of include.",
                )
                .define_with(
                    "renames",
                    ConfigType::List,
                    Some(""),
                    Importance::Medium,
                    "Field rename mappings, old:new.",
                    crate::sdk::config::Validator::Custom(|v| {
                        for pair in crate::sdk::config::split_list(v) {
                            match pair.split_once(':') {
                                Some((a, b)) if !a.is_empty() && !b.is_empty() => {}
                                _ => {
                                    return Err(format!(
                                        "Invalid rename mapping: {pair} (expected old:new)"
                                    ))
                                }
                            }
                        }
                        Ok(())
                    }),
                )
        },
        build: |side, config| {
            let mut exclude = config.list("exclude");
            exclude.extend(config.list("blacklist"));
            let mut include = config.list("include");
            include.extend(config.list("whitelist"));
            let renames = config
                .list("renames")
                .iter()
                .filter_map(|p| p.split_once(':'))
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect();
            Ok(Box::new(ReplaceField {
                side,
                exclude,
                include,
                renames,
            }))
        },
    }
}

impl Transformation for ReplaceField {
    fn apply(&self, mut record: Record, _offset: Option<i64>) -> Result<Option<Record>> {
        let (value, schema) = side_value(&record, self.side);
        let Some(value) = value else {
            return Ok(Some(record));
        };
        let fields = require_struct("ReplaceField", value, self.side)?;
        let mut out = IndexMap::new();
        let mut renamed_from = BTreeMap::new();
        for (name, v) in fields {
            if self.exclude.contains(name)
                || (!self.include.is_empty() && !self.include.contains(name))
            {
                continue;
            }
            let new_name = self
                .renames
                .iter()
                .find(|(old, _)| old == name)
                .map(|(_, new)| new.clone())
                .unwrap_or_else(|| name.clone());
            renamed_from.insert(new_name.clone(), name.clone());
            out.insert(new_name, v.clone());
        }
        let schema = reshape(schema, &out, &renamed_from);
        set_side(&mut record, self.side, Some(Value::Struct(out)), schema);
        Ok(Some(record))
    }
}

// --- MaskField -----------------------------------------------------------

struct MaskField {
    side: Side,
    fields: Vec<String>,
    replacement: Option<String>,
}

pub(super) fn mask_field() -> TransformPlugin {
    TransformPlugin {
        name: "MaskField",
        sided: true,
        config_def: || {
            ConfigDef::new()
                .define_with("fields", ConfigType::List, None, Importance::High, "Names of fields to mask.", crate::sdk::config::Validator::NonEmpty)
                .define("replacement", ConfigType::String, Some(""), Importance::Low, "Custom replacement for masked values (strings and numbers); empty = the type's zero value.")
        },
        build: |side, config| {
            Ok(Box::new(MaskField {
                side,
                fields: config.list("fields"),
                replacement: config.optional_string("replacement"),
            }))
        },
    }
}

impl MaskField {
    fn mask(&self, value: &Value) -> Result<Value> {
        Ok(match (value, &self.replacement) {
            (Value::String(_), Some(r)) => Value::String(r.clone()),
            (Value::String(_), None) => Value::String(String::new()),
            (Value::Int(_), Some(r)) => Value::Int(r.trim().parse().map_err(|_| {
                ConnectError::Transform(format!("MaskField: replacement {r} is not an integer"))
            })?),
            (Value::Float(_), Some(r)) => Value::Float(r.trim().parse().map_err(|_| {
                ConnectError::Transform(format!("MaskField: replacement {r} is not a number"))
            })?),
            (Value::Int(_), None) => Value::Int(0),
            (Value::Float(_), None) => Value::Float(0.0),
            (Value::Bool(_), _) => Value::Bool(false),
            (Value::Bytes(_), _) => Value::Bytes(Vec::new()),
            (Value::Array(_), _) => Value::Array(Vec::new()),
            (Value::Struct(_), _) => Value::Struct(IndexMap::new()),
            (Value::Null, _) => Value::Null,
        })
    }
}

impl Transformation for MaskField {
    fn apply(&self, mut record: Record, _offset: Option<i64>) -> Result<Option<Record>> {
        let (value, schema) = side_value(&record, self.side);
        let Some(value) = value else {
            return Ok(Some(record));
        };
        let mut fields = require_struct("MaskField", value, self.side)?.clone();
        for name in &self.fields {
            if let Some(v) = fields.get_mut(name) {
                *v = self.mask(v)?;
            }
        }
        let schema = schema.clone();
        set_side(&mut record, self.side, Some(Value::Struct(fields)), schema);
        Ok(Some(record))
    }
}

// --- ValueToKey ----------------------------------------------------------

struct ValueToKey {
    fields: Vec<String>,
}

pub(super) fn value_to_key() -> TransformPlugin {
    TransformPlugin {
        name: "ValueToKey",
        sided: false,
        config_def: || {
            ConfigDef::new().define_with(
                "fields",
                ConfigType::List,
                None,
                Importance::High,
                "Field names on the record value to extract as the record key.",
                crate::sdk::config::Validator::NonEmpty,
            )
        },
        build: |_, config| {
            Ok(Box::new(ValueToKey {
                fields: config.list("fields"),
            }))
        },
    }
}

impl Transformation for ValueToKey {
    fn apply(&self, mut record: Record, _offset: Option<i64>) -> Result<Option<Record>> {
        let Some(value) = &record.value else {
            return Ok(Some(record));
        };
        let fields = require_struct("ValueToKey", value, Side::Value)?;
        let mut key = IndexMap::new();
        for name in &self.fields {
            let v = fields.get(name).ok_or_else(|| {
                ConnectError::Transform(format!("ValueToKey: the value has no field {name}"))
            })?;
            key.insert(name.clone(), v.clone());
        }
        record.key_schema = reshape(&record.value_schema, &key, &BTreeMap::new());
        record.key = Some(Value::Struct(key));
        Ok(Some(record))
    }
}

// --- ExtractField --------------------------------------------------------

struct ExtractField {
    side: Side,
    field: String,
}

pub(super) fn extract_field() -> TransformPlugin {
    TransformPlugin {
        name: "ExtractField",
        sided: true,
        config_def: || {
            ConfigDef::new().define_with(
                "field",
                ConfigType::String,
                None,
                Importance::Medium,
                "Field name to extract.",
                crate::sdk::config::Validator::NonEmpty,
            )
        },
        build: |side, config| {
            Ok(Box::new(ExtractField {
                side,
                field: config.string("field"),
            }))
        },
    }
}

impl Transformation for ExtractField {
    fn apply(&self, mut record: Record, _offset: Option<i64>) -> Result<Option<Record>> {
        let (value, schema) = side_value(&record, self.side);
        let Some(value) = value else {
            return Ok(Some(record));
        };
        let fields = require_struct("ExtractField", value, self.side)?;
        let extracted = fields.get(&self.field).cloned();
        let schema = schema.as_ref().and_then(|s| s.field(&self.field).cloned());
        let extracted = extracted.filter(|v| *v != Value::Null);
        set_side(&mut record, self.side, extracted, schema);
        Ok(Some(record))
    }
}
