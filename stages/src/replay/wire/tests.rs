use super::*;
use crate::record::{SequenceNumber, parse_ts};

/// Issue 11: a malformed annotation is reported by member and expected type, not value.
#[test]
fn marker_errors_do_not_repeat_payload_values() {
    for payload in [
        r#"{"_flux":{"replay":{"id":"INC-7","mode":"SUPERSECRET"},"origin":{}}}"#,
        r#"{"_flux":{"replay":{"id":4111111111111111,"mode":"fill"},"origin":{}}}"#,
        r#"{"_flux":{"fence":{"replay_id":"SUPERSECRET","phase":["SUPERSECRET"]}}}"#,
    ] {
        let err = parse_marker(payload.as_bytes(), DEFAULT_KEY)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("`_flux."), "{err}");
        assert!(
            !err.contains("SUPERSECRET") && !err.contains("4111"),
            "{err}"
        );
    }
}

fn opened() -> DateTime<Utc> {
    parse_ts("2026-11-25T12:00:00Z").unwrap()
}

#[test]
fn fences_round_trip_through_their_payload() {
    let open = Fence::open("INC-7", ReplayMode::Overwrite, opened());
    let payload = open.payload(DEFAULT_KEY);
    assert_eq!(
        std::str::from_utf8(&payload).unwrap(),
        r#"{"_flux":{"fence":{"mode":"overwrite","opened_at":"2026-11-25T12:00:00.000Z","phase":"open","replay_id":"INC-7"}}}"#
    );
    assert_eq!(
        parse_marker(&payload, DEFAULT_KEY).unwrap(),
        Marker::Fence(open.clone())
    );
    let close = open.close(FenceCounts {
        records: 12,
        shard_records: 3,
    });
    let payload = close.payload("meta");
    assert_eq!(
        parse_marker(&payload, "meta").unwrap(),
        Marker::Fence(close)
    );
    assert_eq!(parse_marker(&payload, DEFAULT_KEY).unwrap(), Marker::Live);
}

#[test]
fn replayed_records_are_recognised() {
    let payload = br#"{"order_id":"o-1","_flux":{"ticket":"INC-7","replay":{"id":"INC-7","mode":"fill"},"origin":{"stream":"orders","shard_id":"shardId-000000000001","sequence_number":"0042","arrival_ts":"2026-11-25T10:00:00.123Z"}}}"#;
    let Marker::Replayed(r) = parse_marker(payload, DEFAULT_KEY).unwrap() else {
        panic!("not recognised");
    };
    assert_eq!(r.replay.id, "INC-7");
    assert_eq!(r.replay.mode, ReplayMode::Fill);
    assert_eq!(r.origin.stream, "orders");
    // Kept as written; compared numerically.
    assert_eq!(r.origin.sequence_number.as_str(), "0042");
    assert_eq!(
        r.origin.sequence_number.cmp(&SequenceNumber::from_u64(42)),
        std::cmp::Ordering::Equal
    );
    assert_eq!(
        r.origin.arrival_ts,
        parse_ts("2026-11-25T10:00:00.123Z").unwrap()
    );
    let again = crate::transform::annotate::add_to_object(b"{}", DEFAULT_KEY, r.members());
    assert_eq!(
        parse_marker(&again.unwrap(), DEFAULT_KEY).unwrap(),
        Marker::Replayed(r)
    );
}

#[test]
fn everything_else_is_live() {
    for payload in [
        &b""[..],
        b"\x00\xff binary",
        b"not json \"_flux\"",
        b"[\"_flux\"]",
        b"\"_flux\"",
        br#"{"_flux":1}"#,
        br#"{"_flux":{"ticket":"INC-7"}}"#,
        br#"{"data":{"_flux":{"fence":{}}}}"#,
        br#"{"order_id":"o-1"}"#,
    ] {
        assert_eq!(
            parse_marker(payload, DEFAULT_KEY),
            Ok(Marker::Live),
            "{payload:?}"
        );
    }
}

#[test]
fn the_member_is_found_by_its_unescaped_name_and_the_last_duplicate_counts() {
    let fence = |id: &str| {
        format!(
            r#"{{"replay_id":"{id}","phase":"open","mode":"fill","opened_at":"2026-11-25T12:00:00.000Z"}}"#
        )
    };
    let id = |payload: &str| match parse_marker(payload.as_bytes(), DEFAULT_KEY) {
        Ok(Marker::Fence(f)) => Some(f.replay_id),
        Ok(Marker::Live) => None,
        other => panic!("{payload}: {other:?}"),
    };
    let a = fence("A");
    // Spelled with escapes: the same name to every JSON parser.
    assert_eq!(
        id(&format!(r#"{{"\u005fflux":{{"fence":{a}}}}}"#)).as_deref(),
        Some("A")
    );
    assert_eq!(
        id(&format!(r#"{{"k":"x","_\u0066l\u0075x":{{"fence":{a}}}}}"#)).as_deref(),
        Some("A")
    );
    // Duplicates: the last member counts, whatever it holds and however it is spelled.
    assert_eq!(
        id(&format!(
            r#"{{"_flux":{{"fence":{a}}},"_flux":{{"ticket":"INC-7"}}}}"#
        )),
        None
    );
    assert_eq!(
        id(&format!(
            r#"{{"_flux":{{"ticket":"INC-7"}},"\u005fflux":{{"fence":{a}}}}}"#
        ))
        .as_deref(),
        Some("A")
    );
    // Inside the member too.
    assert_eq!(
        id(&format!(
            r#"{{"_flux":{{"fence":{a},"fence":{}}}}}"#,
            fence("B")
        ))
        .as_deref(),
        Some("B")
    );
    assert_eq!(
            id(r#"{"_flux":{"fence":{"replay_id":"A","phase":"open","mode":"fill","opened_at":"2026-11-25T12:00:00.000Z","replay_id":"C"}}}"#)
                .as_deref(),
            Some("C")
        );
    // Not the top-level member, or not JSON as RFC 8259 defines it: live.
    assert_eq!(id(&format!(r#"{{"x":{{"_flux":{{"fence":{a}}}}}}}"#)), None);
    let mut bom = b"\xef\xbb\xbf".to_vec();
    bom.extend_from_slice(format!(r#"{{"_flux":{{"fence":{a}}}}}"#).as_bytes());
    assert_eq!(parse_marker(&bom, DEFAULT_KEY), Ok(Marker::Live));
    let mut latin1 = br#"{"n":"Zo"#.to_vec();
    latin1.push(0xe9);
    latin1.extend_from_slice(format!(r#"","_flux":{{"fence":{a}}}}}"#).as_bytes());
    assert_eq!(parse_marker(&latin1, DEFAULT_KEY), Ok(Marker::Live));
    assert_eq!(
        parse_marker(
            format!(r#"{{"_flux":{{"fence":{a}}},"n":NaN}}"#).as_bytes(),
            DEFAULT_KEY
        ),
        Ok(Marker::Live)
    );
}

#[test]
fn broken_protocol_members_are_errors() {
    for (payload, says) in [
        (
            &br#"{"_flux":{"fence":{"replay_id":"x"}}}"#[..],
            "`_flux.fence`",
        ),
        (
            br#"{"_flux":{"replay":{"id":"x","mode":"merge"}}}"#,
            "`_flux.replay`",
        ),
        (
            br#"{"_flux":{"replay":{"id":"x","mode":"fill"}}}"#,
            "without",
        ),
        (
            br#"{"_flux":{"replay":{"id":"x","mode":"fill"},"origin":{"stream":"s"}}}"#,
            "`_flux.origin`",
        ),
        (br#"{"_flux":{"fence":{},"replay":{}}}"#, "both"),
    ] {
        let e = parse_marker(payload, DEFAULT_KEY).unwrap_err();
        assert!(e.to_string().contains(says), "{e}");
    }
}
