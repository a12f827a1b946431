use super::*;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn cron(expr: &str, zone: &str) -> Timing {
    Timing {
        when: Some(When::Cron {
            text: expr.into(),
            cron: Box::new(parse_cron(expr).unwrap()),
        }),
        zone: parse_zone(zone).unwrap(),
        zone_name: zone.into(),
        active: Vec::new(),
    }
}

/// Every slot from `from` to `to`, in order.
fn slots(t: &Timing, from: &str, to: &str) -> Vec<Timestamp> {
    let (mut at, to) = (ts(from), ts(to));
    let mut out = Vec::new();
    while let Some(s) = t.next_slot(at, at) {
        if s > to {
            break;
        }
        out.push(s);
        at = s;
    }
    out
}

#[test]
fn a_nightly_cron_runs_at_its_local_time() {
    let t = cron("0 23 * * *", "Europe/Athens");
    // Athens is UTC+2 in December: 23:00 local is 21:00 UTC.
    assert_eq!(
        t.next_slot(ts("2026-12-03T12:00:00Z"), ts("2026-12-03T12:00:00Z")),
        Some(ts("2026-12-03T21:00:00Z"))
    );
    // From the slot itself: the next night, not the same slot again.
    assert_eq!(
        t.next_slot(ts("2026-12-03T21:00:00Z"), ts("2026-12-03T21:00:00Z")),
        Some(ts("2026-12-04T21:00:00Z"))
    );
}

/// Table of the nights the clocks change: a wall time the clock skips or passes twice
/// runs exactly once that night.
#[test]
fn a_slot_on_the_nights_the_clocks_change_runs_once() {
    let cases = [
        // (zone, cron, night from, night to, the one slot expected (UTC))
        // Berlin, spring forward 2026-03-29: 02:00 CET -> 03:00 CEST, 02:30 never exists:
        // it runs at the first instant after the gap, 03:00 CEST.
        (
            "Europe/Berlin",
            "30 2 * * *",
            "2026-03-28T23:00:00Z",
            "2026-03-29T21:59:00Z",
            "2026-03-29T01:00:00Z",
        ),
        // Berlin, fall back 2026-10-25: 03:00 CEST -> 02:00 CET, 02:30 happens twice: the
        // first one (CEST, 00:30 UTC) runs, the second (CET, 01:30 UTC) does not.
        (
            "Europe/Berlin",
            "30 2 * * *",
            "2026-10-24T22:00:00Z",
            "2026-10-25T22:59:00Z",
            "2026-10-25T00:30:00Z",
        ),
        // Athens, spring forward 2026-03-29: 03:00 EET -> 04:00 EEST.
        (
            "Europe/Athens",
            "30 3 * * *",
            "2026-03-28T22:00:00Z",
            "2026-03-29T20:59:00Z",
            "2026-03-29T01:00:00Z",
        ),
        // Athens, fall back 2026-10-25: 04:00 EEST -> 03:00 EET.
        (
            "Europe/Athens",
            "30 3 * * *",
            "2026-10-24T21:00:00Z",
            "2026-10-25T21:59:00Z",
            "2026-10-25T00:30:00Z",
        ),
        // A time away from the change is not moved by it.
        (
            "Europe/Berlin",
            "0 23 * * *",
            "2026-10-24T22:00:00Z",
            "2026-10-25T22:59:00Z",
            "2026-10-25T22:00:00Z",
        ),
    ];
    for (zone, expr, from, to, want) in cases {
        let t = cron(expr, zone);
        assert_eq!(
            slots(&t, from, to),
            vec![ts(want)],
            "{zone} {expr:?} between {from} and {to}"
        );
    }
}

#[test]
fn the_days_around_a_change_keep_their_local_time() {
    let t = cron("30 2 * * *", "Europe/Berlin");
    let got: Vec<String> = slots(&t, "2026-03-27T00:00:00Z", "2026-03-31T00:00:00Z")
        .into_iter()
        .map(|s| t.local(s))
        .collect();
    assert_eq!(
        got,
        [
            "2026-03-27 02:30 CET",
            "2026-03-28 02:30 CET",
            "2026-03-29 03:00 CEST",
            "2026-03-30 02:30 CEST"
        ]
    );
}

#[test]
fn every_counts_real_time_from_its_anchor() {
    let t = Timing {
        when: Some(When::Every(Duration::from_secs(3 * 3600))),
        ..cron("0 0 * * *", "Europe/Berlin")
    };
    let anchor = ts("2026-03-28T22:00:00Z");
    assert_eq!(
        t.next_slot(anchor, anchor),
        Some(ts("2026-03-29T01:00:00Z"))
    );
    // Mid-interval: the next multiple, not `after + 3h`.
    assert_eq!(
        t.next_slot(ts("2026-03-29T02:10:00Z"), anchor),
        Some(ts("2026-03-29T04:00:00Z"))
    );
    // Before the anchor: the anchor itself.
    assert_eq!(
        t.next_slot(ts("2026-03-28T21:00:00Z"), anchor),
        Some(anchor)
    );
    // Across the spring-forward night: still 3 real hours apart.
    let got = slots(&t, "2026-03-28T22:00:00Z", "2026-03-29T07:00:00Z");
    assert_eq!(
        got,
        [
            ts("2026-03-29T01:00:00Z"),
            ts("2026-03-29T04:00:00Z"),
            ts("2026-03-29T07:00:00Z")
        ]
    );
    assert_eq!(t.describe(), "every 3h");
}

#[test]
fn latest_slot_coalesces_the_slots_missed_while_stopped() {
    let t = cron("0 23 * * *", "Europe/Athens");
    // Last run Monday 23:00 (21:00 UTC), started again Thursday 10:00: Tuesday's and
    // Wednesday's slots were missed; the latest, Wednesday's, stands for both.
    let last = ts("2026-11-30T21:00:00Z");
    assert_eq!(
        t.latest_slot(last, ts("2026-12-03T08:00:00Z"), last),
        Some(ts("2026-12-02T21:00:00Z"))
    );
    // Nothing missed: started again before the next slot.
    assert_eq!(t.latest_slot(last, ts("2026-12-01T20:00:00Z"), last), None);
}

fn windows(list: &[&str]) -> Timing {
    Timing {
        active: list.iter().map(|w| Window::parse(w).unwrap()).collect(),
        ..cron("0 0 * * *", "Europe/Athens")
    }
}

#[test]
fn windows_inside_and_outside() {
    // 2026-12-03 is a Thursday; Athens is UTC+2.
    let cases = [
        (vec!["Mon-Fri 06:00-20:00"], "2026-12-03T04:00:00Z", true), // Thu 06:00
        (vec!["Mon-Fri 06:00-20:00"], "2026-12-03T03:59:00Z", false), // Thu 05:59
        (vec!["Mon-Fri 06:00-20:00"], "2026-12-03T17:59:00Z", true), // Thu 19:59
        (vec!["Mon-Fri 06:00-20:00"], "2026-12-03T18:00:00Z", false), // Thu 20:00
        (vec!["Mon-Fri 06:00-20:00"], "2026-12-05T10:00:00Z", false), // Sat 12:00
        (vec!["Sat,Sun 08:00-12:00"], "2026-12-05T07:00:00Z", true), // Sat 09:00
        (vec!["Sat,Sun 08:00-12:00"], "2026-12-03T07:00:00Z", false), // Thu 09:00
        // Over midnight, every day.
        (vec!["22:00-06:00"], "2026-12-03T21:00:00Z", true), // Thu 23:00
        (vec!["22:00-06:00"], "2026-12-04T03:59:00Z", true), // Fri 05:59
        (vec!["22:00-06:00"], "2026-12-04T04:00:00Z", false), // Fri 06:00
        (vec!["22:00-06:00"], "2026-12-03T12:00:00Z", false), // Thu 14:00
        // Over midnight from Friday only: Saturday morning is inside, Friday morning not.
        (vec!["Fri 22:00-06:00"], "2026-12-05T02:00:00Z", true), // Sat 04:00
        (vec!["Fri 22:00-06:00"], "2026-12-04T02:00:00Z", false), // Fri 04:00
        // A day range past Sunday, and two windows.
        (vec!["Fri-Mon 00:00-24:00"], "2026-12-07T21:59:00Z", true), // Mon 23:59
        (vec!["Fri-Mon 00:00-24:00"], "2026-12-08T10:00:00Z", false), // Tue
        (
            vec!["Mon-Fri 06:00-08:00", "Mon-Fri 18:00-20:00"],
            "2026-12-03T17:00:00Z", // Thu 19:00
            true,
        ),
        (
            vec!["Mon-Fri 06:00-08:00", "Mon-Fri 18:00-20:00"],
            "2026-12-03T10:00:00Z", // Thu 12:00
            false,
        ),
    ];
    for (list, at, want) in cases {
        assert_eq!(windows(&list).inside(ts(at)), want, "{list:?} at {at}");
    }
    assert!(Timing::default().inside(ts("2026-12-03T03:00:00Z")));
}

#[test]
fn window_change_finds_the_next_opening() {
    let t = windows(&["Mon-Fri 06:00-20:00"]);
    // Friday 21:00 Athens: closed until Monday 06:00.
    assert_eq!(
        t.window_change(ts("2026-12-04T19:00:00Z")),
        Some(ts("2026-12-07T04:00:00Z"))
    );
    // Inside: until it closes at 20:00.
    assert_eq!(
        t.window_change(ts("2026-12-03T10:00:30Z")),
        Some(ts("2026-12-03T18:00:00Z"))
    );
    assert_eq!(
        Timing::default().window_change(ts("2026-12-03T10:00:00Z")),
        None
    );
}

#[test]
fn slots_outside_the_windows_are_no_slots() {
    let t = Timing {
        active: vec![Window::parse("Mon-Fri 00:00-24:00").unwrap()],
        ..cron("0 23 * * *", "Europe/Athens")
    };
    // Friday 23:00, then Monday 23:00: the weekend's are not slots.
    let got = slots(&t, "2026-12-04T00:00:00Z", "2026-12-08T00:00:00Z");
    assert_eq!(
        got,
        [ts("2026-12-04T21:00:00Z"), ts("2026-12-07T21:00:00Z")]
    );
}

#[test]
fn bad_expressions_zones_and_windows_say_what_was_expected() {
    for bad in [
        "0 23 * *",
        "0 0 23 * * *",
        "61 23 * * *",
        "0 23 * * Funday",
        "",
    ] {
        let e = parse_cron(bad).unwrap_err();
        assert!(
            e.starts_with("expected a cron expression of 5 fields"),
            "{bad:?}: {e}"
        );
    }
    assert!(parse_cron("@daily").is_ok());
    assert!(parse_cron("*/15 6-20 * * MON-FRI").is_ok());
    assert!(parse_zone("Europe/Athens").is_ok());
    assert!(parse_zone("UTC").is_ok());
    let e = parse_zone("Europe/Atlantis").unwrap_err();
    assert!(
        e.starts_with("unknown time zone \"Europe/Atlantis\""),
        "{e}"
    );
    for bad in [
        "Mon-Fri",
        "Mon-Fri 6-20",
        "Mon-Fri 06:00",
        "Mon-Fri 25:00-26:00",
        "Mon-Fri 06:00-06:00",
        "Monday-Fri 06:00-20:00",
        "Mon-Fri 06:00-20:00 extra",
    ] {
        assert!(Window::parse(bad).is_err(), "{bad:?} was taken");
    }
    let e = Window::parse("Mon-Fry 06:00-20:00").unwrap_err();
    assert!(e.starts_with("unknown day \"Fry\""), "{e}");
}

#[test]
fn day_of_month_and_day_of_week_match_either_as_in_cron() {
    // "at midnight on the 13th, and on Fridays": Friday 2026-12-04 and Sunday the 13th.
    let t = cron("0 0 13 * FRI", "UTC");
    let got = slots(&t, "2026-12-01T00:00:00Z", "2026-12-14T00:00:00Z");
    assert_eq!(
        got,
        [
            ts("2026-12-04T00:00:00Z"),
            ts("2026-12-11T00:00:00Z"),
            ts("2026-12-13T00:00:00Z")
        ]
    );
}
