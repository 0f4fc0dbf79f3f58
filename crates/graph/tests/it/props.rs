//! Property tests: parsing Graph and Entra JSON never panics; garbage pages are InvalidData.

use proptest::prelude::*;

use crate::common::*;

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        "[ -~]{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("2026-03-29T02:30:00.0000000"),
            Just("W. Europe Standard Time"),
            Just("UTC"),
            Just("seriesMaster"),
            Just("OOF"),
            Just("9999-12-31T23:59:59.9999999"),
            Just("-0001-01-01T00:00:00"),
            Just("3599"),
        ]
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    let keys = prop_oneof![
        Just("id"),
        Just("start"),
        Just("end"),
        Just("dateTime"),
        Just("timeZone"),
        Just("isAllDay"),
        Just("showAs"),
        Just("type"),
        Just("seriesMasterId"),
        Just("@removed"),
        Just("value"),
        Just("@odata.nextLink"),
        Just("@odata.deltaLink"),
        Just("error"),
        Just("code"),
        Just("innerError"),
        Just("access_token"),
        Just("expires_in"),
        Just("expires_on"),
        Just("error_codes"),
        Just("originalStartTimeZone"),
        Just("attendees"),
        Just("emailAddress"),
        Just("capacity"),
    ];
    leaf.prop_recursive(5, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(keys.clone().prop_map(str::to_owned), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn parsers_never_panic_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse_event(&bytes, "m@x");
        let _ = parse_delta_page(&bytes, "m@x");
        let _ = parse_token_response(&bytes, jiff::Timestamp::UNIX_EPOCH);
        let _ = classify_graph_error(400, &bytes, Some("m@x"));
        let _ = classify_entra_error(400, &bytes, "t", "c");
    }

    #[test]
    fn parsers_never_panic_on_arbitrary_json(v in json_value()) {
        let bytes = serde_json::to_vec(&v).unwrap();
        let _ = parse_event(&bytes, "m@x");
        let _ = parse_token_response(&bytes, jiff::Timestamp::now());
        let _ = classify_graph_error(429, &bytes, None);
        let _ = classify_entra_error(401, &bytes, "t", "c");
        let page = json!({"value": [v.clone()], "@odata.deltaLink": "https://graph.microsoft.com/v1.0/x"});
        let _ = parse_delta_page(&serde_json::to_vec(&page).unwrap(), "m@x");
        if let Ok(p) = parse_delta_page(&bytes, "m@x") {
            // Whatever parsed has a link to go on with.
            match p.next { DeltaNext::NextLink(l) | DeltaNext::DeltaLink(l) => prop_assert!(!l.trim().is_empty()) }
        }
    }

    #[test]
    fn truncated_pages_are_invalid_data(cut in 1usize..400) {
        let page = json!({
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Collection(event)",
            "@odata.deltaLink": "https://graph.microsoft.com/v1.0/me/calendarView/delta?$deltatoken=R0usmcMDNGg0J1E",
            "value": [{"id": "AAMk1", "start": {"dateTime": "2016-12-12T02:00:00.0000000", "timeZone": "UTC"},
                       "end": {"dateTime": "2016-12-12T07:30:00.0000000", "timeZone": "UTC"}, "subject": "Rest!"},
                      {"id": "AAMk2", "@removed": {"reason": "deleted"}}]
        });
        let bytes = serde_json::to_vec(&page).unwrap();
        let full = parse_delta_page(&bytes, "m@x").unwrap();
        prop_assert_eq!(full.items.len(), 2);
        let cut = cut.min(bytes.len() - 1);
        let e = parse_delta_page(&bytes[..cut], "m@x").unwrap_err();
        prop_assert_eq!(e.kind, ErrorKind::InvalidData);
    }
}
