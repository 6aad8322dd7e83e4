//! Fuzzing the parsers every request goes through: the filter language's JSON form and
//! the protobuf → model conversions, fed arbitrary JSON text and arbitrary bytes decoded
//! as protobuf messages. None may panic or overflow the stack; each either parses into
//! something that validates or answers a typed error. `PROPTEST_CASES` runs it longer
//! (CI runs the default, a few seconds).

use proptest::prelude::*;
use prost::Message;
use serde_json::Value;
use vectron_model::convert::{
    filter_from_pb, filter_to_pb, normalize_collection, point_from_pb, point_id_from_pb, shard_point_from_pb,
    struct_from_pb,
};
use vectron_model::{Filter, Payload};
use vectron_proto::internal as pi;
use vectron_proto::v1 as pb;

/// JSON that looks like filters often enough to get past the first checks: the
/// language's own words and shapes, mixed with anything.
fn json_value() -> impl Strategy<Value = Value> {
    let word = prop_oneof![
        Just("must"),
        Just("should"),
        Just("must_not"),
        Just("key"),
        Just("match"),
        Just("range"),
        Just("value"),
        Just("any"),
        Just("exists"),
        Just("is_null"),
        Just("has_id"),
        Just("gt"),
        Just("gte"),
        Just("lt"),
        Just("lte"),
        Just("a"),
        Just("a.b"),
        Just("a[]"),
        Just(""),
    ]
    .prop_map(str::to_owned);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        word.clone().prop_map(Value::String),
        ".{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(24, 256, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((word.clone(), inner), 0..6).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Text near JSON objects: pieces of JSON syntax, escapes (lone surrogates among them),
/// whitespace and anything, so most cases get deep into the payload check.
fn payload_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("{".to_owned()),
        Just("}".to_owned()),
        Just("[".to_owned()),
        Just("]".to_owned()),
        Just("\"".to_owned()),
        Just(":".to_owned()),
        Just(",".to_owned()),
        Just(" ".to_owned()),
        Just("\n".to_owned()),
        Just("\\\"".to_owned()),
        Just("\\ud800".to_owned()),
        Just("\\u00e9".to_owned()),
        Just("1e400".to_owned()),
        Just("-0.5".to_owned()),
        Just("null".to_owned()),
        ".{0,3}",
    ];
    let noise = prop::collection::vec(piece, 0..24).prop_map(|p| p.concat());
    prop_oneof![
        json_value().prop_map(|v| serde_json::to_string(&serde_json::json!({"k": v})).unwrap()),
        json_value().prop_map(|v| serde_json::to_string_pretty(&serde_json::json!({"k": v, " x ": [v]})).unwrap()),
        noise.clone().prop_map(|n| format!("{{\"k\":{n}}}")),
        noise,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

    #[test]
    fn filter_json_never_panics(v in json_value()) {
        // Through the text form, as a request body arrives.
        let text = serde_json::to_string(&v).unwrap();
        let parsed: Value = serde_json::from_str(&text).unwrap();
        if let Ok(f) = Filter::from_json(&parsed) {
            prop_assert!(f.validate().is_ok());
            // What parses survives the trip to protobuf and back unchanged.
            let back = filter_from_pb(&filter_to_pb(&f).unwrap()).unwrap();
            prop_assert_eq!(back, f);
        }
    }

    /// Whatever text passes the payload check reads back as a tree, and its compact
    /// form passes again unchanged (the invariant every later reader relies on).
    #[test]
    fn checked_payload_text_always_parses(text in payload_text()) {
        if let Ok(p) = Payload::from_json(text.into_bytes()) {
            let map = p.to_map();
            prop_assert!(map.is_ok(), "{:?}", p);
            let again = Payload::from_json(p.json_bytes()).unwrap();
            prop_assert_eq!(again, p);
        }
    }

    #[test]
    fn arbitrary_bytes_as_protobuf_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(f) = pb::Filter::decode(bytes.as_slice()) {
            let _ = filter_from_pb(&f);
        }
        if let Ok(p) = pb::Point::decode(bytes.as_slice()) {
            let _ = point_from_pb(p);
        }
        if let Ok(p) = pi::ShardPoint::decode(bytes.as_slice()) {
            let _ = shard_point_from_pb(p);
        }
        if let Ok(id) = pb::PointId::decode(bytes.as_slice()) {
            let _ = point_id_from_pb(Some(&id));
        }
        if let Ok(s) = pb::Struct::decode(bytes.as_slice()) {
            let _ = struct_from_pb(&s);
        }
        if let Ok(c) = pb::CollectionConfig::decode(bytes.as_slice()) {
            let _ = normalize_collection(c);
        }
    }
}

/// Filters nested far past the limit, in both forms, are refused without overflowing
/// the stack.
#[test]
fn deep_nesting_is_refused_not_overflowed() {
    let mut text = String::from("{}");
    // 60 filters deep is 120 JSON levels, under serde_json's own limit of 128.
    for _ in 0..60 {
        text = format!("{{\"must\": [{text}]}}");
    }
    let v: Value = serde_json::from_str(&text).unwrap();
    assert!(Filter::from_json(&v).is_err());
    let mut f = pb::Filter::default();
    // 45 filters deep is 90 message levels, under prost's own limit of 100.
    for _ in 0..45 {
        f = pb::Filter {
            must: vec![pb::Condition { condition: Some(pb::condition::Condition::Filter(f)) }],
            ..Default::default()
        };
    }
    let decoded = pb::Filter::decode(f.encode_to_vec().as_slice()).unwrap();
    assert!(filter_from_pb(&decoded).is_err());
}
