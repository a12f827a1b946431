//! Configuration of a job's `[alert]` (sent by `outputs::alerts`).

use std::path::Path;

use chrono::NaiveTime;

use super::mail::EmailOutput;
use crate::job::toml_reader::{Doc, TableReader};

/// A job's `[alert]`.
#[derive(Debug, Clone)]
pub struct Alert {
    pub email: EmailOutput,
    /// Local time of the daily summary, if any.
    pub daily: Option<NaiveTime>,
}

/// Reads `[alert]`: the email keys of an output (`email`, `smtp`, `password`, `from`,
/// `subject`, `body`, ...) plus `daily`.
pub fn read(
    doc: &mut Doc<'_>,
    root: &Path,
    mut t: TableReader<'_, '_>,
    job: &str,
) -> Option<Alert> {
    let daily_s = t.str(doc, "daily");
    let daily = match &daily_s {
        Some(s) => match NaiveTime::parse_from_str(&s.value, "%H:%M") {
            Ok(v) => Some(Some(v)),
            Err(_) => {
                doc.error(
                    s.span.clone(),
                    &s.key,
                    format!("expected a time of day like \"08:00\", found {:?}", s.value),
                );
                None
            }
        },
        None => Some(None),
    };
    let outbox = crate::job::absolute(&root.join(format!("var/outbox/{job}/alerts")));
    let has_subject = t.has("subject");
    let has_body = t.has("body");
    let email = super::mail::read_email(doc, root, &mut t, outbox);
    t.finish_as(doc, "alert", "");
    let mut email = email?;
    if !has_subject {
        email.subject = "ferry {{ job }}: {{ name }}".into();
    }
    if !has_body {
        email.body = "{{ content }}".into();
    }
    Some(Alert {
        email,
        daily: daily?,
    })
}
