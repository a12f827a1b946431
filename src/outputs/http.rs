//! The HTTP deliverer (issue 17): sends an HTTP output's outbox files as REST or SOAP
//! requests, a [`Deliverer`] fed by [`super::outbox`] like FTP (backoff, the error folder,
//! `[retry] for`, `ferry status` and `run --once` come from there).
//!
//! # Theory of operation
//!
//! - `body = "file"`: one request per outbox file; `body = "record"`: the outbox file holds
//!   the records as JSON lines and each line is one request (its JSON object, or `template`
//!   rendered with its fields: a SOAP envelope).
//! - Every request carries an idempotency key derived from the journal's id, the job, the
//!   file's `{seq}` (the number the outbox name starts with), the output and the record, so
//!   a request sent again after a failure or a crash carries the same key.
//! - Each request's outcome is journaled in `http_sent` (acknowledged, or refused and set
//!   aside with `on_error = "skip"`) without waiting; a delivery that starts again (after a
//!   crash, after a retried failure) sends only the records without an outcome. A crash
//!   between an answer and its journal write sends that one request again, with its key:
//!   a receiver that honours the key does it once (docs/http.md).
//! - Answers: 2xx acknowledged; 408, 429 (its `Retry-After` honoured), 5xx and no answer
//!   are retried with the outbox's backoff; any other answer (and a SOAP fault) refuses
//!   the file (error folder, with the status and the start of the body), or with
//!   `on_error = "skip"` only the record, written to `NAME.refused.jsonl` in the error
//!   folder.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::{Delivered, Deliverer};
use crate::fsutil;
use crate::job::http::{Body, HttpEndpoint, OnRefused};
use crate::job::template::Vars;
use crate::job::{Exists, Job};
use crate::journal::{Journal, now_ms};
use crate::protocol::http::{self as client, Answer, Payload, Verdict};
use crate::protocol::{RResult, RemoteError};
use crate::sources::staging::{free_text, int, text};

/// Each request's outcome, by outbox file and record (0 for `body = "file"`). Created on
/// first use, as `deliveries` (an older ferry ignores it).
pub(crate) const CREATE_HTTP_SENT: &str = "CREATE TABLE IF NOT EXISTS http_sent (
    job TEXT NOT NULL,
    idx INTEGER NOT NULL,
    file TEXT NOT NULL,
    record INTEGER NOT NULL,
    status INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT,
    at INTEGER NOT NULL,
    PRIMARY KEY (job, idx, file, record)
)";

/// The most of one answer kept in the journal for the response file of `body = "record"`.
const MAX_KEPT_ANSWER: usize = 64 * 1024;

pub struct HttpDeliverer {
    job: Arc<Job>,
    idx: usize,
    ep: HttpEndpoint,
    journal: Arc<Journal>,
    agent: Option<ureq::Agent>,
    /// The wait a 429/503 asked for, taken by the outbox runner after a failure.
    retry_after: Option<Duration>,
    journal_id: Option<String>,
    /// `template`, compiled once.
    env: Option<minijinja::Environment<'static>>,
}

/// An outbox name `SEQ-NAME` as (SEQ, NAME); a name without the number is its own key.
pub fn split_outbox_name(rel: &str) -> (Option<u64>, &str) {
    match rel.split_once('-') {
        Some((n, rest)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
            (n.parse().ok(), rest)
        }
        _ => (None, rel),
    }
}

/// The idempotency key of one request: a UUID-shaped hash of (journal id, job, the file's
/// `{seq}`, output number, record number). The same request always gets the same key; no
/// two requests of one journal do, and a new journal (whose `{seq}` start again) gives new
/// keys.
pub fn idempotency_key(journal_id: &str, job: &str, file: &str, idx: usize, record: u64) -> String {
    let mut h = Sha256::new();
    for part in [journal_id, job, file] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    h.update((idx as u64 + 1).to_be_bytes());
    h.update(record.to_be_bytes());
    let mut b: [u8; 16] = h.finalize()[..16].try_into().expect("16 bytes");
    // UUID version 8 (custom), RFC 9562 variant: what most APIs' key checks expect.
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let x = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &x[..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..]
    )
}

/// A guess at a file's content type from its extension.
fn content_type_of(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map_or("", |(_, e)| e)
        .to_ascii_lowercase();
    match ext.as_str() {
        "json" => "application/json",
        "jsonl" | "ndjson" => "application/x-ndjson",
        "xml" => "application/xml",
        "csv" => "text/csv; charset=utf-8",
        "txt" => "text/plain; charset=utf-8",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        _ => "application/octet-stream",
    }
}

impl HttpDeliverer {
    pub fn new(job: Arc<Job>, idx: usize, ep: HttpEndpoint, journal: Arc<Journal>) -> Self {
        let env = ep.template.as_ref().and_then(|src| {
            let mut env = crate::formats::template_out::environment();
            env.add_template_owned("body", src.clone()).ok()?;
            Some(env)
        });
        HttpDeliverer {
            job,
            idx,
            ep,
            journal,
            agent: None,
            retry_after: None,
            journal_id: None,
            env,
        }
    }

    fn agent(&mut self) -> RResult<ureq::Agent> {
        if self.agent.is_none() {
            self.agent = Some(client::agent(&self.ep.access).map_err(RemoteError::Transient)?);
        }
        Ok(self.agent.clone().expect("made above"))
    }

    fn journal_id(&mut self) -> String {
        if self.journal_id.is_none() {
            self.journal_id = self.journal.read(crate::journal::journal_id).ok().flatten();
        }
        self.journal_id.clone().unwrap_or_default()
    }

    /// The headers every request of this file carries, secrets resolved now. A secret
    /// that cannot be read may be set later: the file waits (transient).
    fn headers(&self, content_type: &str) -> RResult<Vec<(String, String)>> {
        let mut out = vec![("Content-Type".to_string(), content_type.to_string())];
        if let Some(action) = &self.ep.soap_action {
            out.push(("SOAPAction".into(), format!("\"{action}\"")));
        }
        self.ep
            .access
            .request_headers(out)
            .map_err(RemoteError::Transient)
    }

    /// The outcomes journaled for an outbox file: record number -> outcome.
    fn outcomes(&self, rel: &str) -> RResult<std::collections::HashSet<u64>> {
        self.journal
            .read(|c| {
                let mut st = c.prepare(
                    "SELECT record FROM http_sent WHERE job = ?1 AND idx = ?2 AND file = ?3",
                )?;
                let rows = st.query_map(
                    rusqlite::params![self.job.name, self.idx as i64, rel],
                    |r| r.get::<_, i64>(0),
                )?;
                rows.map(|r| r.map(|n| n as u64)).collect()
            })
            .map_err(|e| RemoteError::Transient(format!("journal: {e}")))
    }

    fn journal_outcome(
        &self,
        rel: &str,
        record: u64,
        status: u16,
        outcome: &str,
        detail: Option<String>,
    ) {
        let _ = self.journal.exec(
            "INSERT OR REPLACE INTO http_sent (job, idx, file, record, status, outcome, detail, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            vec![
                text(&self.job.name),
                int(self.idx as i64),
                text(rel),
                int(record as i64),
                int(i64::from(status)),
                text(outcome),
                detail.map_or(rusqlite::types::Value::Null, |d| free_text(&d)),
                int(now_ms()),
            ],
            false,
        );
    }

    /// Sends one request and sorts its answer. `Ok(None)`: acknowledged; `Ok(Some(..))`:
    /// refused for good (status, message); `Err`: retry later.
    fn request(
        &mut self,
        headers: &[(String, String)],
        key: &str,
        payload: Payload<'_>,
    ) -> RResult<(Answer, Option<String>)> {
        let agent = self.agent()?;
        let mut all = headers.to_vec();
        if let Some(h) = &self.ep.idempotency_header {
            all.push((h.clone(), key.to_string()));
        }
        let answer = client::send(&agent, &self.ep, &all, payload).map_err(|e| {
            self.agent = None;
            RemoteError::Transient(crate::redact::scrub(&e).into_owned())
        })?;
        match answer.verdict(self.ep.soap_action.is_some()) {
            Verdict::Accepted => Ok((answer, None)),
            Verdict::Retry(msg) => {
                self.retry_after = answer.retry_after;
                Err(RemoteError::Transient(msg))
            }
            Verdict::Refused(msg) => Ok((answer, Some(msg))),
        }
    }

    fn vars<'a>(&'a self, name: &'a str, seq: u64) -> Vars<'a> {
        Vars {
            name,
            dir: "",
            job: &self.job.name,
            seq,
            taken: chrono::Local::now(),
            record: None,
            mail: None,
        }
    }

    /// `body = "file"`: the outbox file is the body.
    fn send_file(&mut self, local: &Path, rel: &str, name: &str, seq: u64) -> RResult<Delivered> {
        if !self.outcomes(rel)?.is_empty() {
            // Acknowledged before a crash; only the outbox bookkeeping was missing.
            return Ok(Delivered::Sent(self.ep.display()));
        }
        let ct = self
            .ep
            .content_type
            .clone()
            .unwrap_or_else(|| content_type_of(name).to_string());
        let headers = self.headers(&ct)?;
        let key = idempotency_key(
            &self.journal_id(),
            &self.job.name,
            &seq_key(seq, rel),
            self.idx,
            0,
        );
        let file = std::fs::File::open(local)
            .map_err(|e| RemoteError::Transient(format!("cannot open the outbox file: {e}")))?;
        let (answer, refused) = self.request(&headers, &key, Payload::File(file))?;
        if let Some(msg) = refused {
            return Err(RemoteError::Permanent(msg));
        }
        if let Some(tpl) = &self.ep.response {
            let path = PathBuf::from(tpl.render(&self.vars(name, seq)));
            save_replacing(&path, &answer.body).map_err(|e| {
                RemoteError::Transient(format!("cannot save the response {}: {e}", path.display()))
            })?;
        }
        self.journal_outcome(rel, 0, answer.status, "acknowledged", None);
        Ok(Delivered::Sent(self.ep.display()))
    }

    /// The body of one record (a JSON line): the line itself, or `template` rendered.
    fn record_body(
        &self,
        line: &str,
        rec_no: u64,
        key: &str,
        name: &str,
    ) -> Result<String, String> {
        let Some(env) = &self.env else {
            return Ok(line.to_string());
        };
        // The line read back as the record it was written from: values as text, numbers
        // as written (`12.50` stays `12.50`), as text output templates see them.
        use crate::formats::json_in::{JsonInOptions, JsonInStyle, JsonReader};
        let mut rec = crate::formats::Record::default();
        let opts = JsonInOptions {
            style: JsonInStyle::Lines,
            records: None,
        };
        match JsonReader::new(line.as_bytes(), opts).read_into(&mut rec) {
            Ok(true) => {}
            Ok(false) => return Err("an empty record".into()),
            Err(e) => return Err(format!("not a JSON record: {e}")),
        }
        let mut fields = std::collections::BTreeMap::new();
        for (k, v) in rec.names.iter().zip(&rec.values) {
            fields.insert(k.clone(), minijinja::Value::from(v.as_str()));
        }
        let mut ctx = fields.clone();
        ctx.insert("record".into(), minijinja::Value::from(fields));
        ctx.insert("rec_no".into(), minijinja::Value::from(rec_no));
        ctx.insert("idempotency_key".into(), minijinja::Value::from(key));
        ctx.insert("job".into(), minijinja::Value::from(self.job.name.as_str()));
        ctx.insert("name".into(), minijinja::Value::from(name));
        let tpl = env.get_template("body").map_err(|e| e.to_string())?;
        tpl.render(minijinja::Value::from(ctx))
            .map_err(|e| format!("the template failed: {e}"))
    }

    fn record_content_type(&self, body: &str) -> String {
        if let Some(ct) = &self.ep.content_type {
            return ct.clone();
        }
        if self.env.is_none() {
            return "application/json".into();
        }
        if self.ep.soap_action.is_some() {
            return "text/xml; charset=utf-8".into();
        }
        match body.trim_start().chars().next() {
            Some('<') => "application/xml; charset=utf-8".into(),
            Some('{' | '[') => "application/json".into(),
            _ => "text/plain; charset=utf-8".into(),
        }
    }

    /// `body = "record"`: each JSON line of the outbox file is one request; lines with an
    /// outcome in the journal are not sent again.
    fn send_records(
        &mut self,
        local: &Path,
        rel: &str,
        name: &str,
        seq: u64,
    ) -> RResult<Delivered> {
        let done = self.outcomes(rel)?;
        let file = std::fs::File::open(local)
            .map_err(|e| RemoteError::Transient(format!("cannot open the outbox file: {e}")))?;
        let reader = std::io::BufReader::with_capacity(256 * 1024, file);
        let journal_id = self.journal_id();
        let file_key = seq_key(seq, rel);
        let mut headers: Option<(String, Vec<(String, String)>)> = None;
        let (mut sent, mut skipped) = (0u64, 0u64);
        for (i, line) in reader.lines().enumerate() {
            let rec_no = i as u64 + 1;
            let line = line
                .map_err(|e| RemoteError::Transient(format!("cannot read the outbox file: {e}")))?;
            if line.trim().is_empty() || done.contains(&rec_no) {
                continue;
            }
            let key = idempotency_key(&journal_id, &self.job.name, &file_key, self.idx, rec_no);
            let body = match self.record_body(&line, rec_no, &key, name) {
                Ok(b) => b,
                Err(msg) => {
                    self.refuse(
                        rel,
                        rec_no,
                        0,
                        &format!("record {rec_no}: {msg}"),
                        &line,
                        sent,
                    )?;
                    skipped += 1;
                    continue;
                }
            };
            let ct = self.record_content_type(&body);
            if headers.as_ref().is_none_or(|(c, _)| *c != ct) {
                headers = Some((ct.clone(), self.headers(&ct)?));
            }
            let hs = &headers.as_ref().expect("set above").1;
            let (answer, refused) = match self.request(hs, &key, Payload::Bytes(body.as_bytes())) {
                Ok(x) => x,
                Err(e) => {
                    return Err(RemoteError::Transient(format!(
                        "record {rec_no}: {e}{}",
                        progress(sent)
                    )));
                }
            };
            if let Some(msg) = refused {
                let msg = format!("record {rec_no}: {msg}");
                self.refuse(rel, rec_no, answer.status, &msg, &line, sent)?;
                skipped += 1;
                continue;
            }
            let detail = self.ep.response.as_ref().map(|_| {
                let body = &answer.body[..answer.body.len().min(MAX_KEPT_ANSWER)];
                let response = serde_json::from_slice::<serde_json::Value>(body)
                    .unwrap_or_else(|_| String::from_utf8_lossy(body).into_owned().into());
                serde_json::json!({
                    "record": rec_no,
                    "status": answer.status,
                    "idempotency_key": key,
                    "response": response,
                })
                .to_string()
            });
            self.journal_outcome(rel, rec_no, answer.status, "acknowledged", detail);
            sent += 1;
        }
        self.finish_records(rel, name, seq)?;
        if skipped > 0 {
            tracing::warn!(job = %self.job.name, file = %name, refused = skipped, "Records refused by the service were set aside (on_error = \"skip\").");
        }
        Ok(Delivered::Sent(self.ep.display()))
    }

    /// A refused record: with `on_error = "skip"` journaled and set aside (`Ok`); else the
    /// file fails (the records acknowledged before stay sent).
    fn refuse(
        &mut self,
        rel: &str,
        rec_no: u64,
        status: u16,
        msg: &str,
        line: &str,
        sent: u64,
    ) -> RResult<()> {
        match self.ep.on_error {
            OnRefused::Skip => {
                let request = serde_json::from_str::<serde_json::Value>(line)
                    .unwrap_or_else(|_| line.to_string().into());
                let detail = serde_json::json!({
                    "record": rec_no,
                    "status": status,
                    "error": msg,
                    "request": request,
                })
                .to_string();
                tracing::warn!(job = %self.job.name, file = %rel, error = %msg, "Record refused; set aside (on_error = \"skip\").");
                self.journal_outcome(rel, rec_no, status, "refused", Some(detail));
                Ok(())
            }
            OnRefused::Fail => Err(RemoteError::Permanent(format!(
                "{msg}{}; the records after it were not sent",
                progress(sent)
            ))),
        }
    }

    /// After the last record: the response file and the refused records' file, both made
    /// from the journal (so records acknowledged before a crash are in them too).
    fn finish_records(&mut self, rel: &str, name: &str, seq: u64) -> RResult<()> {
        // The outcomes are written without waiting; these files are made from them.
        self.journal
            .flush()
            .map_err(|e| RemoteError::Transient(format!("journal: {e}")))?;
        let refused = self.count(rel, "refused");
        if let Some(tpl) = &self.ep.response {
            let path = PathBuf::from(tpl.render(&self.vars(name, seq)));
            let lines = self.details(rel, "acknowledged");
            save_replacing(&path, lines.as_bytes()).map_err(|e| {
                RemoteError::Transient(format!("cannot save the responses {}: {e}", path.display()))
            })?;
        }
        if refused > 0 {
            let dir = PathBuf::from(self.job.after.error.render(&self.vars(name, seq)));
            let base = name.rsplit('/').next().unwrap_or(name);
            let (stem, _) = fsutil::split_name(base);
            let path = dir.join(fsutil::fit_component(&format!("{stem}.refused.jsonl")));
            let lines = self.details(rel, "refused");
            save_replacing(&path, lines.as_bytes()).map_err(|e| {
                RemoteError::Transient(format!("cannot write {}: {e}", path.display()))
            })?;
        }
        Ok(())
    }

    fn count(&self, rel: &str, outcome: &str) -> u64 {
        self.journal
            .read(|c| {
                c.query_row(
                    "SELECT COUNT(*) FROM http_sent WHERE job = ?1 AND idx = ?2 AND file = ?3 AND outcome = ?4",
                    rusqlite::params![self.job.name, self.idx as i64, rel, outcome],
                    |r| r.get::<_, i64>(0),
                )
            })
            .unwrap_or(0) as u64
    }

    /// The journaled details of one outcome, as JSON lines in record order.
    fn details(&self, rel: &str, outcome: &str) -> String {
        self.journal
            .read(|c| {
                let mut st = c.prepare(
                    "SELECT detail FROM http_sent WHERE job = ?1 AND idx = ?2 AND file = ?3 AND outcome = ?4 AND detail IS NOT NULL ORDER BY record",
                )?;
                let rows = st.query_map(
                    rusqlite::params![self.job.name, self.idx as i64, rel, outcome],
                    |r| r.get::<_, String>(0),
                )?;
                let mut out = String::new();
                for r in rows {
                    out.push_str(&r?);
                    out.push('\n');
                }
                Ok(out)
            })
            .unwrap_or_default()
    }
}

/// What a failure message says about the records sent before it.
fn progress(sent: u64) -> String {
    if sent == 0 {
        String::new()
    } else {
        format!(" ({sent} records before it were acknowledged and are not sent again)")
    }
}

/// The file part of the idempotency key: the `{seq}`, or the outbox name without one.
fn seq_key(seq: u64, rel: &str) -> String {
    if seq > 0 {
        seq.to_string()
    } else {
        rel.to_string()
    }
}

/// Writes `bytes` to `path` durably, replacing what is there: a request sent again after a
/// crash gets the same answer from a service that honours its key, and replaces its copy.
fn save_replacing(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("no folder"))?;
    fsutil::create_dir_all_durable(dir)?;
    let tmp = dir.join(format!(".{}", fsutil::temp_name()));
    let mut f = std::fs::File::create(&tmp)?;
    let written = f.write_all(bytes).and_then(|_| f.sync_all());
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    fsutil::sync_dir(dir)
}

impl Deliverer for HttpDeliverer {
    fn deliver(
        &mut self,
        local: &Path,
        rel: &str,
        _size: u64,
        _exists: Exists,
        _done_file: Option<&str>,
    ) -> RResult<Delivered> {
        let (seq, name) = split_outbox_name(rel);
        let seq = seq.unwrap_or(0);
        let out = match self.ep.body {
            Body::File => self.send_file(local, rel, name, seq),
            Body::Record => self.send_records(local, rel, name, seq),
        };
        out.map_err(|e| match e {
            RemoteError::Permanent(m) => {
                RemoteError::Permanent(crate::redact::scrub(&m).into_owned())
            }
            RemoteError::Transient(m) => {
                RemoteError::Transient(crate::redact::scrub(&m).into_owned())
            }
        })
    }

    /// The journal's per-request outcomes decide what is sent again, not the server.
    fn is_there(&mut self, _name: &str, _local: &Path, _size: u64) -> RResult<bool> {
        Ok(false)
    }

    fn retry_after(&mut self) -> Option<Duration> {
        self.retry_after.take()
    }

    fn disconnect(&mut self) {
        self.agent = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbox_names_carry_the_seq() {
        assert_eq!(split_outbox_name("42-orders.csv"), (Some(42), "orders.csv"));
        assert_eq!(split_outbox_name("7-a-b.json"), (Some(7), "a-b.json"));
        assert_eq!(split_outbox_name("orders.csv"), (None, "orders.csv"));
        assert_eq!(split_outbox_name("x-1.csv"), (None, "x-1.csv"));
    }

    #[test]
    fn keys_are_stable_and_distinct() {
        let k = idempotency_key("j1", "orders", "42", 0, 3);
        assert_eq!(k, idempotency_key("j1", "orders", "42", 0, 3));
        assert_eq!(k.len(), 36);
        assert_eq!(&k[14..15], "8", "UUID version 8: {k}");
        let others = [
            idempotency_key("j2", "orders", "42", 0, 3),
            idempotency_key("j1", "orders2", "42", 0, 3),
            idempotency_key("j1", "orders", "43", 0, 3),
            idempotency_key("j1", "orders", "42", 1, 3),
            idempotency_key("j1", "orders", "42", 0, 4),
        ];
        for o in others {
            assert_ne!(k, o);
        }
    }
}
