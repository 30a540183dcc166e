//! Object-name and checkpoint parsers of the archive (`flux_stages::archive::layout`,
//! `flux_stages::archive::state::Checkpoint`).
//!
//! The input is an object key, listed under one stream (the stream its `stream=` folder names
//! when that is a legal name, else `orders`), and also a checkpoint object's body. Properties:
//! nothing panics; a key that parses is of exactly that stream (never also of a stream whose
//! name it extends or shortens) and is named again, from what was parsed, to a key that parses
//! to the same thing; file names fit the store's limit; a checkpoint that parses is written and
//! read back unchanged.
#![no_main]

use flux_stages::archive::layout::{
    self, DataObject, MAX_FILE_NAME, StagedObject, checkpoint_key, data_key, object_file_name,
    parse_checkpoint_key, parse_data_key, parse_staged_key, staged_key, written_by_sink,
};
use flux_stages::archive::state::Checkpoint;
use flux_stages::names::StreamName;
use flux_stages::record::SequenceNumber;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    checkpoint_json(data);
    let Ok(key) = std::str::from_utf8(data) else {
        return;
    };
    let stream = stream_of(key);
    for other in neighbours(&stream) {
        assert_eq!(
            parse_data_key(&other, key),
            None,
            "{key} also read as stream {other}"
        );
        assert_eq!(
            parse_checkpoint_key(&other, key),
            None,
            "{key} also read as stream {other}"
        );
        assert_eq!(
            parse_staged_key(&other, key),
            None,
            "{key} also read as stream {other}"
        );
    }
    if let Some(obj) = parse_data_key(&stream, key) {
        data_object(&stream, key, &obj);
    }
    if let Some(shard) = parse_checkpoint_key(&stream, key) {
        assert_eq!(checkpoint_key(&stream, &shard), key);
    }
    if let Some(obj) = parse_staged_key(&stream, key) {
        staged_object(&stream, key, &obj);
    }
});

/// The stream the key's first `stream=` folder names, when legal; else `orders`.
fn stream_of(key: &str) -> StreamName {
    key.split('/')
        .find_map(|seg| seg.strip_prefix("stream="))
        .and_then(|name| StreamName::parse(name).ok())
        .unwrap_or_else(|| StreamName::parse("orders").expect("a legal name"))
}

/// Streams whose names extend or shorten `stream`'s.
fn neighbours(stream: &StreamName) -> Vec<StreamName> {
    let name = stream.as_str();
    [
        format!("{name}-"),
        format!("{name}0"),
        name[..name.len() - 1].to_owned(),
    ]
    .iter()
    .filter_map(|n| StreamName::parse(n).ok())
    .collect()
}

fn data_object(stream: &StreamName, key: &str, obj: &DataObject) {
    assert_eq!(obj.key, key);
    assert!(key.starts_with(&layout::stream_prefix(stream)));
    assert_eq!(layout::hour_of(obj.hour), obj.hour, "the hour is whole");
    let _ = written_by_sink(obj);
    let Some((first, last)) = &obj.range else {
        return;
    };
    assert!(object_file_name(first, last).len() <= MAX_FILE_NAME);
    let again = data_key(stream, obj.hour, &obj.shard_id, first, last);
    let back = parse_data_key(stream, &again)
        .unwrap_or_else(|| panic!("{again} (named from {key}) does not parse"));
    assert_eq!((back.hour, &back.shard_id), (obj.hour, &obj.shard_id));
    same_range(back.range.as_ref().expect("a range"), (first, last));
    assert!(written_by_sink(&back), "{again} is a name the sink writes");
}

fn staged_object(stream: &StreamName, key: &str, obj: &StagedObject) {
    assert_eq!(obj.key, key);
    let (first, last) = &obj.range;
    let file = object_file_name(first, last);
    assert!(file.len() <= MAX_FILE_NAME);
    let again = staged_key(stream, &obj.shard_id, "run-1", &file);
    let back = parse_staged_key(stream, &again)
        .unwrap_or_else(|| panic!("{again} (named from {key}) does not parse"));
    assert_eq!(back.shard_id, obj.shard_id);
    same_range(&back.range, (first, last));
}

/// Equal as numbers (a name may spell a number with leading zeros, or in hexadecimal).
fn same_range(got: &(SequenceNumber, SequenceNumber), want: (&SequenceNumber, &SequenceNumber)) {
    assert_eq!(
        got.0.cmp(want.0),
        std::cmp::Ordering::Equal,
        "{got:?} vs {want:?}"
    );
    assert_eq!(
        got.1.cmp(want.1),
        std::cmp::Ordering::Equal,
        "{got:?} vs {want:?}"
    );
}

fn checkpoint_json(data: &[u8]) {
    let Ok(cp) = serde_json::from_slice::<Checkpoint>(data) else {
        return;
    };
    let _ = cp.sequence();
    let text = serde_json::to_vec_pretty(&cp).expect("a checkpoint serializes");
    let back: Checkpoint = serde_json::from_slice(&text).expect("a written checkpoint parses");
    assert_eq!(back, cp);
}
