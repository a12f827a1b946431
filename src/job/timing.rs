//! `[source]`'s `schedule`, `every`, `timezone` and `active`: read into a checked
//! [`Timing`], every problem reported at its file:line:column.

use std::time::Duration;

use super::toml_reader::{Doc, TableReader, parse_duration};
use crate::schedule::{Timing, When, Window, parse_cron, parse_zone};

/// Reads the timing keys of a `[source]`; `None` when one of them is wrong (each problem
/// is reported).
pub(super) fn read(doc: &mut Doc<'_>, t: &mut TableReader<'_, '_>) -> Option<Timing> {
    let schedule = t.str(doc, "schedule");
    let every = t.str(doc, "every");
    let timezone = t.str(doc, "timezone");
    let active = t.str_list(doc, "active");
    let mut ok = true;
    let when = match (&schedule, &every) {
        (Some(_), Some(e)) => {
            doc.error(
                e.span.clone(),
                &e.key,
                "a job runs either on a `schedule` (cron) or `every` interval, not both; remove one",
            );
            ok = false;
            None
        }
        (Some(s), None) => match parse_cron(&s.value) {
            Ok(cron) => Some(When::Cron {
                text: s.value.trim().to_string(),
                cron: Box::new(cron),
            }),
            Err(e) => {
                doc.error(s.span.clone(), &s.key, e);
                ok = false;
                None
            }
        },
        (None, Some(e)) => match parse_duration(&e.value) {
            Ok(d) if d >= Duration::from_secs(1) => Some(When::Every(d)),
            Ok(_) => {
                doc.error(e.span.clone(), &e.key, "expected at least \"1s\"");
                ok = false;
                None
            }
            Err(msg) => {
                doc.error(e.span.clone(), &e.key, msg);
                ok = false;
                None
            }
        },
        (None, None) => None,
    };
    let mut timing = Timing {
        when,
        ..Timing::default()
    };
    if let Some(z) = timezone {
        match parse_zone(z.value.trim()) {
            Ok(zone) => {
                timing.zone = zone;
                timing.zone_name = z.value.trim().to_string();
            }
            Err(e) => {
                doc.error(z.span.clone(), &z.key, e);
                ok = false;
            }
        }
    }
    for w in active.unwrap_or_default() {
        match Window::parse(&w.value) {
            Ok(window) => timing.active.push(window),
            Err(e) => {
                doc.error(w.span.clone(), &w.key, e);
                ok = false;
            }
        }
    }
    ok.then_some(timing)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    fn errors(source: &str) -> Vec<String> {
        let src = format!("[source]\nfolder = \"in\"\n{source}\n[[output]]\nfolder = \"o\"\n");
        match super::super::compile(Path::new("jobs/t.toml"), Path::new("/srv/ferry"), &src) {
            Ok(_) => Vec::new(),
            Err(diags) => diags.iter().map(|d| d.to_string()).collect(),
        }
    }

    #[test]
    fn good_timing_keys_are_taken() {
        for ok in [
            "schedule = \"0 23 * * *\"\ntimezone = \"Europe/Athens\"",
            "every = \"3h\"\nactive = [\"Mon-Fri 06:00-20:00\", \"Sat 08:00-12:00\"]",
            "active = \"22:00-06:00\"",
            "schedule = \"@daily\"",
        ] {
            assert_eq!(errors(ok), Vec::<String>::new(), "{ok}");
        }
    }

    /// Each bad key is reported at its value's line and column, with what was expected.
    #[test]
    fn bad_timing_keys_are_reported_at_their_position() {
        let cases = [
            (
                "schedule = \"0 23 * *\"",
                "jobs/t.toml:3:12: source.schedule: expected a cron expression of 5 fields",
            ),
            (
                "timezone = \"Europe/Atlantis\"",
                "jobs/t.toml:3:12: source.timezone: unknown time zone \"Europe/Atlantis\"",
            ),
            (
                "active = [\"Mon-Fri 06:00-20:00\", \"Mon-Fri 6-20\"]",
                "jobs/t.toml:3:34: source.active[1]: expected a window like",
            ),
            (
                "schedule = \"0 23 * * *\"\nevery = \"3h\"",
                "jobs/t.toml:4:9: source.every: a job runs either on a `schedule` (cron) or `every` interval, not both",
            ),
            (
                "every = \"often\"",
                "jobs/t.toml:3:9: source.every: expected a duration",
            ),
            (
                "every = \"0\"",
                "jobs/t.toml:3:9: source.every: expected at least \"1s\"",
            ),
            (
                "shedule = \"0 23 * * *\"",
                "jobs/t.toml:3:1: source.shedule: unknown key `shedule`; did you mean `schedule`?",
            ),
        ];
        for (source, want) in cases {
            let got = errors(source);
            assert_eq!(got.len(), 1, "{source}: {got:?}");
            assert!(
                got[0].starts_with(want),
                "{source}:\n got {}\nwant {want}",
                got[0]
            );
        }
    }
}
