//! [`Payload`]: a point's payload, one JSON object carried as its canonical JSON text
//! from the edge that received it to the store that keeps it.
//!
//! A payload is checked where it enters (one JSON object, how deeply it nests, how many
//! bytes) without building its tree, and then moves as bytes — through the gateway, the
//! shard's Raft log and RocksDB. Held as `serde_json` trees, a batch of payloads made of
//! many small keys or items takes ~10× its text, so a batch is never held as trees; a
//! payload is parsed again only where its fields are read (the payload index at apply,
//! filters, reads), one at a time.
//!
//! Invariant: `json` is valid JSON whose root is an object, without whitespace outside
//! strings and with only the escapes serde_json writes; `depth` is its nesting depth (an
//! object of scalars is 1). Sizes are of that text (a repeated key counts each time,
//! though reads keep the last).

use std::fmt;

use bytes::Bytes;
use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use crate::ValidationError;

/// A point's payload: a JSON object, as validated compact JSON text.
#[derive(Clone, PartialEq, Eq)]
pub struct Payload {
    json: Bytes,
    depth: usize,
    empty: bool,
}

fn invalid(reason: impl Into<String>) -> ValidationError {
    ValidationError::InvalidPayload { reason: reason.into() }
}

impl Payload {
    /// Checks that `json` is one JSON object and measures it, without building its tree;
    /// it is kept in canonical form (no whitespace outside strings, no escapes JSON does
    /// not need), so a payload is stored and counted alike however it was written.
    pub fn from_json(json: impl Into<Bytes>) -> Result<Payload, ValidationError> {
        let json = json.into();
        let shape: Shape = serde_json::from_slice(&json).map_err(|e| invalid(e.to_string()))?;
        let json = canonical(&json).map_or(json, Bytes::from);
        Ok(Payload { json, depth: shape.depth, empty: shape.keys == 0 })
    }

    /// The payload of an object already held as a tree.
    pub fn from_map(map: &Map<String, Value>) -> Payload {
        let json = serde_json::to_vec(map).expect("a JSON map serialises");
        Payload {
            json: Bytes::from(json),
            depth: 1 + map.values().map(depth).max().unwrap_or(0),
            empty: map.is_empty(),
        }
    }

    /// The payload as a tree.
    pub fn to_map(&self) -> Result<Map<String, Value>, ValidationError> {
        serde_json::from_slice(&self.json).map_err(|e| invalid(e.to_string()))
    }

    /// The payload's top-level entries named in `fields`, as a tree; the others are read
    /// and skipped without building theirs (what an index over a few fields needs).
    pub fn project(&self, fields: &[&str]) -> Result<Map<String, Value>, ValidationError> {
        let mut d = serde_json::Deserializer::from_slice(&self.json);
        Projection(fields).deserialize(&mut d).map_err(|e| invalid(e.to_string()))
    }

    /// The compact JSON text.
    pub fn as_json(&self) -> &[u8] {
        &self.json
    }

    /// The compact JSON text, shared (no copy).
    pub fn json_bytes(&self) -> Bytes {
        self.json.clone()
    }

    /// Bytes of compact JSON text.
    pub fn len(&self) -> usize {
        self.json.len()
    }

    /// `{}`: stored as no payload.
    pub fn is_empty(&self) -> bool {
        self.empty
    }

    /// Nesting depth: an object of scalars is 1, each array or object level inside adds 1.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Refuses a payload larger than `max_bytes` (as compact JSON) or nesting deeper than
    /// `max_depth`.
    pub fn check_limits(&self, max_bytes: usize, max_depth: usize) -> Result<(), ValidationError> {
        if self.depth > max_depth {
            return Err(invalid(format!("payload nests {} levels, the limit is {max_depth}", self.depth)));
        }
        if self.len() > max_bytes {
            return Err(invalid(format!("payload is {} bytes, the limit is {max_bytes}", self.len())));
        }
        Ok(())
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match std::str::from_utf8(&self.json) {
            Ok(s) => write!(f, "Payload({s})"),
            Err(_) => write!(f, "Payload({} bytes)", self.json.len()),
        }
    }
}

fn depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Valid JSON `json` in canonical form, or `None` when it is in it already: no
/// whitespace outside strings, and in strings only the escapes serde_json writes (`\"`,
/// `\\`, control characters); `\/` and `\uXXXX` of any other character become the
/// character (UTF-8). So a payload is measured and stored alike whether it arrived
/// pretty-printed, ASCII-escaped (Python's `json.dumps` default) or compact.
fn canonical(json: &[u8]) -> Option<Vec<u8>> {
    if !needs_canonical(json) {
        return None;
    }
    let mut out = Vec::with_capacity(json.len());
    let (mut i, mut in_string) = (0, false);
    while i < json.len() {
        let b = json[i];
        if !in_string {
            if !matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
                out.push(b);
            }
            in_string = b == b'"';
            i += 1;
            continue;
        }
        match (b, json.get(i + 1)) {
            (b'"', _) => {
                in_string = false;
                out.push(b);
                i += 1;
            }
            (b'\\', Some(b'/')) => {
                out.push(b'/');
                i += 2;
            }
            (b'\\', Some(b'u')) => {
                let high = hex4(&json[i + 2..i + 6]);
                let (c, used) = if (0xD800..0xDC00).contains(&high) {
                    let low = hex4(&json[i + 8..i + 12]);
                    (0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00), 12)
                } else {
                    (high, 6)
                };
                push_escaped(&mut out, char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER));
                i += used;
            }
            (b'\\', Some(&e)) => {
                out.extend_from_slice(&[b'\\', e]);
                i += 2;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(out)
}

/// Whether [`canonical`] would change `json`: whitespace outside strings, or a `\/` or
/// `\u` escape inside one.
fn needs_canonical(json: &[u8]) -> bool {
    let (mut in_string, mut escaped) = (false, false);
    for &b in json {
        if in_string {
            match (escaped, b) {
                (true, b'/' | b'u') => return true,
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
        } else {
            match b {
                b'"' => in_string = true,
                b' ' | b'\n' | b'\r' | b'\t' => return true,
                _ => {}
            }
        }
    }
    false
}

/// Four hex digits (already checked by the parser).
fn hex4(digits: &[u8]) -> u32 {
    digits.iter().fold(0, |acc, &d| acc * 16 + (d as char).to_digit(16).unwrap_or(0))
}

/// `c` inside a JSON string as serde_json writes it.
fn push_escaped(out: &mut Vec<u8>, c: char) {
    match c {
        '"' => out.extend_from_slice(b"\\\""),
        '\\' => out.extend_from_slice(b"\\\\"),
        '\u{8}' => out.extend_from_slice(b"\\b"),
        '\u{c}' => out.extend_from_slice(b"\\f"),
        '\n' => out.extend_from_slice(b"\\n"),
        '\r' => out.extend_from_slice(b"\\r"),
        '\t' => out.extend_from_slice(b"\\t"),
        c if (c as u32) < 0x20 => out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes()),
        c => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
    }
}

/// What the check learns of a payload's root: keys and depth. Deserialising it reads
/// every key and value (strings unescaped, numbers parsed) and allocates nothing.
struct Shape {
    keys: usize,
    depth: usize,
}

/// The nesting depth of one JSON value.
struct Depth(usize);

/// A key, read (and so checked) and dropped.
struct Key;

impl<'de> Deserialize<'de> for Shape {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Shape;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Shape, A::Error> {
                let (mut keys, mut deepest) = (0, 0);
                while let Some((Key, Depth(d))) = map.next_entry()? {
                    keys += 1;
                    deepest = deepest.max(d);
                }
                Ok(Shape { keys, depth: 1 + deepest })
            }
        }
        d.deserialize_map(V)
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Key, E> {
                Ok(Key)
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> Deserialize<'de> for Depth {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Depth;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Depth, E> {
                Ok(Depth(0))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Depth, E> {
                Ok(Depth(0))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Depth, E> {
                Ok(Depth(0))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Depth, E> {
                Ok(Depth(0))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Depth, E> {
                Ok(Depth(0))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Depth, E> {
                Ok(Depth(0))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Depth, A::Error> {
                let mut deepest = 0;
                while let Some(Depth(d)) = seq.next_element()? {
                    deepest = deepest.max(d);
                }
                Ok(Depth(1 + deepest))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Depth, A::Error> {
                let mut deepest = 0;
                while let Some((Key, Depth(d))) = map.next_entry()? {
                    deepest = deepest.max(d);
                }
                Ok(Depth(1 + deepest))
            }
        }
        d.deserialize_any(V)
    }
}

/// Reads an object keeping only the entries named in `.0`.
struct Projection<'f>(&'f [&'f str]);

impl<'de> DeserializeSeed<'de> for Projection<'_> {
    type Value = Map<String, Value>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Projection<'_> {
    type Value = Map<String, Value>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if self.0.contains(&&*key) {
                out.insert(key.into_owned(), map.next_value()?);
            } else {
                map.next_value::<de::IgnoredAny>()?;
            }
        }
        Ok(out)
    }
}

/// Binary formats (the Raft log's MessagePack) carry the JSON text as bytes; readable
/// ones the object itself.
impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            self.to_map().map_err(serde::ser::Error::custom)?.serialize(s)
        } else {
            s.serialize_bytes(&self.json)
        }
    }
}

/// Takes the JSON text as bytes or a string (checked as [`Payload::from_json`] does),
/// or an object in the format's own terms (what a Raft log written before payloads
/// travelled as text holds).
impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Payload;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object or its text")
            }
            fn visit_bytes<E: de::Error>(self, b: &[u8]) -> Result<Payload, E> {
                Payload::from_json(Bytes::copy_from_slice(b)).map_err(E::custom)
            }
            fn visit_byte_buf<E: de::Error>(self, b: Vec<u8>) -> Result<Payload, E> {
                Payload::from_json(b).map_err(E::custom)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Payload, E> {
                self.visit_bytes(s.as_bytes())
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Payload, E> {
                self.visit_byte_buf(s.into_bytes())
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Payload, A::Error> {
                let map = Map::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(Payload::from_map(&map))
            }
        }
        d.deserialize_any(V)
    }
}

/// Reads a JSON object's text as a payload where serde_json deserialises a whole
/// document (the HTTP edge), without building the object's tree.
pub fn deserialize_raw<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Payload>, D::Error> {
    let raw: Option<Box<serde_json::value::RawValue>> = Option::deserialize(d)?;
    raw.map(|r| Payload::from_json(Box::<str>::from(r).into_boxed_bytes())).transpose().map_err(de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn checks_the_root_and_measures_depth_like_the_tree_does() {
        for (text, depth) in [
            (r#"{}"#, 1),
            (r#"{"a":1,"b":"x","c":null,"d":true,"e":-2.5}"#, 1),
            (r#"{"a":[1,2]}"#, 2),
            (r#"{"a":{"b":[{"c":[]}]}}"#, 5),
            (r#"{"a":[],"b":{}}"#, 2),
        ] {
            let p = Payload::from_json(text.as_bytes().to_vec()).unwrap();
            assert_eq!(p.depth(), depth, "{text}");
            assert_eq!(Payload::from_map(&p.to_map().unwrap()).depth(), depth, "{text}");
            assert_eq!(p.is_empty(), text == "{}");
        }
        for bad in ["[]", "1", "\"a\"", "null", "{", r#"{"a":1}x"#, r#"{"a":1e400}"#, r#"{"\ud800":1}"#, "", "{1:2}"] {
            assert!(
                matches!(Payload::from_json(bad.as_bytes().to_vec()), Err(ValidationError::InvalidPayload { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn whitespace_outside_strings_is_dropped_and_inside_kept() {
        let p = Payload::from_json(&b"{ \"a b\" : [ 1 , \"x \\\" y\" ],\n\t\"c\": { } }"[..]).unwrap();
        assert_eq!(p.as_json(), br#"{"a b":[1,"x \" y"],"c":{}}"#);
        assert_eq!(p.len(), p.as_json().len());
        let q = Payload::from_json(&br#"{"\\":" "}"#[..]).unwrap();
        assert_eq!(q.as_json(), br#"{"\\":" "}"#);
    }

    #[test]
    fn projection_keeps_only_the_named_fields() {
        let p = Payload::from_map(&obj(json!({"a": 1, "b": {"c": [1, 2]}, "d": "x", "a\n": 2})));
        assert_eq!(p.project(&["b", "zz", "a\n"]).unwrap(), obj(json!({"b": {"c": [1, 2]}, "a\n": 2})));
        assert_eq!(p.project(&[]).unwrap(), Map::new());
    }

    #[test]
    fn escapes_json_does_not_need_are_decoded_and_needed_ones_kept() {
        let p = Payload::from_json(&br#"{"k\u00e9":"caf\u00e9 \ud83d\ude00 \/ \u0022 \u005c \u0001 \n \u000a"}"#[..])
            .unwrap();
        assert_eq!(
            std::str::from_utf8(p.as_json()).unwrap(),
            "{\"k\u{e9}\":\"caf\u{e9} \u{1f600} / \\\" \\\\ \\u0001 \\n \\n\"}"
        );
        assert_eq!(p.as_json(), Payload::from_map(&p.to_map().unwrap()).as_json(), "serde_json's own form");
    }

    /// JSON text with every non-ASCII character written as `\uXXXX` (surrogate pairs above
    /// the BMP), as Python's `json.dumps` writes it by default.
    fn ascii_escaped(text: &str) -> String {
        let mut out = String::new();
        for c in text.chars() {
            if c.is_ascii() {
                out.push(c);
            } else {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
        }
        out
    }

    #[test]
    fn limits() {
        let p = Payload::from_map(&obj(json!({"a": {"b": [1]}})));
        assert_eq!(p.depth(), 3);
        assert!(p.check_limits(100, 3).is_ok());
        assert!(p.check_limits(100, 2).is_err());
        assert!(p.check_limits(p.len() - 1, 3).is_err());
    }

    #[test]
    fn msgpack_carries_bytes_and_reads_the_old_object_form() {
        let p = Payload::from_map(&obj(json!({"k": [1, 2.5, "s"], "n": null})));
        let bytes = rmp_serde::to_vec_named(&p).unwrap();
        assert_eq!(rmp_serde::from_slice::<Payload>(&bytes).unwrap(), p);
        let old = rmp_serde::to_vec_named(&p.to_map().unwrap()).unwrap();
        assert_eq!(rmp_serde::from_slice::<Payload>(&old).unwrap(), p);
        let readable = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<Payload>(&readable).unwrap(), p);
    }

    fn arb_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|i| json!(i)),
            (-1e6f64..1e6).prop_map(|x| json!(x)),
            "[ a-z\"\\\\\n\u{1}é😀/]{0,6}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[ a-z]{0,3}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Whatever the spacing, the text form reads back as the tree it was made from,
        /// with the tree's depth.
        #[test]
        fn text_and_tree_agree(
            m in prop::collection::btree_map("[ a-zé]{0,3}", arb_value(), 0..5),
            pretty in any::<bool>(),
            escaped in any::<bool>(),
        ) {
            let map: Map<String, Value> = m.into_iter().collect();
            let text = if pretty { serde_json::to_string_pretty(&map) } else { serde_json::to_string(&map) }.unwrap();
            let text = if escaped { ascii_escaped(&text) } else { text }.into_bytes();
            let p = Payload::from_json(text).unwrap();
            prop_assert_eq!(p.to_map().unwrap(), map.clone());
            prop_assert_eq!(p.depth(), Payload::from_map(&map).depth());
            let tree = Payload::from_map(&map);
            prop_assert_eq!(p.as_json(), tree.as_json());
        }
    }
}
