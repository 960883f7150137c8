//! How `strom consume` prints records: raw values (optionally with keys) or
//! one JSON object per line.

use super::common::base64_encode;
use rdkafka::message::{BorrowedMessage, Headers, Timestamp};
use rdkafka::Message;
use serde::Serialize;
use std::io::Write;

/// How `strom consume` prints each record.
#[derive(Debug, Clone)]
pub struct RecordFormat {
    /// One JSON object per line instead of raw values.
    pub json: bool,
    /// Text output: the key and `key_separator` before the value.
    pub print_key: bool,
    pub key_separator: Vec<u8>,
}

/// Writes one record followed by a newline.
pub fn write_record(
    out: &mut impl Write,
    format: &RecordFormat,
    message: &BorrowedMessage<'_>,
) -> std::io::Result<()> {
    if format.json {
        let record = JsonRecord::from_message(message);
        serde_json::to_writer(&mut *out, &record)?;
        return out.write_all(b"\n");
    }
    if format.print_key {
        out.write_all(message.key().unwrap_or_default())?;
        out.write_all(&format.key_separator)?;
    }
    out.write_all(message.payload().unwrap_or_default())?;
    out.write_all(b"\n")
}

/// One record as printed by `--json`.
#[derive(Debug, Serialize)]
pub struct JsonRecord<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub key: serde_json::Value,
    pub value: serde_json::Value,
    pub headers: serde_json::Map<String, serde_json::Value>,
    pub timestamp: Option<i64>,
    pub timestamp_type: Option<&'static str>,
}

impl<'a> JsonRecord<'a> {
    fn from_message(message: &'a BorrowedMessage<'a>) -> Self {
        let mut headers = serde_json::Map::new();
        if let Some(borrowed) = message.headers() {
            for header in borrowed.iter() {
                headers.insert(header.key.to_string(), json_bytes(header.value));
            }
        }
        let (timestamp, timestamp_type) = match message.timestamp() {
            Timestamp::CreateTime(ms) if ms >= 0 => (Some(ms), Some("create_time")),
            Timestamp::LogAppendTime(ms) if ms >= 0 => (Some(ms), Some("log_append_time")),
            _ => (None, None),
        };
        JsonRecord {
            topic: message.topic(),
            partition: message.partition(),
            offset: message.offset(),
            key: json_bytes(message.key()),
            value: json_bytes(message.payload()),
            headers,
            timestamp,
            timestamp_type,
        }
    }
}

/// A string for UTF-8 bytes, `{"base64": "..."}` otherwise, null when absent.
pub fn json_bytes(bytes: Option<&[u8]>) -> serde_json::Value {
    match bytes {
        None => serde_json::Value::Null,
        Some(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => serde_json::Value::String(text.to_string()),
            Err(_) => serde_json::json!({ "base64": base64_encode(bytes) }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_bytes_keeps_text_and_encodes_binary() {
        assert_eq!(json_bytes(None), serde_json::Value::Null);
        assert_eq!(json_bytes(Some(b"h\xc3\xa9")), serde_json::json!("hé"));
        assert_eq!(json_bytes(Some(b"")), serde_json::json!(""));
        assert_eq!(
            json_bytes(Some(&[0xff, 0x00])),
            serde_json::json!({ "base64": "/wA=" })
        );
    }
}
