//! Configuration of a job's `[review]`: its files wait for an admin's decision before their
//! outputs are delivered (the holding and releasing: `runtime::review`; the commands:
//! `ferry pending`, `approve`, `reject`; docs/review.md).

use std::time::Duration;

use super::toml_reader::{Doc, TableReader, parse_duration};

/// A job's `[review]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Review {
    /// The field that identifies a record: a waiting file's records are compared with the
    /// last approved file's by it. `None`: the files are held without a comparison.
    pub key: Option<String>,
    /// What waits longer than this is reported (log, `ferry status`, the admin alert).
    pub expires: Duration,
}

/// `expires` when the job does not say.
pub const DEFAULT_EXPIRES: Duration = Duration::from_secs(7 * 86_400);

/// Reads `[review]` (`key`, `expires`). `has_input`: whether the job reads records, which a
/// `key` needs.
pub fn read(doc: &mut Doc<'_>, mut t: TableReader<'_, '_>, has_input: bool) -> Option<Review> {
    let key = t.str(doc, "key");
    let expires = t.str(doc, "expires");
    t.finish_as(doc, "review", "");
    let mut ok = true;
    if let Some(k) = &key {
        if k.value.trim().is_empty() {
            doc.error(k.span.clone(), &k.key, "expected a field name, found \"\"");
            ok = false;
        } else if !has_input {
            doc.error(
                k.span.clone(),
                &k.key,
                "`key` compares records, but the job reads none: add an `[input]` section that says how to read the file, or remove `key` (the files are then held without a comparison)",
            );
            ok = false;
        }
    }
    let expires = match expires {
        None => DEFAULT_EXPIRES,
        Some(s) => match parse_duration(&s.value) {
            Ok(d) if !d.is_zero() => d,
            Ok(_) => {
                doc.error(
                    s.span.clone(),
                    &s.key,
                    "expected a duration of more than 0, like \"7d\" or \"12h\"",
                );
                ok = false;
                DEFAULT_EXPIRES
            }
            Err(e) => {
                doc.error(s.span.clone(), &s.key, e);
                ok = false;
                DEFAULT_EXPIRES
            }
        },
    };
    ok.then(|| Review {
        key: key.map(|k| k.value.trim().to_string()),
        expires,
    })
}
