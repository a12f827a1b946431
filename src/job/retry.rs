//! Configuration of a job's `[retry]`: how often and how long a file whose delivery failed
//! for a reason that may pass is tried again (the queue itself: `runtime::retry`).

use std::time::Duration;

use super::toml_reader::{Doc, Str, TableReader, parse_duration};

/// A job's `[retry]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    /// The first retry comes about this long after the failure; later ones wait twice as
    /// long each time, up to `max`.
    pub every: Duration,
    /// The longest wait between two tries.
    pub max: Duration,
    /// How long a file is tried before it goes to the error folder; `None`: for ever.
    pub give_up_after: Option<Duration>,
    /// Whether the job file has a `[retry]` table. Without one, FTP and email outputs keep
    /// their quick reconnects (1 s doubling to 5 min) instead of `every`.
    pub written: bool,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            every: Duration::from_secs(60),
            max: Duration::from_secs(3600),
            give_up_after: Some(Duration::from_secs(7 * 86_400)),
            written: false,
        }
    }
}

impl Retry {
    /// Whether failures that may pass are retried at all (`for = "0"` turns it off: such a
    /// file goes to the error folder at once, as before retries existed).
    pub fn enabled(&self) -> bool {
        self.give_up_after != Some(Duration::ZERO)
    }
}

fn duration(
    doc: &mut Doc<'_>,
    s: Option<Str>,
    min: Duration,
    default: Duration,
) -> Option<Duration> {
    match s {
        None => Some(default),
        Some(s) => match parse_duration(&s.value) {
            Ok(v) if v >= min => Some(v),
            Ok(_) => {
                doc.error(
                    s.span.clone(),
                    &s.key,
                    format!(
                        "expected at least \"{}ms\", found {:?}",
                        min.as_millis(),
                        s.value
                    ),
                );
                None
            }
            Err(e) => {
                doc.error(s.span.clone(), &s.key, e);
                None
            }
        },
    }
}

/// Reads `[retry]` (`every`, `max`, `for`).
pub fn read(doc: &mut Doc<'_>, t: Option<TableReader<'_, '_>>) -> Option<Retry> {
    let d = Retry::default();
    let Some(mut t) = t else { return Some(d) };
    let every_s = t.str(doc, "every");
    let max_s = t.str(doc, "max");
    let for_s = t.str(doc, "for");
    t.finish_as(doc, "retry", "");
    let every = duration(doc, every_s, Duration::from_millis(100), d.every);
    let max_given = max_s.is_some();
    let max = duration(doc, max_s.clone(), Duration::from_millis(100), d.max);
    let give_up_after = match for_s {
        Some(s) if s.value.trim() == "forever" => Some(None),
        other => duration(
            doc,
            other,
            Duration::ZERO,
            d.give_up_after.expect("a default"),
        )
        .map(Some),
    };
    let (every, max, give_up_after) = (every?, max?, give_up_after?);
    // `max` below `every` when only `every` is written: the waits stay at `every`.
    let max = if max_given {
        if max < every {
            let s = max_s.expect("given");
            doc.error(
                s.span.clone(),
                &s.key,
                format!(
                    "expected at least `every` ({}), found {:?}",
                    humanize(every),
                    s.value
                ),
            );
            return None;
        }
        max
    } else {
        max.max(every)
    };
    Some(Retry {
        every,
        max,
        give_up_after,
        written: true,
    })
}

/// A duration as a job file writes it (`7d`, `1h`, `90s`).
pub fn humanize(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => format!("{}ms", d.as_millis()),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn compile(retry: &str) -> Result<Retry, Vec<String>> {
        let src = format!("[source]\nfolder = \"in\"\n[[output]]\nfolder = \"out\"\n{retry}");
        crate::job::compile(Path::new("jobs/t.toml"), Path::new("/srv/ferry"), &src)
            .map(|j| j.retry)
            .map_err(|e| e.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn retry_keys_defaults_forever_and_errors_with_their_position() {
        let d = compile("").unwrap();
        assert_eq!(d, Retry::default());
        assert!(!d.written && d.enabled());
        let r = compile("[retry]\nevery = \"1h\"\nfor = \"forever\"\n").unwrap();
        assert_eq!(r.every, Duration::from_secs(3600));
        assert_eq!(r.max, Duration::from_secs(3600), "max is at least every");
        assert_eq!(r.give_up_after, None);
        assert!(r.written && r.enabled());
        // The inline form is the same table.
        let src = "retry = { every = \"1h\", for = \"7d\" }\n[source]\nfolder = \"in\"\n";
        let inline = crate::job::compile(Path::new("jobs/t.toml"), Path::new("/srv/ferry"), src)
            .unwrap()
            .retry;
        assert_eq!(inline.every, Duration::from_secs(3600));
        assert_eq!(inline.give_up_after, Some(Duration::from_secs(7 * 86_400)));
        let off = compile("[retry]\nfor = \"0\"\n").unwrap();
        assert!(!off.enabled());
        let errs =
            compile("[retry]\nevery = \"soon\"\nfor = \"a week\"\nmax = \"1s\"\n").unwrap_err();
        assert!(
            errs[0].starts_with("jobs/t.toml:6:9: retry.every:"),
            "{errs:?}"
        );
        assert!(
            errs[1].starts_with("jobs/t.toml:7:7: retry.for:"),
            "{errs:?}"
        );
        let errs = compile("[retry]\nevery = \"1m\"\nmax = \"1s\"\n").unwrap_err();
        assert_eq!(
            errs,
            ["jobs/t.toml:7:7: retry.max: expected at least `every` (1m), found \"1s\""]
        );
        let errs = compile("[retry]\nevry = \"1m\"\n").unwrap_err();
        assert!(
            errs[0].contains("retry") && errs[0].contains("every"),
            "{errs:?}"
        );
    }

    #[test]
    fn durations_as_a_job_file_writes_them() {
        for (secs, text) in [(604_800, "7d"), (3600, "1h"), (90, "90s"), (120, "2m")] {
            assert_eq!(humanize(Duration::from_secs(secs)), text);
        }
        assert_eq!(humanize(Duration::from_millis(200)), "200ms");
    }
}
