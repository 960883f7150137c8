use super::*;
use crate::sdk::data::{Header, Value};

fn config(pairs: &[(&str, &str)]) -> ConfigMap {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

fn record(topic: &str, value: &str) -> Record {
    Record {
        topic: topic.into(),
        partition: Some(2),
        value: Some(json(value)),
        timestamp: Some(1_700_000_000_000),
        ..Record::default()
    }
}

#[test]
fn insert_replace_mask_chain() {
    let chain = TransformChain::from_config(&config(&[
        ("transforms", "add,rename,mask"),
        (
            "transforms.add.type",
            "org.apache.kafka.connect.transforms.InsertField$Value",
        ),
        ("transforms.add.static.field", "site"),
        ("transforms.add.static.value", "plant-7"),
        ("transforms.add.topic.field", "src"),
        ("transforms.add.offset.field", "off"),
        ("transforms.rename.type", "ReplaceField$Value"),
        ("transforms.rename.renames", "temp:temperature"),
        ("transforms.rename.exclude", "secret2"),
        ("transforms.mask.type", "MaskField$Value"),
        ("transforms.mask.fields", "secret"),
    ]))
    .unwrap();
    let out = chain
        .apply(
            record("t", r#"{"temp": 21, "secret": "pw", "secret2": 1}"#),
            Some(42),
        )
        .unwrap()
        .unwrap();
    assert_eq!(
        out.value.unwrap().to_json(),
        serde_json::json!({"temperature": 21, "secret": "", "site": "plant-7", "src": "t", "off": 42})
    );
}

#[test]
fn value_to_key_then_extract() {
    let chain = TransformChain::from_config(&config(&[
        ("transforms", "key,extract"),
        ("transforms.key.type", "ValueToKey"),
        ("transforms.key.fields", "id"),
        ("transforms.extract.type", "ExtractField$Key"),
        ("transforms.extract.field", "id"),
    ]))
    .unwrap();
    let out = chain
        .apply(record("t", r#"{"id": "m-1", "v": 3}"#), None)
        .unwrap()
        .unwrap();
    assert_eq!(out.key, Some(Value::String("m-1".into())));
}

#[test]
fn routers_and_filter_with_predicates() {
    let chain = TransformChain::from_config(&config(&[
        ("transforms", "drop,route,day"),
        (
            "transforms.drop.type",
            "org.apache.kafka.connect.transforms.Filter",
        ),
        ("transforms.drop.predicate", "isTest"),
        ("transforms.route.type", "RegexRouter"),
        ("transforms.route.regex", "(.*)-raw"),
        ("transforms.route.replacement", "$1"),
        ("transforms.day.type", "TimestampRouter"),
        ("transforms.day.topic.format", "${topic}_${timestamp}"),
        ("transforms.day.timestamp.format", "yyyy-MM-dd'T'HH"),
        ("transforms.day.predicate", "noHeader"),
        ("transforms.day.negate", "true"),
        ("predicates", "isTest,noHeader"),
        ("predicates.isTest.type", "TopicNameMatches"),
        ("predicates.isTest.pattern", "test-.*"),
        (
            "predicates.noHeader.type",
            "org.apache.kafka.connect.transforms.predicates.HasHeaderKey",
        ),
        ("predicates.noHeader.name", "daily"),
    ]))
    .unwrap();
    assert_eq!(chain.apply(record("test-1", "{}"), None).unwrap(), None);
    // No "daily" header: the negated predicate holds, so the router runs.
    let plain = chain.apply(record("m-raw", "{}"), None).unwrap().unwrap();
    assert_eq!(plain.topic, "m_2023-11-14T22");
    let mut with_header = record("m-raw", "{}");
    with_header.headers.push(Header {
        key: "daily".into(),
        value: None,
    });
    let routed = chain.apply(with_header, None).unwrap().unwrap();
    assert_eq!(routed.topic, "m");
}

#[test]
fn tombstones_pass_field_transforms() {
    let chain = TransformChain::from_config(&config(&[
        ("transforms", "add"),
        ("transforms.add.type", "InsertField$Value"),
        ("transforms.add.static.field", "x"),
    ]))
    .unwrap();
    let mut tombstone = record("t", "{}");
    tombstone.value = None;
    assert_eq!(
        chain.apply(tombstone.clone(), None).unwrap(),
        Some(tombstone)
    );
    assert!(chain.apply(record("t", "[1]"), None).is_err());
}

#[test]
fn invalid_chains_name_every_field() {
    let errors = TransformChain::validate(&config(&[
        ("transforms", "a,b,c,d"),
        ("transforms.a.type", "NoSuchTransform"),
        ("transforms.c.type", "MaskField$Value"),
        ("transforms.d.type", "RegexRouter"),
        ("transforms.d.regex", "(unclosed"),
        ("transforms.d.replacement", "x"),
        ("transforms.d.predicate", "missing"),
    ]));
    let fields: Vec<&str> = errors.keys().map(String::as_str).collect();
    assert_eq!(
        fields,
        vec![
            "transforms.a.type",
            "transforms.b.type",
            "transforms.c.fields",
            "transforms.d.predicate",
            "transforms.d.regex",
        ]
    );
}

#[test]
fn timestamp_format_matches_known_dates() {
    assert_eq!(
        routers::format_timestamp("yyyyMMdd", 0).unwrap(),
        "19700101"
    );
    assert_eq!(
        routers::format_timestamp("yy-MM-dd HH:mm:ss.SSS", 951_782_400_123).unwrap(),
        "00-02-29 00:00:00.123"
    );
    assert!(routers::format_timestamp("yyyy QQ", 0).is_err());
}
