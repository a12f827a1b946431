//! The secrets of a job, taught to [`crate::redact`] so that no log line, journal row or
//! report ever shows them.

use std::path::Path;

use super::Job;
use crate::secrets::Secret;

/// The secrets a job is configured with: FTP/FTPS source and outputs, the mailbox, email
/// and database outputs and the alert's SMTP server.
pub fn job_secrets(job: &Job) -> Vec<&Secret> {
    let mut out = Vec::new();
    if let Some(r) = &job.source.remote
        && let super::remote::Endpoint::Ftp(e) = &r.endpoint
    {
        out.extend(e.password.as_ref());
    }
    if let Some(m) = &job.source.mailbox {
        out.push(&m.password);
    }
    if let Some(d) = &job.source.database {
        out.extend(d.secrets.iter());
    }
    for o in &job.outputs {
        if let Some(d) = &o.deliver
            && let super::remote::Endpoint::Ftp(e) = &d.endpoint
        {
            out.extend(e.password.as_ref());
        }
        if let Some(e) = &o.email {
            out.extend(e.password.as_ref());
        }
        if let super::data::OutputFormat::Database(db, _) = &o.data.format {
            out.extend(db.url.password.as_ref());
        }
    }
    if let Some(a) = &job.alert {
        out.extend(a.email.password.as_ref());
    }
    out
}

/// Resolves and remembers every secret of a job. One that cannot be resolved now (a
/// variable this process does not have) is skipped: it is learnt when it is resolved.
pub fn learn_job(job: &Job) {
    for s in job_secrets(job) {
        if let Ok(v) = s.resolve() {
            crate::redact::learn(&v);
        }
    }
    // WebDAV sources' and outputs' passwords (src/job/webdav.rs).
    let remote = job.source.remote.iter().map(|r| &r.endpoint);
    let outputs = job.outputs.iter().filter_map(|o| o.deliver.as_ref());
    for e in remote.chain(outputs.map(|d| &d.endpoint)) {
        if let super::remote::Endpoint::Webdav(w) = e
            && let Some(Ok(v)) = w.password.as_ref().map(|s| s.resolve())
        {
            crate::redact::learn(&v);
        }
    }
    // A REST source's password and credential headers (src/job/rest_source.rs).
    if let Some(h) = &job.source.http {
        for s in h.access.secrets() {
            if let Ok(v) = s.resolve() {
                crate::redact::learn(&v);
            }
        }
    }
    // HTTP outputs' passwords and credential headers (src/job/http.rs).
    for o in &job.outputs {
        if let Some(d) = &o.deliver
            && let super::remote::Endpoint::Http(h) = &d.endpoint
        {
            for s in h.secrets() {
                if let Ok(v) = s.resolve() {
                    crate::redact::learn(&v);
                }
            }
        }
    }
}

/// For the commands other than `run`: the secrets of every valid job in the jobs folder.
pub fn learn_jobs_dir(dir: &Path) {
    if let Ok(loaded) = super::load_dir(dir) {
        loaded.jobs.values().for_each(learn_job);
    }
}
