//! `[[output]]`: where each output of a job is written and how it is named, read into a
//! checked [`Output`].
//!
//! An output is a local folder, or the local outbox of an output that sends its files on
//! (email, FTP, HTTP, WebDAV, a database table): the keys of those are read by their own
//! modules; this one reads what every output shares (`name`, `exists`, the format,
//! `combine`, `extract`, `member`) and checks the record fields its names use against what
//! the job's records have.

use std::path::{Path, PathBuf};

use super::template::{PLACEHOLDERS, Template};
use super::toml_reader::{Doc, Str, TableReader, one_of};
use super::{
    Exists, Output, combine, data, database, folder_template_with, http, mail, pdf,
    read_connections, refuse, remote, resolve, set, template, webdav,
};

/// What a remote output is told about a `folder` of its own.
const REMOTE_FOLDER: &str = "a remote output is written to a local `outbox` first (default \"var/outbox/{job}/N\"); remove `folder`";

/// The record fields a job's names may use: none without `[input]`; `Unknown` when only
/// the file says (a CSV header, JSON keys): they are checked per file then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum RecordFields {
    NoInput,
    Unknown,
    Known(Vec<String>),
}

/// What an `[[output]]` needs to know about the rest of its job.
pub(super) struct OutputContext {
    pub in_set: bool,
    pub fields: RecordFields,
    pub batch: combine::JobFacts,
}

/// The fields of a job's first record as names see it: the input's fields (captures,
/// paths, columns) and the transform's.
pub(super) fn record_fields(
    has_input: bool,
    input: Option<&Option<data::Input>>,
    transform: Option<&data::TransformSpec>,
) -> RecordFields {
    if !has_input {
        return RecordFields::NoInput;
    }
    let Some(Some(input)) = input else {
        // A broken [input] is reported already; do not add errors about its fields.
        return RecordFields::Unknown;
    };
    let Some(mut names) = input.field_names() else {
        return RecordFields::Unknown;
    };
    names.extend(
        transform
            .iter()
            .flat_map(|t| t.fields.iter().map(|(n, _)| n.clone())),
    );
    RecordFields::Known(names)
}

/// Where an output goes, read first: its kind (`email`, `database`, `ftp`, `http`,
/// `webdav`) decides which other keys the table may have.
struct Destination {
    email: bool,
    database: bool,
    ftp: Option<Str>,
    /// Only beside no `email`, where it stays an unknown key.
    http: Option<Str>,
    webdav: Option<Str>,
}

/// The URL of a remote output, by the protocol it is sent with.
enum RemoteUrl<'a> {
    Ftp(&'a Str),
    Http(&'a Str),
    Webdav(&'a Str),
}

impl Destination {
    fn read(doc: &mut Doc<'_>, t: &mut TableReader<'_, '_>) -> Destination {
        let email = t.has("email");
        let ftp = t.str(doc, "ftp");
        let http = if !email && t.has("http") {
            t.str(doc, "http")
        } else {
            None
        };
        let webdav = webdav::url_key(doc, t, !email, [ftp.as_ref(), http.as_ref()]);
        Destination {
            email,
            database: t.has("database"),
            ftp,
            http,
            webdav,
        }
    }

    /// The URL an FTP, HTTP or WebDAV output sends to (FTP first when there are several:
    /// the others are reported).
    fn remote(&self) -> Option<RemoteUrl<'_>> {
        match (&self.ftp, &self.http, &self.webdav) {
            (Some(url), _, _) => Some(RemoteUrl::Ftp(url)),
            (None, Some(url), _) => Some(RemoteUrl::Http(url)),
            (None, None, Some(url)) => Some(RemoteUrl::Webdav(url)),
            (None, None, None) => None,
        }
    }

    /// The kind whose keys `[[output]]` may have (see `keys::known`).
    fn kind(&self) -> &'static str {
        match (self.email, &self.http) {
            (true, _) => "email",
            (false, Some(_)) => "http",
            (false, None) if self.webdav.is_some() => "webdav",
            (false, None) if self.database => "database",
            (false, None) => "",
        }
    }
}

/// What a remote output (FTP, HTTP, WebDAV) reads beside its URL, each `None` when wrong
/// (reported).
struct RemoteParts {
    endpoint: Option<remote::Endpoint>,
    done_file: Option<Option<Template>>,
    outbox: PathBuf,
    connections: Option<usize>,
}

/// Where an output's files are written (an outbox, for an output that sends them on) and
/// what sends them.
struct Delivery {
    folder: Option<Str>,
    remote: Option<RemoteParts>,
    email: Option<Option<mail::EmailOutput>>,
    database: Option<database::DatabaseOutput>,
}

/// Reads one `[[output]]` (the `idx`th of its job) into an [`Output`].
pub(super) fn read_output(
    doc: &mut Doc<'_>,
    root: &Path,
    mut t: TableReader<'_, '_>,
    ctx: &OutputContext,
    (job_name, idx): (&str, usize),
) -> Option<Output> {
    let has_input = ctx.fields != RecordFields::NoInput;
    let dest = Destination::read(doc, &mut t);
    let mut delivery = read_delivery(doc, root, &mut t, &dest, (job_name, idx), has_input);
    let name = t.str(doc, "name");
    let exists = read_exists(doc, &mut t);
    let written = read_data(doc, &mut t, &dest, &delivery, has_input);
    let folder = delivery.folder.as_ref();
    let combine = read_combine(doc, &mut t, ctx, written.as_ref(), [folder, name.as_ref()]);
    let extract = pdf::read_extract(doc, &mut t);
    let member = read_member(doc, &mut t, ctx.in_set);
    if extract_with_format(doc, &t, &extract, written.as_ref()) {
        return None;
    }
    t.finish_as(doc, "output", dest.kind());
    let extract = extract?;
    let folder = delivery.folder.take()?;
    let folder = folder_template_with(doc, root, &folder, &placeholders(has_input))
        .filter(|tpl| check_fields(doc, &folder, tpl, &ctx.fields, &[]));
    let format = written.as_ref().map(|d| &d.format);
    let name = read_name(doc, name, extract.as_ref(), format, &ctx.fields);
    // An HTTP output's outbox names start with the file's `{seq}`: its idempotency keys
    // are derived from it (src/outputs/http.rs).
    let name = match (&dest.http, name) {
        (Some(_), Some(n)) => {
            Template::parse(&format!("{{seq}}-{}", n.as_str()), &placeholders(true)).ok()
        }
        (_, n) => n,
    };
    let deliver = match delivery.remote {
        Some(p) => Some(remote::RemoteTarget {
            endpoint: p.endpoint?,
            done_file: p.done_file?,
            outbox: p.outbox,
            connections: p.connections?,
        }),
        None => None,
    };
    Some(Output {
        folder: folder?,
        name: name?,
        exists: exists?,
        data: written?,
        deliver,
        email: delivery.email?,
        extract,
        member: member?,
        combine: combine?,
    })
}

/// The folder the output is written into: `folder`, or for an output that sends its files
/// on its local outbox (`folder` is refused there), and what sends them.
fn read_delivery(
    doc: &mut Doc<'_>,
    root: &Path,
    t: &mut TableReader<'_, '_>,
    dest: &Destination,
    (job_name, idx): (&str, usize),
    has_input: bool,
) -> Delivery {
    let mut folder = t.str(doc, "folder");
    let mut d = Delivery {
        folder: None,
        remote: None,
        email: Some(None),
        database: None,
    };
    if dest.database {
        let (outbox, db) =
            database::read_output(doc, root, t, &mut folder, (job_name, idx), has_input);
        d.database = db;
        folder = Some(outbox);
    } else if dest.email {
        refuse(
            doc,
            folder.as_ref(),
            "an email output is written to a local `outbox` first (default \"var/outbox/{job}/N\"); remove `folder`",
        );
        refuse(
            doc,
            dest.ftp.as_ref(),
            "an output has either `email` or `ftp`, not both",
        );
        let (outbox_path, outbox) = read_outbox(doc, root, t, job_name, idx);
        d.email = mail::read_email(doc, root, t, outbox_path).map(Some);
        folder = Some(outbox);
    } else if let Some(url) = dest.remote() {
        refuse(doc, folder.as_ref(), REMOTE_FOLDER);
        let (outbox, parts) = read_remote(doc, root, t, url, (job_name, idx));
        d.remote = Some(parts);
        folder = Some(outbox);
        if dest.ftp.is_some() {
            refuse(
                doc,
                dest.http.as_ref(),
                "an output has either `ftp` or `http`, not both",
            );
        }
    }
    if folder.is_none() && t.span_of("folder") == t.span {
        doc.error(
            t.span.clone(),
            &format!("{}.folder", t.path),
            "missing `folder`: where to write this output, e.g. `folder = \"var/out\"`",
        );
    }
    d.folder = folder;
    d
}

/// An FTP, HTTP or WebDAV output: its endpoint (and an FTP output's `done_file`),
/// `connections`, and the local outbox it is sent from. HTTP and WebDAV outputs (issue
/// 17) have an outbox and a deliverer as FTP's do (src/job/http.rs, src/job/webdav.rs).
fn read_remote(
    doc: &mut Doc<'_>,
    root: &Path,
    t: &mut TableReader<'_, '_>,
    url: RemoteUrl<'_>,
    (job_name, idx): (&str, usize),
) -> (Str, RemoteParts) {
    let (endpoint, done_file) = match url {
        RemoteUrl::Ftp(url) => (remote::read_endpoint(doc, t, url), t.str(doc, "done_file")),
        RemoteUrl::Http(url) => {
            let h = http::read_http(doc, root, t, url);
            (h.map(|h| remote::Endpoint::Http(Box::new(h))), None)
        }
        RemoteUrl::Webdav(url) => {
            let w = webdav::read_endpoint(doc, root, t, url);
            (w.map(|e| remote::Endpoint::Webdav(Box::new(e))), None)
        }
    };
    let connections = read_connections(doc, t, remote::DEFAULT_OUTPUT_CONNECTIONS);
    let done_file = match done_file {
        Some(d) => template(doc, &d, PLACEHOLDERS).map(Some),
        None => Some(None),
    };
    let (outbox, folder) = read_outbox(doc, root, t, job_name, idx);
    let parts = RemoteParts {
        endpoint,
        done_file,
        outbox,
        connections,
    };
    (folder, parts)
}

/// The local outbox of a remote output (`outbox`, default `var/outbox/{job}/N`): its
/// path, and the same as the output's folder template (braces escaped).
pub(super) fn read_outbox(
    doc: &mut Doc<'_>,
    root: &Path,
    t: &mut TableReader<'_, '_>,
    job_name: &str,
    idx: usize,
) -> (PathBuf, Str) {
    let outbox = t.str(doc, "outbox").unwrap_or_else(|| Str {
        value: format!("var/outbox/{job_name}/{}", idx + 1),
        span: 0..0,
        key: format!("{}.outbox", t.path),
    });
    if outbox.value.contains('{') {
        doc.error(
            outbox.span.clone(),
            &outbox.key,
            "expected a plain folder (no placeholders) for the outbox",
        );
    }
    let path = resolve(root, &outbox.value);
    let folder = Str {
        value: path
            .display()
            .to_string()
            .replace('{', "{{")
            .replace('}', "}}"),
        ..outbox
    };
    (path, folder)
}

/// `exists`: what to do when the output's name is taken already (`fail` by default).
fn read_exists(doc: &mut Doc<'_>, t: &mut TableReader<'_, '_>) -> Option<Exists> {
    let exists_raw = t.str(doc, "exists");
    one_of(
        doc,
        exists_raw,
        &[
            ("fail", Exists::Fail),
            ("overwrite", Exists::Overwrite),
            ("unique", Exists::Unique),
            ("skip", Exists::Skip),
        ],
        Exists::Fail,
    )
}

/// The format written: a database output's load file, else `format` and its keys, with
/// what an HTTP output's requests need of it (src/job/http.rs).
fn read_data(
    doc: &mut Doc<'_>,
    t: &mut TableReader<'_, '_>,
    dest: &Destination,
    delivery: &Delivery,
    has_input: bool,
) -> Option<data::OutputData> {
    let written = match &delivery.database {
        Some(db) => Some(data::OutputData {
            format: data::OutputFormat::Database(std::sync::Arc::new(db.clone()), None),
            ..Default::default()
        }),
        None if dest.database => None,
        None => data::read_output_data(doc, t, has_input),
    };
    match delivery.remote.as_ref().and_then(|p| p.endpoint.as_ref()) {
        Some(remote::Endpoint::Http(h)) => http::outbox_data(doc, t, h, written, has_input),
        _ => written,
    }
}

/// `combine`; a combined output's `folder` and `name` (the two `names`, when given) may
/// use only what a whole run has.
fn read_combine(
    doc: &mut Doc<'_>,
    t: &mut TableReader<'_, '_>,
    ctx: &OutputContext,
    written: Option<&data::OutputData>,
    names: [Option<&Str>; 2],
) -> Option<bool> {
    let records = written.is_none_or(|d| !matches!(d.format, data::OutputFormat::Original));
    let combine = combine::read(doc, t, &ctx.batch, records);
    if combine == Some(true) {
        // Both are checked, so that each wrong one is reported.
        let ok = names.map(|n| n.is_none_or(|n| combine::check_template(doc, n)));
        if ok.contains(&false) {
            return None;
        }
    }
    combine
}

/// `member`: in a document set, which member's bytes this output writes, named by its
/// `{stem}` (`"{stem}.xml"`).
fn read_member(
    doc: &mut Doc<'_>,
    t: &mut TableReader<'_, '_>,
    in_set: bool,
) -> Option<Option<set::Member>> {
    match t.str(doc, "member") {
        None => Some(None),
        Some(m) if !in_set => {
            doc.error(
                m.span.clone(),
                &m.key,
                "`member` names a file of a document set by its `{stem}`: the job needs `[source.set] members`",
            );
            None
        }
        Some(m) => match m.value.split_once("{stem}") {
            Some((p, s)) if !s.contains("{stem}") => Some(Some(set::Member {
                prefix: p.to_string(),
                suffix: s.to_string(),
            })),
            _ => {
                doc.error(
                    m.span.clone(),
                    &m.key,
                    format!(
                        "expected one of the set's members, like \"{{stem}}.pdf\", found {:?}",
                        m.value
                    ),
                );
                None
            }
        },
    }
}

/// An `extract` output writes the pieces as they are: true (reported) when it has a
/// record `format` too.
fn extract_with_format(
    doc: &mut Doc<'_>,
    t: &TableReader<'_, '_>,
    extract: &Option<Option<pdf::Extract>>,
    written: Option<&data::OutputData>,
) -> bool {
    if let (Some(Some(_)), Some(d)) = (extract, written)
        && !matches!(d.format, data::OutputFormat::Original)
    {
        doc.error(
            t.span_of("format"),
            &format!("{}.format", t.path),
            "an `extract` output writes the pieces as they are; remove `format`",
        );
        return true;
    }
    false
}

/// The placeholders an output's folder and name may use, with the record fields when
/// `fields`.
fn placeholders(fields: bool) -> Vec<&'static str> {
    let mut allowed = PLACEHOLDERS.to_vec();
    if fields {
        allowed.push(template::FIELDS);
    }
    allowed
}

/// The output's file name: `name`, else an extract's pieces' names or the original's
/// (see [`default_name`]). `None` when wrong (reported).
fn read_name(
    doc: &mut Doc<'_>,
    name: Option<Str>,
    extract: Option<&pdf::Extract>,
    format: Option<&data::OutputFormat>,
    fields: &RecordFields,
) -> Option<Template> {
    match (name, extract) {
        (Some(n), Some(e)) => {
            let tpl = template(doc, &n, &placeholders(true))?;
            check_fields(doc, &n, &tpl, fields, pdf::extract_fields(e)).then_some(tpl)
        }
        (None, Some(e)) => {
            let default = match e {
                pdf::Extract::Attachments { .. } => "{attachment}",
                pdf::Extract::Pages(_) => "{stem}_{page}.pdf",
                pdf::Extract::Merge => "{stem}.pdf",
            };
            Template::parse(default, &placeholders(true)).ok()
        }
        (Some(n), None) => file_name(doc, &n, fields),
        (None, None) => Template::parse(&default_name(format), PLACEHOLDERS).ok(),
    }
}

/// A `name` of an output that writes one file: a name relative to the output folder, whose
/// record fields are the job's.
fn file_name(doc: &mut Doc<'_>, n: &Str, fields: &RecordFields) -> Option<Template> {
    let tpl = template(doc, n, &placeholders(*fields != RecordFields::NoInput));
    if let Some(t) = &tpl
        && !check_fields(doc, n, t, fields, &[])
    {
        return None;
    }
    if n.value.trim().is_empty() || n.value.starts_with('/') {
        doc.error(
            n.span.clone(),
            &n.key,
            format!(
                "expected a file name relative to the output folder, found {:?}",
                n.value
            ),
        );
        return None;
    }
    tpl
}

/// Checks the record fields a name or folder template uses (other than `own`, which the
/// output gives itself) against what the job's records can have; each error points at
/// its placeholder.
fn check_fields(
    doc: &mut Doc<'_>,
    s: &Str,
    tpl: &Template,
    fields: &RecordFields,
    own: &[&str],
) -> bool {
    let mut ok = true;
    for f in tpl.fields().into_iter().filter(|f| !own.contains(f)) {
        let message = match fields {
            RecordFields::Unknown => continue,
            RecordFields::Known(k) if k.iter().any(|n| n == f) => continue,
            RecordFields::NoInput => format!(
                "`{{{f}}}` names a field of the file's records: add an `[input]` section that reads them (a PDF's text with `format = \"pdf\"` and `[input.capture]`, an XML's paths, ...)"
            ),
            RecordFields::Known(k) => format!(
                "unknown placeholder `{{{f}}}`: no field of the job's records has this name; they have {}{}",
                k.iter()
                    .map(|n| format!("{{{n}}}"))
                    .collect::<Vec<_>>()
                    .join(" "),
                if own.is_empty() {
                    String::new()
                } else {
                    format!(
                        ", and this output {}",
                        own.iter()
                            .map(|n| format!("{{{n}}}"))
                            .collect::<Vec<_>>()
                            .join(" ")
                    )
                }
            ),
        };
        let at = [format!("{{{f}}}"), format!("{{field:{f}}}")]
            .iter()
            .find_map(|p| s.value.find(p.as_str()).map(|i| i..i + p.len()))
            .unwrap_or(0..0);
        doc.error_in_str(s, at, message);
        ok = false;
    }
    ok
}

/// An output's name when the job gives none: the original's name, or with a record format
/// its stem and the format's extension (`orders.json` written as CSV is `orders.csv`).
fn default_name(format: Option<&data::OutputFormat>) -> String {
    use data::OutputFormat as F;
    let ext = match format {
        None | Some(F::Original) => return "{name}".into(),
        Some(F::Csv(_)) => "csv",
        Some(F::Json(crate::formats::json::JsonStyle::Array)) => "json",
        Some(F::Json(crate::formats::json::JsonStyle::Lines)) => "jsonl",
        Some(F::Xml(_)) => "xml",
        Some(F::Fixed(_) | F::Text(_)) => "txt",
        Some(F::Database(..)) => "load",
    };
    format!("{{stem}}.{ext}")
}
