//! The record model: schema-optional values (Kafka Connect's `Schema` and
//! `Struct`, simplified), headers, and source and sink records.

use indexmap::IndexMap;
use serde_json::Map as JsonMap;

/// A value in a record's key, value or a field of either.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
    Bytes(Vec<u8>),
    Array(Vec<Value>),
    /// A struct or a map with string keys, fields in order.
    Struct(IndexMap<String, Value>),
}

/// Kafka Connect's schema types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchemaType {
    Int8,
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    Boolean,
    String,
    Bytes,
    Array,
    Map,
    Struct,
}

impl SchemaType {
    pub fn name(self) -> &'static str {
        match self {
            SchemaType::Int8 => "int8",
            SchemaType::Int16 => "int16",
            SchemaType::Int32 => "int32",
            SchemaType::Int64 => "int64",
            SchemaType::Float32 => "float",
            SchemaType::Float64 => "double",
            SchemaType::Boolean => "boolean",
            SchemaType::String => "string",
            SchemaType::Bytes => "bytes",
            SchemaType::Array => "array",
            SchemaType::Map => "map",
            SchemaType::Struct => "struct",
        }
    }

    pub fn parse(name: &str) -> Option<SchemaType> {
        Some(match name {
            "int8" => SchemaType::Int8,
            "int16" => SchemaType::Int16,
            "int32" => SchemaType::Int32,
            "int64" => SchemaType::Int64,
            "float" | "float32" => SchemaType::Float32,
            "double" | "float64" => SchemaType::Float64,
            "boolean" => SchemaType::Boolean,
            "string" => SchemaType::String,
            "bytes" => SchemaType::Bytes,
            "array" => SchemaType::Array,
            "map" => SchemaType::Map,
            "struct" => SchemaType::Struct,
            _ => return None,
        })
    }
}

/// A schema: a type, optionality, a name, and for structs their fields, for
/// arrays their items, for maps their key and value schemas.
#[derive(Clone, Debug, PartialEq)]
pub struct Schema {
    pub ty: SchemaType,
    pub optional: bool,
    pub name: Option<String>,
    pub version: Option<i64>,
    pub fields: Vec<(String, Schema)>,
    pub items: Option<Box<Schema>>,
    pub keys: Option<Box<Schema>>,
    pub values: Option<Box<Schema>>,
}

impl Schema {
    pub fn new(ty: SchemaType) -> Schema {
        Schema {
            ty,
            optional: false,
            name: None,
            version: None,
            fields: Vec::new(),
            items: None,
            keys: None,
            values: None,
        }
    }

    pub fn optional(mut self) -> Schema {
        self.optional = true;
        self
    }

    pub fn field(&self, name: &str) -> Option<&Schema> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, s)| s)
    }

    /// A schema that describes `value` (structs field by field, arrays by
    /// their first element). Every inferred schema is optional.
    pub fn infer(value: &Value) -> Schema {
        let schema = match value {
            Value::Null => Schema::new(SchemaType::String),
            Value::Bool(_) => Schema::new(SchemaType::Boolean),
            Value::Int(_) => Schema::new(SchemaType::Int64),
            Value::Float(_) => Schema::new(SchemaType::Float64),
            Value::String(_) => Schema::new(SchemaType::String),
            Value::Bytes(_) => Schema::new(SchemaType::Bytes),
            Value::Array(items) => {
                let mut s = Schema::new(SchemaType::Array);
                s.items =
                    Some(Box::new(items.first().map(Schema::infer).unwrap_or_else(
                        || Schema::new(SchemaType::String).optional(),
                    )));
                s
            }
            Value::Struct(fields) => {
                let mut s = Schema::new(SchemaType::Struct);
                s.fields = fields
                    .iter()
                    .map(|(name, v)| (name.clone(), Schema::infer(v)))
                    .collect();
                s
            }
        };
        schema.optional()
    }
}

impl Value {
    pub fn as_struct(&self) -> Option<&IndexMap<String, Value>> {
        match self {
            Value::Struct(fields) => Some(fields),
            _ => None,
        }
    }

    pub fn as_struct_mut(&mut self) -> Option<&mut IndexMap<String, Value>> {
        match self {
            Value::Struct(fields) => Some(fields),
            _ => None,
        }
    }

    /// The value as JSON, bytes as base64 (Kafka's JsonConverter does the same).
    pub fn to_json(&self) -> serde_json::Value {
        use base64::Engine as _;
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Int(i) => serde_json::Value::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Value::String(s) => serde_json::Value::String(s.clone()),
            Value::Bytes(b) => {
                serde_json::Value::String(base64::engine::general_purpose::STANDARD.encode(b))
            }
            Value::Array(items) => {
                serde_json::Value::Array(items.iter().map(Value::to_json).collect())
            }
            Value::Struct(fields) => serde_json::Value::Object(
                fields
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json()))
                    .collect::<JsonMap<_, _>>(),
            ),
        }
    }

    /// A JSON document as a value (objects become structs).
    pub fn from_json(json: &serde_json::Value) -> Value {
        match json {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            serde_json::Value::String(s) => Value::String(s.clone()),
            serde_json::Value::Array(items) => {
                Value::Array(items.iter().map(Value::from_json).collect())
            }
            serde_json::Value::Object(fields) => Value::Struct(
                fields
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::from_json(v)))
                    .collect(),
            ),
        }
    }

    /// A short textual form: strings as they are, bytes as UTF-8 (lossy),
    /// everything else as JSON.
    pub fn to_text(&self) -> String {
        match self {
            Value::String(s) => s.clone(),
            Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
            Value::Null => String::new(),
            other => other.to_json().to_string(),
        }
    }

    /// The value as bytes where it has a natural byte form (bytes, strings).
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            Value::String(s) => Some(s.as_bytes()),
            _ => None,
        }
    }
}

impl serde::Serialize for Value {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use base64::Engine as _;
        use serde::ser::{SerializeMap, SerializeSeq};
        match self {
            Value::Null => serializer.serialize_unit(),
            Value::Bool(b) => serializer.serialize_bool(*b),
            Value::Int(i) => serializer.serialize_i64(*i),
            Value::Float(f) if f.is_finite() => serializer.serialize_f64(*f),
            Value::Float(_) => serializer.serialize_unit(),
            Value::String(s) => serializer.serialize_str(s),
            Value::Bytes(b) => {
                serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(b))
            }
            Value::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Value::Struct(fields) => {
                let mut map = serializer.serialize_map(Some(fields.len()))?;
                for (k, v) in fields {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

/// Parses JSON keeping the order of object fields.
impl<'de> serde::Deserialize<'de> for Value {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Value, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Value;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_unit<E>(self) -> Result<Value, E> {
                Ok(Value::Null)
            }
            fn visit_none<E>(self) -> Result<Value, E> {
                Ok(Value::Null)
            }
            fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
                serde::Deserialize::deserialize(d)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
                Ok(Value::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
                Ok(Value::Int(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
                Ok(i64::try_from(v)
                    .map(Value::Int)
                    .unwrap_or(Value::Float(v as f64)))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
                Ok(Value::Float(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Value, E> {
                Ok(Value::String(v.to_string()))
            }
            fn visit_string<E>(self, v: String) -> Result<Value, E> {
                Ok(Value::String(v))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Value, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Value::Array(items))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Value, A::Error> {
                let mut fields = IndexMap::new();
                while let Some((k, v)) = map.next_entry::<String, Value>()? {
                    fields.insert(k, v);
                }
                Ok(Value::Struct(fields))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// A record header: a key and an optional raw value.
#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    pub key: String,
    pub value: Option<Vec<u8>>,
}

/// What source and sink records share and what transforms act on.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Record {
    pub topic: String,
    /// The Kafka partition: set for sink records, optional for source records
    /// (`None` = the producer's partitioner picks by key).
    pub partition: Option<i32>,
    pub key_schema: Option<Schema>,
    /// `None` = a null key.
    pub key: Option<Value>,
    pub value_schema: Option<Schema>,
    /// `None` = a null value (a tombstone).
    pub value: Option<Value>,
    /// Milliseconds since the epoch.
    pub timestamp: Option<i64>,
    pub headers: Vec<Header>,
}

impl Record {
    pub fn new(topic: impl Into<String>) -> Record {
        Record {
            topic: topic.into(),
            ..Record::default()
        }
    }

    pub fn with_key(mut self, key: Value) -> Record {
        self.key = Some(key);
        self
    }

    pub fn with_value(mut self, value: Value) -> Record {
        self.value = Some(value);
        self
    }

    pub fn header(&self, key: &str) -> Option<&Header> {
        self.headers.iter().rev().find(|h| h.key == key)
    }
}

/// A record a source task produced. `source_partition` and `source_offset`
/// are the task's own position (e.g. a file name and a byte position);
/// the runtime stores the latest offset per partition once Kafka has the
/// record, and gives it back on restart.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct SourceRecord {
    pub source_partition: JsonMap<String, serde_json::Value>,
    pub source_offset: JsonMap<String, serde_json::Value>,
    pub record: Record,
    /// Opaque to the runtime: the task's own handle for `commit_record`.
    pub tag: u64,
}

/// A record given to a sink task, with its position in Kafka.
#[derive(Clone, Debug, PartialEq)]
pub struct SinkRecord {
    pub record: Record,
    pub kafka_offset: i64,
    /// The raw key and value as read from Kafka, for the dead-letter queue.
    pub original_key: Option<Vec<u8>>,
    pub original_value: Option<Vec<u8>>,
    /// The topic and partition as read from Kafka (before any transform).
    pub original_topic: String,
    pub original_partition: i32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trips_through_values() {
        let json: serde_json::Value =
            serde_json::from_str(r#"{"a":1,"b":[true,null],"c":{"d":"x","e":2.5}}"#).unwrap();
        assert_eq!(Value::from_json(&json).to_json(), json);
    }

    #[test]
    fn inferred_struct_schema_names_fields_in_order() {
        let value: Value = serde_json::from_str(r#"{"z": 1, "a": "s"}"#).unwrap();
        let schema = Schema::infer(&value);
        let names: Vec<&str> = schema.fields.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, vec!["z", "a"]);
        assert_eq!(schema.field("z").unwrap().ty, SchemaType::Int64);
    }
}
