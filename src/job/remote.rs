//! Configuration of remote sources and outputs, whatever their protocol: the endpoint
//! ([`Endpoint`], one variant per file-shaped remote kind) read from its URL key and the keys
//! beside it, the remote source (`[source] ftp = ...`: [`RemoteSource`]) and remote outputs
//! (`[[output]] ftp = ...`: [`RemoteTarget`]), and `ferry check`'s warnings about literal
//! passwords. Each kind's URL is in its own module ([`super::ftp`], [`super::mail`]); the
//! engine-facing adapters are in `sources/` and `outputs/` (docs/design.md, "How to add a
//! source or an output").

use std::path::PathBuf;
use std::time::Duration;

use super::ftp::FtpEndpoint;
use crate::job::template::Template;
use crate::job::toml_reader::{Diag, Doc, Str, TableReader};
use crate::job::{Job, Ready};

/// What happens to a remote original once its staged copy is finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposal {
    Delete,
    /// Moved into this remote folder (relative to the source folder unless absolute, as
    /// Camel's `move`); never listed as input, even with `recursive`.
    Move(String),
    /// Left in place; the journal keeps it from being taken again while unchanged.
    Keep,
}

impl Disposal {
    pub fn as_str(&self) -> &'static str {
        match self {
            Disposal::Delete => "delete",
            Disposal::Move(_) => "move",
            Disposal::Keep => "keep",
        }
    }
}

/// A remote endpoint of any protocol.
#[derive(Debug, Clone)]
pub enum Endpoint {
    Ftp(FtpEndpoint),
    /// An HTTP output (REST or SOAP; src/job/http.rs). Never a source.
    Http(Box<super::http::HttpEndpoint>),
    /// A WebDAV folder (src/job/webdav.rs), source or output.
    Webdav(Box<super::webdav::WebdavEndpoint>),
}

impl Endpoint {
    /// For logs and status: never contains a password.
    pub fn display(&self) -> String {
        match self {
            Endpoint::Ftp(e) => e.display(),
            Endpoint::Http(e) => e.display(),
            Endpoint::Webdav(e) => e.display(),
        }
    }

    /// Where a literal password was written, for `ferry check`'s warning.
    pub fn literal_password(&self) -> bool {
        match self {
            Endpoint::Ftp(e) => e.password.as_ref().is_some_and(|p| p.is_literal()),
            Endpoint::Http(e) => e.literal_password(),
            Endpoint::Webdav(e) => e.password.as_ref().is_some_and(|p| p.is_literal()),
        }
    }

    /// A warning to log at every start, if any (TLS verification turned off).
    pub fn start_warning(&self) -> Option<String> {
        match self {
            Endpoint::Ftp(e) if e.secure && !e.tls_verify => Some(format!(
                "TLS certificate verification is OFF for {}: anyone on the path can read and change the transfer",
                e.display()
            )),
            _ => None,
        }
    }
}

/// A job's remote source: the local `source.folder` is its staging folder.
#[derive(Debug, Clone)]
pub struct RemoteSource {
    pub endpoint: Endpoint,
    pub success: Disposal,
    /// Remote readiness (the staging folder itself is read at once).
    pub settle: Duration,
    pub ready: Ready,
    /// Connections to the server: with more than one, one lists and disposes of originals
    /// while the others download in parallel.
    pub connections: usize,
}

/// `connections` of a remote source when the job does not say.
pub const DEFAULT_SOURCE_CONNECTIONS: usize = 4;
/// `connections` of a remote output when the job does not say.
pub const DEFAULT_OUTPUT_CONNECTIONS: usize = 4;

/// An output delivered to a remote place; its `folder` is the local outbox.
#[derive(Debug, Clone)]
pub struct RemoteTarget {
    pub endpoint: Endpoint,
    /// A done-file written after each file, e.g. `{name}.done`.
    pub done_file: Option<Template>,
    /// The outbox folder (the output's `folder`, without placeholders).
    pub outbox: PathBuf,
    /// Parallel connections (each sends the files whose name hashes to it, so one name
    /// always goes through the same connection, in order).
    pub connections: usize,
}

pub(crate) use crate::url::percent_decode;

/// Reads a remote URL (`ftp = "ftp://..."` / `ftps://`) and the endpoint keys beside it.
pub fn read_endpoint(
    doc: &mut Doc<'_>,
    t: &mut TableReader<'_, '_>,
    url: &Str,
) -> Option<Endpoint> {
    let password = t.str(doc, "password");
    let ca_file = t.str(doc, "ca_file");
    let tls_verify = t.bool(doc, "tls_verify");
    let passive = t.bool(doc, "passive");
    let (mut ep, url_password) = match FtpEndpoint::parse(&url.value) {
        Ok(x) => x,
        Err(e) => {
            doc.error(url.span.clone(), &url.key, e);
            return None;
        }
    };
    let mut ok = true;
    ep.password = match (password, url_password) {
        (Some(_), Some(_)) => {
            doc.error(
                url.span.clone(),
                &url.key,
                "a password is given both in the URL and in `password`: keep only `password = \"${env:NAME}\"`",
            );
            ok = false;
            None
        }
        (Some(p), None) => match crate::secrets::Secret::parse(&p.value) {
            Ok(s) => Some(s),
            Err(e) => {
                doc.error(p.span.clone(), &p.key, e);
                ok = false;
                None
            }
        },
        (None, Some(p)) => Some(crate::secrets::Secret::Literal(p)),
        (None, None) => None,
    };
    if let Some(ca) = ca_file {
        if !ep.secure {
            doc.error(
                ca.span.clone(),
                &ca.key,
                "`ca_file` only matters for `ftps://` URLs",
            );
            ok = false;
        }
        ep.ca_file = Some(PathBuf::from(ca.value));
    }
    if let Some(v) = tls_verify {
        ep.tls_verify = v;
    }
    if let Some(p) = passive {
        ep.passive = p;
    }
    ok.then_some(Endpoint::Ftp(ep))
}

/// Warnings for `ferry check`: literal passwords in job files.
pub fn check_warnings(job: &Job) -> Vec<Diag> {
    let mut w = Warnings {
        job,
        text: std::fs::read_to_string(&job.file).unwrap_or_default(),
        out: Vec::new(),
    };
    w.source();
    w.emails();
    w.databases();
    w.deliveries();
    w.out
}

/// The literal-password warnings of one job, each at the line of the key that names its
/// endpoint (the nth `ftp = ...` line for the nth FTP endpoint, ...).
struct Warnings<'a> {
    job: &'a Job,
    /// The job file's text.
    text: String,
    out: Vec<Diag>,
}

impl Warnings<'_> {
    /// A warning about `key`, at the `nth` line (from 0) that starts with `word`, or line 1.
    fn warn(&mut self, key: String, (word, nth): (&str, usize), what: &str) {
        let line = self
            .text
            .lines()
            .enumerate()
            .filter(|(_, l)| l.trim_start().starts_with(word))
            .nth(nth)
            .map_or(1, |(i, _)| i + 1);
        self.out.push(Diag {
            file: self.job.file.clone(),
            line,
            col: 1,
            key,
            message: format!(
                "a literal password {what}: anyone who reads the job file has it; use `password = \"${{env:NAME}}\"` or `\"${{file:/path}}\"`"
            ),
        });
    }

    /// An FTP or WebDAV source's password, a mailbox's.
    fn source(&mut self) {
        let source = &self.job.source;
        if let Some(r) = &source.remote
            && r.endpoint.literal_password()
        {
            let word = match r.endpoint {
                Endpoint::Webdav(_) => "webdav",
                _ => "ftp",
            };
            self.warn("source.password".into(), (word, 0), "in the source");
        }
        if source
            .mailbox
            .as_ref()
            .is_some_and(|m| m.password.is_literal())
        {
            self.warn("source.password".into(), ("mailbox", 0), "in the source");
        }
    }

    /// Email outputs' SMTP passwords.
    fn emails(&mut self) {
        let job = self.job;
        let emails = job
            .outputs
            .iter()
            .enumerate()
            .filter_map(|(i, o)| Some((i, o.email.as_ref()?)));
        for (nth, (i, e)) in emails.enumerate() {
            if e.password.as_ref().is_some_and(|p| p.is_literal()) {
                let key = format!("output[{}].password", i + 1);
                self.warn(key, ("email", nth), "in this output");
            }
        }
    }

    /// Database outputs' passwords.
    fn databases(&mut self) {
        let job = self.job;
        let mut nth_db = 0;
        for (i, o) in job.outputs.iter().enumerate() {
            if let super::data::OutputFormat::Database(db, _) = &o.data.format {
                if db.url.password.as_ref().is_some_and(|p| p.is_literal()) {
                    let key = format!("output[{}].password", i + 1);
                    self.warn(key, ("database", nth_db), "in this output");
                }
                nth_db += 1;
            }
        }
    }

    /// A REST source's password or credential header, then FTP, HTTP and WebDAV outputs'.
    fn deliveries(&mut self) {
        let job = self.job;
        if let Some(h) = &job.source.http
            && h.access.literal_password()
        {
            let what = "in the source (a password or a credential header)";
            self.warn("source.password".into(), ("http", 0), what);
        }
        // An output's URL key comes after the source's of its kind.
        let source = job.source.remote.as_ref().map(|r| &r.endpoint);
        let mut nth_ftp = usize::from(matches!(source, Some(Endpoint::Ftp(_))));
        let mut nth_http = usize::from(job.source.http.is_some());
        let mut nth_webdav = usize::from(matches!(source, Some(Endpoint::Webdav(_))));
        let credential = "in this output (a password or a credential header)";
        for (i, o) in job.outputs.iter().enumerate() {
            let Some(d) = &o.deliver else {
                continue;
            };
            let (word, nth, what) = match d.endpoint {
                Endpoint::Webdav(_) => ("webdav", &mut nth_webdav, "in this output"),
                Endpoint::Http(_) => ("http", &mut nth_http, credential),
                Endpoint::Ftp(_) => ("ftp", &mut nth_ftp, credential),
            };
            if d.endpoint.literal_password() {
                self.warn(format!("output[{}].password", i + 1), (word, *nth), what);
            }
            *nth += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(src: &str) -> Result<Job, Vec<String>> {
        crate::job::compile(
            std::path::Path::new("jobs/t.toml"),
            std::path::Path::new("/srv/ferry"),
            src,
        )
        .map_err(|d| d.iter().map(|d| d.to_string()).collect())
    }

    #[test]
    fn ftp_job_keys() {
        let job = compile(
            "[source]\nftp = \"ftps://u@h:2121/out box\"\npassword = \"${env:PW}\"\nsettle = \"7s\"\nsuccess = \"move\"\nmove_to = \"done/\"\n\n[[output]]\nftp = \"ftp://w@h/in\"\npassword = \"lit\"\nconnections = 2\ndone_file = \"{name}.ok\"\n",
        )
        .unwrap();
        assert_eq!(
            job.source.folder,
            std::path::Path::new("/srv/ferry/var/staging/t")
        );
        assert_eq!(job.source.settle, Duration::ZERO, "staging is read at once");
        let r = job.source.remote.as_ref().unwrap();
        assert_eq!(r.settle, Duration::from_secs(7));
        assert_eq!(r.success, Disposal::Move("done".into()));
        assert!(!r.endpoint.literal_password());
        let d = job.outputs[0].deliver.as_ref().unwrap();
        assert_eq!(d.outbox, std::path::Path::new("/srv/ferry/var/outbox/t/1"));
        assert_eq!(d.connections, 2);
        assert!(d.endpoint.literal_password());
        assert_eq!(r.connections, DEFAULT_SOURCE_CONNECTIONS);
        let job = compile("[source]\nftp = \"ftp://u@h/x\"\nconnections = 1\n\n[[output]]\nftp = \"ftp://w@h/in\"\n").unwrap();
        assert_eq!(job.source.remote.as_ref().unwrap().connections, 1);
        assert_eq!(
            job.outputs[0].deliver.as_ref().unwrap().connections,
            DEFAULT_OUTPUT_CONNECTIONS
        );
        assert_eq!(
            job.outputs[0].folder.literal_prefix(),
            "/srv/ferry/var/outbox/t/1"
        );
    }

    #[test]
    fn an_email_outputs_literal_password_is_warned_at_its_own_line() {
        // A folder output first: the email output is the first `email` line, not the second.
        let src = "[source]\nfolder = \"in\"\n\n[[output]]\nfolder = \"out\"\n\n[[output]]\nemail = \"mailto:ap@example.test\"\nsmtp = \"smtp://relay.example.test\"\nfrom = \"ferry@example.test\"\npassword = \"lit\"\n";
        let dir = std::env::temp_dir().join(format!("ferry-warn-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("jobs")).unwrap();
        let file = dir.join("jobs/t.toml");
        std::fs::write(&file, src).unwrap();
        let job = crate::job::compile(&file, &dir, src).unwrap();
        let w = check_warnings(&job);
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!((w[0].key.as_str(), w[0].line), ("output[2].password", 8));
    }

    #[test]
    fn ftp_job_mistakes_are_reported() {
        let errs = compile(
            "[source]\nftp = \"ftp://u@h/x\"\nfolder = \"in\"\nsuccess = \"move\"\n\n[[output]]\nftp = \"sftp://h/x\"\nconnections = 99\n",
        )
        .unwrap_err();
        let all = errs.join("\n");
        assert!(
            all.contains("jobs/t.toml:3:10: source.folder: a remote source stages"),
            "{all}"
        );
        assert!(
            all.contains("source.move_to: `success = \"move\"` needs `move_to`"),
            "{all}"
        );
        assert!(all.contains("output[1].ftp: expected a URL like"), "{all}");
        assert!(
            all.contains("output[1].connections: expected 1 to 16"),
            "{all}"
        );
        let errs = compile("[source]\nfolder = \"in\"\nsuccess = \"delete\"\n").unwrap_err();
        assert!(
            errs[0].contains("`success` does not apply here: it belongs to another kind of source"),
            "{errs:?}"
        );
    }

    /// Job file errors about a URL never quote its password.
    #[test]
    fn url_errors_never_quote_the_password() {
        let errors = [
            FtpEndpoint::parse("sftp://u:Url-Pw-2x@h/").unwrap_err(),
            FtpEndpoint::parse("ftp://u:Url-Pw-2x@:21/").unwrap_err(),
            FtpEndpoint::parse("ftp://u:Url-Pw-%zz@h/").unwrap_err(),
            crate::job::mail::MailboxUrl::parse("imapx://u:Url-Pw-2x@h/").unwrap_err(),
            crate::job::mail::SmtpUrl::parse("smtpx://u:Url-Pw-2x@h").unwrap_err(),
            crate::job::mail::SmtpUrl::parse("smtp://u:Url-Pw-2x@h/x").unwrap_err(),
        ];
        for e in errors {
            assert!(!e.contains("Url-Pw"), "{e}");
        }
    }
}
