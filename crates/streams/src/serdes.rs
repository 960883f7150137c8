//! Serdes: how keys and values become bytes on topics and in state stores.
//!
//! [`Serde`] is the trait for custom formats; [`Serdes`] has the built-in
//! ones: bytes, UTF-8 strings, big-endian integers (Kafka's `LongSerde`
//! layout), JSON via `serde`, `()` for ignored keys, `Option` for nullable
//! data and [`Windowed`](crate::Windowed) keys.

use crate::error::SerdeError;
use crate::record::Windowed;
use serde_json::Value as Json;
use std::marker::PhantomData;
use std::sync::Arc;

/// Turns `T` into bytes and back. A Kafka record's key or value can be null:
/// [`is_null`](Serde::is_null) says a value is written as null and
/// [`null`](Serde::null) what a null reads as (an error unless the format
/// has a null, like `()` or `Option`).
pub trait Serde<T>: Send + Sync + 'static {
    fn serialize(&self, value: &T) -> Result<Vec<u8>, SerdeError>;
    fn deserialize(&self, bytes: &[u8]) -> Result<T, SerdeError>;
    fn is_null(&self, _value: &T) -> bool {
        false
    }
    fn null(&self) -> Result<T, SerdeError> {
        Err(SerdeError::Null)
    }
    /// The value as JSON, for the interactive-query HTTP endpoint.
    fn to_json(&self, value: &T) -> Json {
        match self.serialize(value) {
            Ok(bytes) => Json::String(String::from_utf8_lossy(&bytes).into_owned()),
            Err(e) => Json::String(format!("<{e}>")),
        }
    }
    /// Parses a key given as text (a URL path segment of the HTTP endpoint).
    fn parse_text(&self, text: &str) -> Option<T> {
        self.deserialize(text.as_bytes()).ok()
    }
}

/// A shared serde.
pub type SerdeRef<T> = Arc<dyn Serde<T>>;

pub(crate) fn ser<T: 'static>(
    serde: &dyn Serde<T>,
    value: &T,
) -> Result<Option<Vec<u8>>, SerdeError> {
    if serde.is_null(value) {
        Ok(None)
    } else {
        serde.serialize(value).map(Some)
    }
}

pub(crate) fn de<T: 'static>(serde: &dyn Serde<T>, bytes: Option<&[u8]>) -> Result<T, SerdeError> {
    match bytes {
        Some(bytes) => serde.deserialize(bytes),
        None => serde.null(),
    }
}

/// The built-in serdes.
pub struct Serdes;

impl Serdes {
    pub fn string() -> SerdeRef<String> {
        Arc::new(StringSerde)
    }
    pub fn bytes() -> SerdeRef<Vec<u8>> {
        Arc::new(BytesSerde)
    }
    /// 8 bytes big-endian, as Kafka's `LongSerializer`.
    pub fn i64() -> SerdeRef<i64> {
        Arc::new(I64Serde)
    }
    /// 8 bytes, IEEE 754 big-endian, as Kafka's `DoubleSerializer`.
    pub fn f64() -> SerdeRef<f64> {
        Arc::new(F64Serde)
    }
    /// Any value: written as null, read from anything (keys a topology
    /// ignores).
    pub fn unit() -> SerdeRef<()> {
        Arc::new(UnitSerde)
    }
    pub fn json<T>() -> SerdeRef<T>
    where
        T: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
    {
        Arc::new(JsonSerde(PhantomData))
    }
    /// `None` is null.
    pub fn option<T: 'static>(inner: SerdeRef<T>) -> SerdeRef<Option<T>> {
        Arc::new(OptionSerde(inner))
    }
    /// Windowed keys: the key's bytes, then window start and end as 8-byte
    /// big-endian milliseconds.
    pub fn windowed<K: 'static>(inner: SerdeRef<K>) -> SerdeRef<Windowed<K>> {
        Arc::new(WindowedSerde(inner))
    }
}

struct StringSerde;
impl Serde<String> for StringSerde {
    fn serialize(&self, value: &String) -> Result<Vec<u8>, SerdeError> {
        Ok(value.as_bytes().to_vec())
    }
    fn deserialize(&self, bytes: &[u8]) -> Result<String, SerdeError> {
        Ok(String::from_utf8(bytes.to_vec())?)
    }
    fn to_json(&self, value: &String) -> Json {
        Json::String(value.clone())
    }
}

struct BytesSerde;
impl Serde<Vec<u8>> for BytesSerde {
    fn serialize(&self, value: &Vec<u8>) -> Result<Vec<u8>, SerdeError> {
        Ok(value.clone())
    }
    fn deserialize(&self, bytes: &[u8]) -> Result<Vec<u8>, SerdeError> {
        Ok(bytes.to_vec())
    }
}

fn eight(bytes: &[u8]) -> Result<[u8; 8], SerdeError> {
    bytes.try_into().map_err(|_| SerdeError::Length {
        expected: 8,
        got: bytes.len(),
    })
}

struct I64Serde;
impl Serde<i64> for I64Serde {
    fn serialize(&self, value: &i64) -> Result<Vec<u8>, SerdeError> {
        Ok(value.to_be_bytes().to_vec())
    }
    fn deserialize(&self, bytes: &[u8]) -> Result<i64, SerdeError> {
        Ok(i64::from_be_bytes(eight(bytes)?))
    }
    fn to_json(&self, value: &i64) -> Json {
        Json::from(*value)
    }
    fn parse_text(&self, text: &str) -> Option<i64> {
        text.parse().ok()
    }
}

struct F64Serde;
impl Serde<f64> for F64Serde {
    fn serialize(&self, value: &f64) -> Result<Vec<u8>, SerdeError> {
        Ok(value.to_be_bytes().to_vec())
    }
    fn deserialize(&self, bytes: &[u8]) -> Result<f64, SerdeError> {
        Ok(f64::from_be_bytes(eight(bytes)?))
    }
    fn to_json(&self, value: &f64) -> Json {
        Json::from(*value)
    }
    fn parse_text(&self, text: &str) -> Option<f64> {
        text.parse().ok()
    }
}

struct UnitSerde;
impl Serde<()> for UnitSerde {
    fn serialize(&self, _: &()) -> Result<Vec<u8>, SerdeError> {
        Ok(Vec::new())
    }
    fn deserialize(&self, _: &[u8]) -> Result<(), SerdeError> {
        Ok(())
    }
    fn is_null(&self, _: &()) -> bool {
        true
    }
    fn null(&self) -> Result<(), SerdeError> {
        Ok(())
    }
    fn to_json(&self, _: &()) -> Json {
        Json::Null
    }
}

struct JsonSerde<T>(PhantomData<fn() -> T>);
impl<T> Serde<T> for JsonSerde<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    fn serialize(&self, value: &T) -> Result<Vec<u8>, SerdeError> {
        Ok(serde_json::to_vec(value)?)
    }
    fn deserialize(&self, bytes: &[u8]) -> Result<T, SerdeError> {
        Ok(serde_json::from_slice(bytes)?)
    }
    fn to_json(&self, value: &T) -> Json {
        serde_json::to_value(value).unwrap_or(Json::Null)
    }
    fn parse_text(&self, text: &str) -> Option<T> {
        serde_json::from_str(text)
            .ok()
            .or_else(|| serde_json::from_value(Json::String(text.to_string())).ok())
    }
}

struct OptionSerde<T>(SerdeRef<T>);
impl<T: 'static> Serde<Option<T>> for OptionSerde<T> {
    fn serialize(&self, value: &Option<T>) -> Result<Vec<u8>, SerdeError> {
        match value {
            Some(v) => self.0.serialize(v),
            None => Err(SerdeError::Null),
        }
    }
    fn deserialize(&self, bytes: &[u8]) -> Result<Option<T>, SerdeError> {
        self.0.deserialize(bytes).map(Some)
    }
    fn is_null(&self, value: &Option<T>) -> bool {
        match value {
            Some(v) => self.0.is_null(v),
            None => true,
        }
    }
    fn null(&self) -> Result<Option<T>, SerdeError> {
        Ok(None)
    }
    fn to_json(&self, value: &Option<T>) -> Json {
        value.as_ref().map_or(Json::Null, |v| self.0.to_json(v))
    }
    fn parse_text(&self, text: &str) -> Option<Option<T>> {
        self.0.parse_text(text).map(Some)
    }
}

struct WindowedSerde<K>(SerdeRef<K>);
impl<K: 'static> Serde<Windowed<K>> for WindowedSerde<K> {
    fn serialize(&self, value: &Windowed<K>) -> Result<Vec<u8>, SerdeError> {
        let mut out = self.0.serialize(&value.key)?;
        out.extend_from_slice(&value.start.to_be_bytes());
        out.extend_from_slice(&value.end.to_be_bytes());
        Ok(out)
    }
    fn deserialize(&self, bytes: &[u8]) -> Result<Windowed<K>, SerdeError> {
        if bytes.len() < 16 {
            return Err(SerdeError::Length {
                expected: 16,
                got: bytes.len(),
            });
        }
        let (key, times) = bytes.split_at(bytes.len() - 16);
        Ok(Windowed {
            key: self.0.deserialize(key)?,
            start: i64::from_be_bytes(eight(&times[..8])?),
            end: i64::from_be_bytes(eight(&times[8..])?),
        })
    }
    fn to_json(&self, value: &Windowed<K>) -> Json {
        serde_json::json!({"key": self.0.to_json(&value.key), "start": value.start, "end": value.end})
    }
    /// The plain key (window 0..0): window-store queries name the key only.
    fn parse_text(&self, text: &str) -> Option<Windowed<K>> {
        self.0.parse_text(text).map(|key| Windowed {
            key,
            start: 0,
            end: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let s = Serdes::string();
        assert_eq!(
            s.deserialize(&s.serialize(&"héllo".into()).unwrap())
                .unwrap(),
            "héllo"
        );
        let n = Serdes::i64();
        assert_eq!(n.serialize(&1).unwrap(), vec![0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(n.deserialize(&n.serialize(&-5).unwrap()).unwrap(), -5);
        assert!(n.deserialize(&[1, 2]).is_err());
        let o = Serdes::option(Serdes::i64());
        assert_eq!(ser(&*o, &None).unwrap(), None);
        assert_eq!(de(&*o, None).unwrap(), None);
        assert!(de(&*Serdes::string(), None).is_err());
        let w = Serdes::windowed(Serdes::string());
        let key = Windowed {
            key: "k".to_string(),
            start: 10,
            end: 20,
        };
        assert_eq!(w.deserialize(&w.serialize(&key).unwrap()).unwrap(), key);
        let j = Serdes::json::<(String, f64)>();
        assert_eq!(j.deserialize(br#"["a",1.5]"#).unwrap(), ("a".into(), 1.5));
    }
}
