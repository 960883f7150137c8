//! Converters between record keys/values and bytes in Kafka: JSON (with or
//! without Kafka Connect's `{"schema": ..., "payload": ...}` envelope),
//! string and bytes. Named by Kafka's class names or short aliases.

use super::config::ConfigMap;
use super::data::{Schema, SchemaType, Value};
use crate::error::{ConnectError, Result};
use base64::Engine as _;
use indexmap::IndexMap;

/// Turns values into bytes for Kafka and back (Kafka's `fromConnectData` and
/// `toConnectData`, hence the names).
#[allow(clippy::wrong_self_convention)]
pub trait Converter: Send + Sync {
    /// `None` in, `None` out (a null key or tombstone).
    fn from_connect(
        &self,
        topic: &str,
        schema: Option<&Schema>,
        value: Option<&Value>,
    ) -> Result<Option<Vec<u8>>>;

    fn to_connect(
        &self,
        topic: &str,
        bytes: Option<&[u8]>,
    ) -> Result<(Option<Schema>, Option<Value>)>;
}

/// The converter classes this runtime knows, with their aliases.
pub const CONVERTERS: &[(&str, &[&str])] = &[
    (
        "org.apache.kafka.connect.json.JsonConverter",
        &["JsonConverter", "json"],
    ),
    (
        "org.apache.kafka.connect.storage.StringConverter",
        &["StringConverter", "string"],
    ),
    (
        "org.apache.kafka.connect.converters.ByteArrayConverter",
        &["ByteArrayConverter", "bytes"],
    ),
];

/// Builds a converter from its class name and its own settings (the
/// `key.converter.`/`value.converter.` prefix already removed).
pub fn converter(class: &str, settings: &ConfigMap, is_key: bool) -> Result<Box<dyn Converter>> {
    let canonical = canonical_converter(class).ok_or_else(|| {
        ConnectError::BadRequest(format!(
            "unknown converter {class}; known: {}",
            CONVERTERS
                .iter()
                .map(|(c, _)| *c)
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    Ok(match canonical {
        "org.apache.kafka.connect.json.JsonConverter" => {
            let schemas = settings
                .get("schemas.enable")
                .map(|v| v.trim().eq_ignore_ascii_case("true"))
                .unwrap_or(true);
            Box::new(JsonConverter {
                schemas_enable: schemas,
            })
        }
        "org.apache.kafka.connect.storage.StringConverter" => Box::new(StringConverter {
            encoding_ok: settings
                .get(if is_key {
                    "key.converter.encoding"
                } else {
                    "encoding"
                })
                .is_none_or(|e| e.eq_ignore_ascii_case("utf8") || e.eq_ignore_ascii_case("utf-8")),
        }),
        _ => Box::new(ByteArrayConverter),
    })
}

/// The canonical class name of a converter class or alias.
pub fn canonical_converter(class: &str) -> Option<&'static str> {
    CONVERTERS
        .iter()
        .find(|(c, aliases)| *c == class || aliases.iter().any(|a| a.eq_ignore_ascii_case(class)))
        .map(|(c, _)| *c)
}

/// Kafka Connect's JsonConverter.
pub struct JsonConverter {
    pub schemas_enable: bool,
}

impl Converter for JsonConverter {
    fn from_connect(
        &self,
        _topic: &str,
        schema: Option<&Schema>,
        value: Option<&Value>,
    ) -> Result<Option<Vec<u8>>> {
        if !self.schemas_enable {
            return match value {
                None => Ok(None),
                Some(v) => serde_json::to_vec(v)
                    .map(Some)
                    .map_err(|e| ConnectError::Conversion(e.to_string())),
            };
        }
        let inferred;
        let schema = match (schema, value) {
            (Some(s), _) => Some(s),
            (None, Some(v)) => {
                inferred = Schema::infer(v);
                Some(&inferred)
            }
            (None, None) => None,
        };
        let mut envelope = IndexMap::new();
        envelope.insert(
            "schema".to_string(),
            schema.map(schema_to_json).unwrap_or(Value::Null),
        );
        envelope.insert("payload".to_string(), value.cloned().unwrap_or(Value::Null));
        let envelope = Value::Struct(envelope);
        if value.is_none() && schema.is_none() {
            return Ok(None);
        }
        serde_json::to_vec(&envelope)
            .map(Some)
            .map_err(|e| ConnectError::Conversion(e.to_string()))
    }

    fn to_connect(
        &self,
        _topic: &str,
        bytes: Option<&[u8]>,
    ) -> Result<(Option<Schema>, Option<Value>)> {
        let Some(bytes) = bytes else {
            return Ok((None, None));
        };
        let value: Value = serde_json::from_slice(bytes).map_err(|e| {
            ConnectError::Conversion(format!(
                "Converting byte[] to Kafka Connect data failed due to serialization error: {e}"
            ))
        })?;
        if !self.schemas_enable {
            return Ok((None, Some(value)));
        }
        let envelope = match value {
            Value::Struct(fields)
                if fields.len() == 2
                    && fields.contains_key("schema")
                    && fields.contains_key("payload") =>
            {
                fields
            }
            _ => {
                return Err(ConnectError::Conversion(
                    "JsonConverter with schemas.enable requires \"schema\" and \"payload\" fields and may not contain additional fields. If you are trying to deserialize plain JSON data, set schemas.enable=false in your converter configuration.".into(),
                ))
            }
        };
        let schema = match &envelope["schema"] {
            Value::Null => None,
            s => Some(schema_from_value(s)?),
        };
        let payload = &envelope["payload"];
        if *payload == Value::Null {
            return Ok((schema, None));
        }
        let value = match &schema {
            Some(s) => typed(payload, s)?,
            None => payload.clone(),
        };
        Ok((schema, Some(value)))
    }
}

/// A schema in the JSON form Kafka's JsonConverter writes (field order kept).
pub fn schema_to_json(schema: &Schema) -> Value {
    let mut out = IndexMap::new();
    out.insert("type".to_string(), Value::String(schema.ty.name().into()));
    match schema.ty {
        SchemaType::Struct => {
            let fields = schema
                .fields
                .iter()
                .map(|(name, s)| {
                    let mut f = schema_to_json(s);
                    if let Value::Struct(map) = &mut f {
                        map.insert("field".into(), Value::String(name.clone()));
                    }
                    f
                })
                .collect();
            out.insert("fields".into(), Value::Array(fields));
        }
        SchemaType::Array => {
            if let Some(items) = &schema.items {
                out.insert("items".into(), schema_to_json(items));
            }
        }
        SchemaType::Map => {
            if let Some(keys) = &schema.keys {
                out.insert("keys".into(), schema_to_json(keys));
            }
            if let Some(values) = &schema.values {
                out.insert("values".into(), schema_to_json(values));
            }
        }
        _ => {}
    }
    out.insert("optional".into(), Value::Bool(schema.optional));
    if let Some(name) = &schema.name {
        out.insert("name".into(), Value::String(name.clone()));
    }
    if let Some(version) = schema.version {
        out.insert("version".into(), Value::Int(version));
    }
    Value::Struct(out)
}

fn schema_from_value(value: &Value) -> Result<Schema> {
    let bad = |why: &str| ConnectError::Conversion(format!("invalid schema: {why}"));
    let fields = value.as_struct().ok_or_else(|| bad("not an object"))?;
    let ty = match fields.get("type") {
        Some(Value::String(t)) => {
            SchemaType::parse(t).ok_or_else(|| bad(&format!("unknown type {t}")))?
        }
        _ => return Err(bad("no \"type\"")),
    };
    let mut schema = Schema::new(ty);
    schema.optional = matches!(fields.get("optional"), Some(Value::Bool(true)));
    if let Some(Value::String(name)) = fields.get("name") {
        schema.name = Some(name.clone());
    }
    if let Some(Value::Int(v)) = fields.get("version") {
        schema.version = Some(*v);
    }
    match ty {
        SchemaType::Struct => {
            let Some(Value::Array(list)) = fields.get("fields") else {
                return Err(bad("struct without \"fields\""));
            };
            for field in list {
                let name = match field.as_struct().and_then(|f| f.get("field")) {
                    Some(Value::String(n)) => n.clone(),
                    _ => return Err(bad("struct field without \"field\"")),
                };
                schema.fields.push((name, schema_from_value(field)?));
            }
        }
        SchemaType::Array => {
            let items = fields
                .get("items")
                .ok_or_else(|| bad("array without \"items\""))?;
            schema.items = Some(Box::new(schema_from_value(items)?));
        }
        SchemaType::Map => {
            let keys = fields
                .get("keys")
                .ok_or_else(|| bad("map without \"keys\""))?;
            let values = fields
                .get("values")
                .ok_or_else(|| bad("map without \"values\""))?;
            schema.keys = Some(Box::new(schema_from_value(keys)?));
            schema.values = Some(Box::new(schema_from_value(values)?));
        }
        _ => {}
    }
    Ok(schema)
}

/// The payload read as `schema` says (bytes decoded from base64, numbers
/// checked).
fn typed(payload: &Value, schema: &Schema) -> Result<Value> {
    let mismatch = || {
        ConnectError::Conversion(format!(
            "JSON value {} does not match schema type {}",
            payload.to_json(),
            schema.ty.name()
        ))
    };
    if *payload == Value::Null {
        return if schema.optional {
            Ok(Value::Null)
        } else {
            Err(ConnectError::Conversion(format!(
                "invalid null value for required {} field",
                schema.ty.name()
            )))
        };
    }
    Ok(match schema.ty {
        SchemaType::Int8 | SchemaType::Int16 | SchemaType::Int32 | SchemaType::Int64 => {
            match payload {
                Value::Int(i) => Value::Int(*i),
                _ => return Err(mismatch()),
            }
        }
        SchemaType::Float32 | SchemaType::Float64 => match payload {
            Value::Int(i) => Value::Float(*i as f64),
            Value::Float(f) => Value::Float(*f),
            _ => return Err(mismatch()),
        },
        SchemaType::Boolean => match payload {
            Value::Bool(b) => Value::Bool(*b),
            _ => return Err(mismatch()),
        },
        SchemaType::String => match payload {
            Value::String(s) => Value::String(s.clone()),
            _ => return Err(mismatch()),
        },
        SchemaType::Bytes => match payload {
            Value::String(s) => Value::Bytes(
                base64::engine::general_purpose::STANDARD
                    .decode(s)
                    .map_err(|e| ConnectError::Conversion(format!("invalid base64 bytes: {e}")))?,
            ),
            _ => return Err(mismatch()),
        },
        SchemaType::Array => match (payload, &schema.items) {
            (Value::Array(items), Some(item_schema)) => Value::Array(
                items
                    .iter()
                    .map(|i| typed(i, item_schema))
                    .collect::<Result<_>>()?,
            ),
            _ => return Err(mismatch()),
        },
        SchemaType::Map => match (payload, &schema.values) {
            (Value::Struct(entries), Some(value_schema)) => Value::Struct(
                entries
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), typed(v, value_schema)?)))
                    .collect::<Result<IndexMap<_, _>>>()?,
            ),
            _ => return Err(mismatch()),
        },
        SchemaType::Struct => match payload {
            Value::Struct(entries) => {
                let mut out = IndexMap::new();
                for (name, field_schema) in &schema.fields {
                    let v = entries.get(name).unwrap_or(&Value::Null);
                    out.insert(name.clone(), typed(v, field_schema)?);
                }
                Value::Struct(out)
            }
            _ => return Err(mismatch()),
        },
    })
}

/// Kafka Connect's StringConverter (UTF-8).
pub struct StringConverter {
    encoding_ok: bool,
}

impl Converter for StringConverter {
    fn from_connect(
        &self,
        _topic: &str,
        _schema: Option<&Schema>,
        value: Option<&Value>,
    ) -> Result<Option<Vec<u8>>> {
        if !self.encoding_ok {
            return Err(ConnectError::Conversion(
                "StringConverter supports only UTF-8".into(),
            ));
        }
        Ok(value.map(|v| v.to_text().into_bytes()))
    }

    fn to_connect(
        &self,
        _topic: &str,
        bytes: Option<&[u8]>,
    ) -> Result<(Option<Schema>, Option<Value>)> {
        let Some(bytes) = bytes else {
            return Ok((None, None));
        };
        let text = String::from_utf8(bytes.to_vec())
            .map_err(|e| ConnectError::Conversion(format!("not UTF-8: {e}")))?;
        Ok((
            Some(Schema::new(SchemaType::String).optional()),
            Some(Value::String(text)),
        ))
    }
}

/// Kafka Connect's ByteArrayConverter: bytes through unchanged. Strings are
/// accepted too (as their UTF-8 bytes).
pub struct ByteArrayConverter;

impl Converter for ByteArrayConverter {
    fn from_connect(
        &self,
        _topic: &str,
        _schema: Option<&Schema>,
        value: Option<&Value>,
    ) -> Result<Option<Vec<u8>>> {
        match value {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v.as_bytes().map(|b| Some(b.to_vec())).ok_or_else(|| {
                ConnectError::Conversion(format!(
                    "ByteArrayConverter is not compatible with a value of that type: {}",
                    v.to_json()
                ))
            }),
        }
    }

    fn to_connect(
        &self,
        _topic: &str,
        bytes: Option<&[u8]>,
    ) -> Result<(Option<Schema>, Option<Value>)> {
        Ok(match bytes {
            None => (None, None),
            Some(b) => (
                Some(Schema::new(SchemaType::Bytes).optional()),
                Some(Value::Bytes(b.to_vec())),
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_envelope_round_trip_keeps_bytes_and_types() {
        let c = JsonConverter {
            schemas_enable: true,
        };
        let value: Value =
            serde_json::from_str(r#"{"id": 7, "name": "press-1", "t": 21.5}"#).unwrap();
        let mut value = value;
        value
            .as_struct_mut()
            .unwrap()
            .insert("raw".into(), Value::Bytes(vec![0, 255, 1]));
        let bytes = c.from_connect("t", None, Some(&value)).unwrap().unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(
            text.starts_with(r#"{"schema":{"type":"struct","fields":[{"type":"int64""#),
            "{text}"
        );
        let (schema, back) = c.to_connect("t", Some(&bytes)).unwrap();
        assert_eq!(schema.unwrap().field("raw").unwrap().ty, SchemaType::Bytes);
        assert_eq!(back.unwrap(), value);
    }

    #[test]
    fn json_envelope_is_required_when_schemas_enabled() {
        let c = JsonConverter {
            schemas_enable: true,
        };
        let err = c.to_connect("t", Some(br#"{"a":1}"#)).unwrap_err();
        assert!(err.to_string().contains("schemas.enable"), "{err}");
        let plain = JsonConverter {
            schemas_enable: false,
        };
        let (_, v) = plain.to_connect("t", Some(br#"{"a":1}"#)).unwrap();
        assert_eq!(
            plain.from_connect("t", None, v.as_ref()).unwrap().unwrap(),
            br#"{"a":1}"#
        );
    }

    #[test]
    fn string_and_bytes_pass_through() {
        let s = converter("string", &ConfigMap::new(), false).unwrap();
        let (_, v) = s.to_connect("t", Some("grüße".as_bytes())).unwrap();
        assert_eq!(
            s.from_connect("t", None, v.as_ref()).unwrap().unwrap(),
            "grüße".as_bytes()
        );
        let b = converter(
            "org.apache.kafka.connect.converters.ByteArrayConverter",
            &ConfigMap::new(),
            false,
        )
        .unwrap();
        let raw = vec![0u8, 159, 146, 150];
        let (_, v) = b.to_connect("t", Some(&raw)).unwrap();
        assert_eq!(b.from_connect("t", None, v.as_ref()).unwrap().unwrap(), raw);
        assert_eq!(b.from_connect("t", None, None).unwrap(), None);
        assert!(converter("nope", &ConfigMap::new(), false).is_err());
    }
}
