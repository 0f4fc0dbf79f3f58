use super::*;

#[test]
fn to_rrule_all_kinds() {
    let s = date(2024, 1, 1);
    let mut w = weekly(2, &[Monday, Wednesday]);
    w.first_day_of_week = Sunday;
    assert_eq!(
        rec(w, s, RangeKind::Numbered(10)).to_rrule(),
        "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,WE;WKST=SU;COUNT=10"
    );
    assert_eq!(
        rec(pat(PatternType::Daily, 1), s, RangeKind::NoEnd).to_rrule(),
        "FREQ=DAILY;INTERVAL=1"
    );
    assert_eq!(
        rec(
            abs_monthly(3, 31),
            s,
            RangeKind::EndDate(date(2024, 12, 31))
        )
        .to_rrule(),
        "FREQ=MONTHLY;INTERVAL=3;BYMONTHDAY=31;UNTIL=20241231"
    );
    assert_eq!(
        rec(
            rel_monthly(1, &[Monday, Tuesday], WeekIndex::First),
            s,
            RangeKind::NoEnd
        )
        .to_rrule(),
        "FREQ=MONTHLY;INTERVAL=1;BYDAY=MO,TU;BYSETPOS=1"
    );
    assert_eq!(
        rec(
            rel_monthly(1, &[Friday], WeekIndex::Last),
            s,
            RangeKind::NoEnd
        )
        .to_rrule(),
        "FREQ=MONTHLY;INTERVAL=1;BYDAY=FR;BYSETPOS=-1"
    );
    assert_eq!(
        rec(abs_yearly(1, 2, 29), s, RangeKind::NoEnd).to_rrule(),
        "FREQ=YEARLY;INTERVAL=1;BYMONTH=2;BYMONTHDAY=29"
    );
    assert_eq!(
        rec(
            rel_yearly(1, 11, &[Thursday], WeekIndex::Fourth),
            s,
            RangeKind::NoEnd
        )
        .to_rrule(),
        "FREQ=YEARLY;INTERVAL=1;BYMONTH=11;BYDAY=TH;BYSETPOS=4"
    );
}

#[test]
fn to_rrule_zoned_until_is_utc_instant_of_last_start() {
    let r = rec(
        weekly(1, &[Monday]),
        date(2024, 1, 1),
        RangeKind::EndDate(date(2024, 7, 1)),
    );
    assert_eq!(
        r.to_rrule_zoned(time(9, 0, 0, 0), &tz("America/New_York"))
            .unwrap(),
        "FREQ=WEEKLY;INTERVAL=1;BYDAY=MO;WKST=SU;UNTIL=20240701T130000Z"
    );
}

#[test]
fn round_trip_through_rrule() {
    let s = date(2024, 5, 17);
    let mut w = weekly(3, &[Saturday, Monday]);
    w.first_day_of_week = Wednesday;
    let pats = [
        pat(PatternType::Daily, 4),
        w,
        abs_monthly(2, 30),
        rel_monthly(1, &[Saturday, Sunday], WeekIndex::Third),
        abs_yearly(3, 12, 25),
        rel_yearly(1, 9, &[Monday], WeekIndex::Last),
    ];
    for p in pats {
        for kind in [
            RangeKind::NoEnd,
            RangeKind::Numbered(7),
            RangeKind::EndDate(date(2030, 2, 3)),
        ] {
            let mut r = rec(p.clone(), s, kind);
            let back = Recurrence::from_rrule(&r.to_rrule(), s).unwrap();
            if !matches!(p.kind, PatternType::Weekly) {
                // WKST is only written for weekly rules; others get Graph's default.
                r.pattern.first_day_of_week = Sunday;
            }
            assert_eq!(back, r, "{}", r.to_rrule());
        }
    }
}

#[test]
fn from_rrule_inputs() {
    let s = date(2024, 3, 13); // a Wednesday
    let parse = |r: &str| Recurrence::from_rrule(r, s).unwrap();

    let r = parse("RRULE:FREQ=MONTHLY;BYDAY=1MO");
    assert_eq!(r.pattern, rel_monthly(1, &[Monday], WeekIndex::First));
    let r = parse("FREQ=MONTHLY;BYDAY=-1FR;COUNT=3");
    assert_eq!(r.pattern, rel_monthly(1, &[Friday], WeekIndex::Last));
    assert_eq!(r.range.kind, RangeKind::Numbered(3));
    let r = parse("freq=monthly;byday=mo,tu,we,th,fr;bysetpos=-1");
    assert_eq!(
        r.pattern,
        rel_monthly(
            1,
            &[Monday, Tuesday, Wednesday, Thursday, Friday],
            WeekIndex::Last
        )
    );
    // Defaults from DTSTART.
    let r = parse("FREQ=WEEKLY");
    assert_eq!(r.pattern.days_of_week, vec![Wednesday]);
    assert_eq!(r.pattern.first_day_of_week, Monday, "RFC 5545 default WKST");
    assert_eq!(parse("FREQ=MONTHLY").pattern, abs_monthly(1, 13));
    assert_eq!(parse("FREQ=YEARLY").pattern, abs_yearly(1, 3, 13));
    assert_eq!(parse("FREQ=YEARLY;BYMONTH=7").pattern, abs_yearly(1, 7, 13));
    assert_eq!(
        parse("FREQ=YEARLY;BYMONTH=11;BYDAY=4TH").pattern,
        rel_yearly(1, 11, &[Thursday], WeekIndex::Fourth)
    );
    // "Every weekday" written as DAILY;BYDAY.
    let mut every_weekday = weekly(1, &[Monday, Tuesday, Wednesday, Thursday, Friday]);
    every_weekday.first_day_of_week = Sunday;
    assert_eq!(
        parse("FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR").pattern,
        every_weekday
    );
    // UNTIL as date, floating date-time, UTC date-time.
    assert_eq!(
        parse("FREQ=DAILY;UNTIL=20240401").range.kind,
        RangeKind::EndDate(date(2024, 4, 1))
    );
    assert_eq!(
        parse("FREQ=DAILY;UNTIL=20240401T235959").range.kind,
        RangeKind::EndDate(date(2024, 4, 1))
    );
    assert_eq!(
        parse("FREQ=DAILY;UNTIL=20240401T035959Z").range.kind,
        RangeKind::EndDate(date(2024, 4, 1))
    );
}

#[test]
fn from_rrule_zoned_until_is_exact() {
    let tz = tz("America/New_York");
    let dtstart = date(2024, 3, 1)
        .at(9, 0, 0, 0)
        .to_zoned(tz.clone())
        .unwrap();
    let parse = |r: &str| Recurrence::from_rrule_zoned(r, &dtstart).unwrap();
    // 2024-04-01T13:00Z is 09:00 EDT on Apr 1: included.
    assert_eq!(
        parse("FREQ=DAILY;UNTIL=20240401T130000Z").range.kind,
        RangeKind::EndDate(date(2024, 4, 1))
    );
    // One second earlier: the Apr 1 occurrence is excluded.
    assert_eq!(
        parse("FREQ=DAILY;UNTIL=20240401T125959Z").range.kind,
        RangeKind::EndDate(date(2024, 3, 31))
    );
    // Early on Apr 2 UTC is still Apr 1 evening in New York.
    assert_eq!(
        parse("FREQ=DAILY;UNTIL=20240402T030000Z").range.kind,
        RangeKind::EndDate(date(2024, 4, 1))
    );
    assert_eq!(
        parse("FREQ=DAILY;UNTIL=20240401T085959").range.kind,
        RangeKind::EndDate(date(2024, 3, 31))
    );
    let r = parse("FREQ=DAILY;COUNT=2");
    assert_eq!(
        r.range.recurrence_time_zone.as_deref(),
        Some("America/New_York")
    );
    assert!(Recurrence::from_rrule_zoned("FREQ=DAILY;UNTIL=20240301T080000Z", &dtstart).is_err());
}

#[test]
fn from_rrule_unsupported_parts_are_named() {
    let s = date(2024, 3, 13);
    let unsupported = |r: &str, needle: &str| match Recurrence::from_rrule(r, s) {
        Err(e @ Error::Unsupported(_)) => {
            let m = e.to_string();
            assert!(m.contains(needle), "{r}: {m:?} should contain {needle:?}");
        }
        other => panic!("{r}: expected Unsupported, got {other:?}"),
    };
    unsupported("FREQ=HOURLY", "FREQ=HOURLY");
    unsupported("FREQ=MINUTELY;INTERVAL=15", "FREQ=MINUTELY");
    unsupported("FREQ=DAILY;BYHOUR=9,17", "BYHOUR=9,17");
    unsupported("FREQ=WEEKLY;BYMINUTE=30", "BYMINUTE");
    unsupported("FREQ=YEARLY;BYYEARDAY=100", "BYYEARDAY");
    unsupported("FREQ=YEARLY;BYWEEKNO=20;BYDAY=MO", "BYWEEKNO");
    unsupported(
        "FREQ=MONTHLY;BYMONTHDAY=1,15",
        "BYMONTHDAY with several days",
    );
    unsupported("FREQ=MONTHLY;BYMONTHDAY=-1", "BYMONTHDAY=-1");
    unsupported("FREQ=MONTHLY;BYDAY=MO;BYSETPOS=5", "BYSETPOS=5");
    unsupported(
        "FREQ=MONTHLY;BYDAY=MO;BYSETPOS=1,2",
        "BYSETPOS with several",
    );
    unsupported("FREQ=MONTHLY;BYDAY=5MO", "BYDAY=5MO");
    unsupported("FREQ=MONTHLY;BYDAY=1MO,3MO", "BYDAY=1MO,3MO");
    unsupported("FREQ=MONTHLY;BYDAY=MO", "every such weekday");
    unsupported(
        "FREQ=MONTHLY;BYDAY=FR;BYMONTHDAY=13",
        "BYMONTHDAY together with BYDAY",
    );
    unsupported("FREQ=YEARLY;BYMONTH=1,7", "BYMONTH with several");
    unsupported("FREQ=YEARLY;BYDAY=20MO", "without BYMONTH");
    unsupported("FREQ=YEARLY;BYMONTHDAY=15", "without BYMONTH");
    unsupported(
        "FREQ=DAILY;INTERVAL=2;BYDAY=MO",
        "DAILY rule with INTERVAL=2",
    );
    unsupported("FREQ=WEEKLY;BYDAY=1MO", "ordinal weekdays");
    unsupported("FREQ=WEEKLY;BYMONTH=3", "BYMONTH in a WEEKLY");
    unsupported("FREQ=DAILY;X-FOO=1", "X-FOO");
}

#[test]
fn from_rrule_malformed() {
    let s = date(2024, 3, 13);
    for bad in [
        "",
        "INTERVAL=2",
        "FREQ=SOMETIMES",
        "FREQ=DAILY;INTERVAL=0",
        "FREQ=DAILY;INTERVAL=x",
        "FREQ=DAILY;COUNT=0",
        "FREQ=DAILY;COUNT=2;UNTIL=20250101",
        "FREQ=DAILY;FREQ=WEEKLY",
        "FREQ=WEEKLY;BYDAY=XX",
        "FREQ=WEEKLY;WKST=XX",
        "FREQ=DAILY;UNTIL=2025-01-01",
        "FREQ=DAILY;UNTIL=20250230",
        "FREQ=DAILY;oops",
        "FREQ=MONTHLY;BYMONTHDAY=32",
    ] {
        match Recurrence::from_rrule(bad, s) {
            Err(Error::Parse(_)) => {}
            other => panic!("{bad:?}: expected Parse error, got {other:?}"),
        }
    }
    // UNTIL before DTSTART cannot be a Graph range.
    assert!(matches!(
        Recurrence::from_rrule("FREQ=DAILY;UNTIL=20240101", s),
        Err(Error::Invalid(_))
    ));
}

#[test]
fn from_rrule_local_until_with_start_time_in_dst_gap() {
    // Found by the oracle property test: 02:00 does not exist on 2029-10-07 in Sydney. The
    // nominal wall-clock time (not the shifted 03:00) decides which dates UNTIL includes.
    let sydney = tz("Australia/Sydney");
    let r = rec(
        pat(PatternType::Daily, 1),
        date(2029, 10, 7),
        RangeKind::EndDate(date(2029, 10, 8)),
    );
    let rrule = r.to_rrule_zoned(time(2, 0, 0, 0), &sydney).unwrap();
    assert_eq!(rrule, "FREQ=DAILY;INTERVAL=1;UNTIL=20291007T150000Z");
    let back =
        Recurrence::from_rrule_local(&rrule, date(2029, 10, 7).at(2, 0, 0, 0), &sydney).unwrap();
    assert_eq!(back.range.kind, RangeKind::EndDate(date(2029, 10, 8)));
}
