//! When a job takes files: its schedule (a cron expression or an interval, in a time zone)
//! and its `active` windows. Pure time arithmetic, apart from the engine; the daemon's use
//! of it is `runtime::runs`, the job keys are read in `job::timing`.
//!
//! Theory of operation: a scheduled job has *slots*, the instants it runs at. A cron slot is
//! found by `croner` in the job's zone (jiff's time-zone database), which resolves the
//! nights the clocks change: a wall time the clock skips (spring forward) runs once, at the
//! first instant after the gap; a wall time that happens twice (fall back) runs once, at its
//! first occurrence. An `every` slot is a multiple of the interval after an anchor (the
//! slot of the job's last run, or the daemon's start), in real time, so it is not moved by
//! the clocks changing. A slot outside the job's `active` windows is no slot at all.
//! Windows are wall-clock times of the job's zone. docs/schedules.md has the decisions.

pub mod clock;

use std::time::Duration;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

pub use clock::Clock;

/// How a scheduled job's slots come.
#[derive(Debug, Clone)]
pub enum When {
    /// `schedule = "0 23 * * *"`: the expression as written, and as parsed.
    Cron {
        text: String,
        cron: Box<croner::Cron>,
    },
    /// `every = "3h"`.
    Every(Duration),
}

/// A job's schedule and windows, checked.
#[derive(Debug, Clone)]
pub struct Timing {
    /// `None`: the job takes files as they become ready (events and rescans).
    pub when: Option<When>,
    pub zone: TimeZone,
    /// The zone's name as the job wrote it, or the machine's zone.
    pub zone_name: String,
    /// `active`: when the job takes files; empty: always.
    pub active: Vec<Window>,
}

impl Default for Timing {
    fn default() -> Timing {
        let zone = TimeZone::system();
        Timing {
            zone_name: zone.iana_name().unwrap_or("local").to_string(),
            zone,
            when: None,
            active: Vec::new(),
        }
    }
}

/// How many slots a search looks at before it gives up (a cron expression that never
/// matches inside the windows, such as `0 3 * * *` with `active = ["Mon 06:00-20:00"]`).
const SEARCH_LIMIT: usize = 100_000;

/// Parses a cron expression of exactly 5 fields (minute, hour, day of month, month, day
/// of week; names like `MON`, `JAN` and nicknames like `@daily` allowed).
pub fn parse_cron(text: &str) -> Result<croner::Cron, String> {
    use croner::parser::{CronParser, Seconds, Year};
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(text)
        .map_err(|e| {
            format!(
                "expected a cron expression of 5 fields (minute hour day-of-month month day-of-week), like \"0 23 * * *\", found {text:?}: {e}"
            )
        })
}

/// A time zone by its IANA name (`Europe/Athens`), from the system's database (or the one
/// bundled into ferry on Windows).
pub fn parse_zone(name: &str) -> Result<TimeZone, String> {
    TimeZone::get(name).map_err(|_| {
        format!(
            "unknown time zone {name:?}; expected an IANA name like \"Europe/Athens\", \"America/New_York\" or \"UTC\""
        )
    })
}

impl Timing {
    pub fn is_scheduled(&self) -> bool {
        self.when.is_some()
    }

    /// Whether this job's files wait for something (a slot or a window) once ready.
    pub fn is_gated(&self) -> bool {
        self.when.is_some() || !self.active.is_empty()
    }

    /// The schedule as written: `schedule "0 23 * * *"` or `every 3h`.
    pub fn describe(&self) -> String {
        match &self.when {
            Some(When::Cron { text, .. }) => format!("schedule \"{text}\" ({})", self.zone_name),
            Some(When::Every(d)) => format!("every {}", fmt_duration(*d)),
            None => "on events".to_string(),
        }
    }

    /// Whether `t` is inside the job's windows (always, when it has none).
    pub fn inside(&self, t: Timestamp) -> bool {
        if self.active.is_empty() {
            return true;
        }
        let dt = t.to_zoned(self.zone.clone()).datetime();
        let day = dt.weekday().to_monday_zero_offset() as usize;
        let minute = dt.hour() as u16 * 60 + dt.minute() as u16;
        self.active.iter().any(|w| w.contains(day, minute))
    }

    /// The first whole minute after `t` at which [`inside`](Self::inside) changes, within
    /// eight days (`None`: it never does, e.g. no windows).
    pub fn window_change(&self, t: Timestamp) -> Option<Timestamp> {
        if self.active.is_empty() {
            return None;
        }
        let now = self.inside(t);
        let minute = 60;
        let mut at =
            Timestamp::from_second(t.as_second().div_euclid(minute) * minute + minute).ok()?;
        for _ in 0..8 * 24 * 60 {
            if self.inside(at) != now {
                return Some(at);
            }
            at = at.checked_add(SignedDuration::from_secs(minute)).ok()?;
        }
        None
    }

    /// The next slot strictly after `after` inside the windows; `anchor` is where an
    /// `every` interval counts from. `None` for a job without a schedule, or when none is
    /// found.
    pub fn next_slot(&self, after: Timestamp, anchor: Timestamp) -> Option<Timestamp> {
        let mut t = after;
        for _ in 0..SEARCH_LIMIT {
            let s = self.next_raw(t, anchor)?;
            if self.inside(s) {
                return Some(s);
            }
            t = s;
        }
        None
    }

    /// The latest slot inside the windows that is after `since` and not after `now`
    /// (`None`: no slot came in between).
    pub fn latest_slot(
        &self,
        since: Timestamp,
        now: Timestamp,
        anchor: Timestamp,
    ) -> Option<Timestamp> {
        let mut found = None;
        let mut t = since;
        for _ in 0..SEARCH_LIMIT {
            match self.next_slot(t, anchor) {
                Some(s) if s <= now => {
                    found = Some(s);
                    t = s;
                }
                _ => break,
            }
        }
        found
    }

    fn next_raw(&self, after: Timestamp, anchor: Timestamp) -> Option<Timestamp> {
        match self.when.as_ref()? {
            When::Cron { cron, .. } => cron
                .find_next_occurrence(&after.to_zoned(self.zone.clone()), false)
                .ok()
                .map(|z| z.timestamp()),
            When::Every(d) => {
                let step = (d.as_millis() as i64).max(1);
                let (a, t) = (anchor.as_millisecond(), after.as_millisecond());
                let k = if t < a { 0 } else { (t - a) / step + 1 };
                Timestamp::from_millisecond(a.checked_add(k.checked_mul(step)?)?).ok()
            }
        }
    }

    /// `t` in the job's zone, for people: `2026-12-03 23:00 EET`.
    pub fn local(&self, t: Timestamp) -> String {
        t.to_zoned(self.zone.clone())
            .strftime("%Y-%m-%d %H:%M %Z")
            .to_string()
    }
}

/// `3h`, `90m`, `45s`: a whole unit where it fits.
fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => format!("{}ms", d.as_millis()),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// One `active` window: `"Mon-Fri 06:00-20:00"`, `"Sat,Sun 08:00-12:00"`, `"22:00-06:00"`
/// (every day; an end before the start runs over midnight into the next day).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub text: String,
    /// Monday first.
    days: [bool; 7],
    /// Minutes after midnight; `end` may be 1440 (`24:00`).
    start: u16,
    end: u16,
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl Window {
    /// Parses a window; the error says what was expected.
    pub fn parse(text: &str) -> Result<Window, String> {
        let expected = "expected a window like \"Mon-Fri 06:00-20:00\", \"Sat,Sun 08:00-12:00\" or \"22:00-06:00\" (days, then a start and an end time)";
        let parts: Vec<&str> = text.split_whitespace().collect();
        let (days, times) = match parts.as_slice() {
            [times] => ([true; 7], *times),
            [days, times] => (
                parse_days(days).map_err(|e| format!("{e}; {expected}"))?,
                *times,
            ),
            _ => return Err(format!("{expected}, found {text:?}")),
        };
        let (start, end) = times
            .split_once('-')
            .ok_or_else(|| format!("{expected}, found {text:?}"))?;
        let start = parse_hhmm(start).ok_or_else(|| format!("{expected}, found {text:?}"))?;
        let end = parse_hhmm(end).ok_or_else(|| format!("{expected}, found {text:?}"))?;
        if start == end || start == 1440 {
            return Err(format!(
                "a window's start and end differ and the start is before 24:00 (a whole day is \"00:00-24:00\"), found {text:?}"
            ));
        }
        Ok(Window {
            text: text.to_string(),
            days,
            start,
            end,
        })
    }

    /// Whether a moment of weekday `day` (Monday 0) at `minute` after midnight is inside.
    fn contains(&self, day: usize, minute: u16) -> bool {
        if self.start < self.end {
            self.days[day] && self.start <= minute && minute < self.end
        } else {
            // Over midnight: from the start on a listed day, until the end of the next day.
            (self.days[day] && minute >= self.start)
                || (self.days[(day + 6) % 7] && minute < self.end)
        }
    }
}

/// `Mon-Fri`, `Sat,Sun`, `Mon,Wed-Fri`, `Fri-Mon` (a range may wrap past Sunday).
fn parse_days(text: &str) -> Result<[bool; 7], String> {
    let day = |s: &str| {
        DAYS.iter()
            .position(|d| d.eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown day {s:?} (use Mon, Tue, Wed, Thu, Fri, Sat, Sun)"))
    };
    let mut days = [false; 7];
    for item in text.split(',') {
        match item.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (day(a)?, day(b)?);
                let mut d = a;
                loop {
                    days[d] = true;
                    if d == b {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => days[day(item)?] = true,
        }
    }
    Ok(days)
}

/// `HH:MM` as minutes after midnight; `24:00` is 1440.
fn parse_hhmm(s: &str) -> Option<u16> {
    let (h, m) = s.split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    match (h, m) {
        (24, 0) => Some(1440),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
