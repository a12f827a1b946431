//! Configuration of HTTP outputs (`[[output]] http = "https://..."`): REST calls and SOAP
//! web services (issue 17). The output is written to a local outbox like every remote
//! output; `outputs::http` sends it. docs/http.md has the decisions.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::job::template::{PLACEHOLDERS, Template};
use crate::job::toml_reader::{Doc, Str, TableReader, one_of, parse_duration};
use crate::secrets::Secret;

/// `method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Post,
    Put,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Post => "POST",
            Method::Put => "PUT",
        }
    }
}

/// `body`: what one request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// The output file (the original or what the job made of it).
    File,
    /// One record per request: its JSON object, or `template` rendered with its fields.
    Record,
}

/// `on_error`: what a refused record (a 4xx answer, a SOAP fault) does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnRefused {
    /// The file goes to the error folder (records acknowledged before stay sent).
    Fail,
    /// The record is set aside in the error folder's `NAME.refused.jsonl`; the rest go on.
    Skip,
}

/// A header value: literal text and `${env:NAME}` / `${file:PATH}` references, resolved at
/// each file (a rotated token is picked up) and never written anywhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderValue {
    pub parts: Vec<Piece>,
    /// A literal value of a header that carries credentials (`Authorization`, `*token*`,
    /// `*key*`, ...): treated as a secret too, and `ferry check` warns.
    pub literal_secret: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    Secret(Secret),
}

impl HeaderValue {
    /// Reads `Bearer ${env:ERP_TOKEN}`: each `${...}` is a secret reference.
    pub fn parse(name: &str, text: &str) -> Result<HeaderValue, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(at) = rest.find("${") {
            if at > 0 {
                parts.push(Piece::Text(rest[..at].to_string()));
            }
            let end = rest[at..]
                .find('}')
                .ok_or_else(|| "`${` without its closing `}`".to_string())?;
            parts.push(Piece::Secret(Secret::parse(&rest[at..at + end + 1])?));
            rest = &rest[at + end + 1..];
        }
        if !rest.is_empty() {
            parts.push(Piece::Text(rest.to_string()));
        }
        let has_ref = parts.iter().any(|p| matches!(p, Piece::Secret(_)));
        Ok(HeaderValue {
            literal_secret: !has_ref && sensitive(name) && !text.trim().is_empty(),
            parts,
        })
    }

    /// The value, each reference read now (and taught to the redactor before it is sent).
    pub fn resolve(&self) -> Result<String, String> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Secret(s) => out.push_str(&s.resolve()?),
            }
        }
        if self.literal_secret {
            crate::redact::learn(&out);
            // The token alone too (`Bearer abc...` is often logged without its scheme).
            if let Some((_, token)) = out.split_once(' ') {
                crate::redact::learn(token.trim());
            }
        }
        Ok(out)
    }

    /// The secrets in this value, for the redactor at job load.
    pub fn secrets(&self) -> Vec<Secret> {
        let mut out: Vec<Secret> = self
            .parts
            .iter()
            .filter_map(|p| match p {
                Piece::Secret(s) => Some(s.clone()),
                Piece::Text(_) => None,
            })
            .collect();
        if self.literal_secret {
            let whole: String = self
                .parts
                .iter()
                .map(|p| match p {
                    Piece::Text(t) => t.as_str(),
                    Piece::Secret(_) => "",
                })
                .collect();
            if let Some((_, token)) = whole.split_once(' ') {
                out.push(Secret::Literal(token.trim().to_string()));
            }
            out.push(Secret::Literal(whole));
        }
        out
    }
}

/// Header names whose values are credentials.
fn sensitive(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "authorization",
        "cookie",
        "token",
        "key",
        "secret",
        "auth",
        "password",
    ]
    .iter()
    .any(|w| n.contains(w))
}

/// An HTTP output's endpoint.
#[derive(Debug, Clone)]
pub struct HttpEndpoint {
    /// `http://` or `https://`, without user information.
    pub url: String,
    pub method: Method,
    pub body: Body,
    /// With `body = "record"`: a minijinja template rendered with the record's fields (a
    /// SOAP envelope); without it each record is sent as a JSON object.
    pub template: Option<String>,
    /// The `Content-Type`; `None`: from the body (JSON, the template's kind, the file's
    /// extension).
    pub content_type: Option<String>,
    /// Headers, basic authentication, TLS and timeout.
    pub access: HttpAccess,
    /// The header carrying the idempotency key; `None` with `idempotency_header = ""`.
    pub idempotency_header: Option<String>,
    /// Where each answer is saved (`var/out/responses/{stem}.json`), an absolute template.
    pub response: Option<Template>,
    pub on_error: OnRefused,
    /// SOAP 1.1: the `SOAPAction` header; faults in answers are errors with their string.
    pub soap_action: Option<String>,
}

/// What every request to an endpoint carries and how it connects, for HTTP outputs and
/// REST sources alike: headers (with secrets), basic authentication, TLS, timeout.
#[derive(Debug, Clone)]
pub struct HttpAccess {
    pub headers: Vec<(String, HeaderValue)>,
    /// Basic authentication.
    pub user: Option<String>,
    pub password: Option<Secret>,
    /// A PEM CA certificate trusted instead of the public roots (a partner's private CA).
    pub ca_file: Option<PathBuf>,
    /// A client certificate (PEM, with its chain) and its key, for partners that ask for one.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    /// The longest one request may take, connecting included.
    pub timeout: Duration,
}

/// `idempotency_header` when the job does not say.
pub const DEFAULT_IDEMPOTENCY_HEADER: &str = "Idempotency-Key";
/// `timeout` when the job does not say.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

impl HttpEndpoint {
    /// For logs and status: the URL (which never holds a password: one is refused).
    pub fn display(&self) -> String {
        self.url.clone()
    }

    /// A literal credential in the job file (a password, or a header such as
    /// `Authorization` written out).
    pub fn literal_password(&self) -> bool {
        self.access.literal_password()
    }

    /// Every secret of the endpoint, for the redactor.
    pub fn secrets(&self) -> Vec<Secret> {
        self.access.secrets()
    }
}

impl HttpAccess {
    /// A literal credential in the job file (a password, or a header such as
    /// `Authorization` written out).
    pub fn literal_password(&self) -> bool {
        self.password.as_ref().is_some_and(Secret::is_literal)
            || self.headers.iter().any(|(_, v)| v.literal_secret)
    }

    /// Every secret of the endpoint, for the redactor.
    pub fn secrets(&self) -> Vec<Secret> {
        let mut out: Vec<Secret> = self.password.iter().cloned().collect();
        for (_, v) in &self.headers {
            out.extend(v.secrets());
        }
        out
    }

    /// `base` (the request's own headers) with basic authentication and the configured
    /// headers, secrets resolved now; a configured header replaces a base one of its name.
    /// `Err`: a secret that cannot be read (it may be set later).
    pub fn request_headers(
        &self,
        mut out: Vec<(String, String)>,
    ) -> Result<Vec<(String, String)>, String> {
        if let Some(user) = &self.user {
            let pw = match &self.password {
                Some(p) => p.resolve()?,
                None => String::new(),
            };
            use base64::Engine;
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"));
            crate::redact::learn(&token);
            out.push(("Authorization".into(), format!("Basic {token}")));
        }
        for (name, v) in &self.headers {
            let value = v.resolve().map_err(|e| format!("header {name}: {e}"))?;
            out.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
            out.push((name.clone(), value));
        }
        Ok(out)
    }
}

/// Reads `http = "..."` and the keys beside it. `root` resolves relative paths.
pub fn read_http(
    doc: &mut Doc<'_>,
    root: &Path,
    t: &mut TableReader<'_, '_>,
    url: &Str,
) -> Option<HttpEndpoint> {
    let mut ok = true;
    if let Err(e) = check_url(&url.value) {
        doc.error(url.span.clone(), &url.key, e);
        ok = false;
    }
    let method_raw = t.str(doc, "method");
    let method = one_of(
        doc,
        method_raw,
        &[("POST", Method::Post), ("PUT", Method::Put)],
        Method::Post,
    );
    let body_raw = t.str(doc, "body");
    let body = one_of(
        doc,
        body_raw,
        &[("file", Body::File), ("record", Body::Record)],
        Body::File,
    );
    let template = t.str(doc, "template");
    ok &= check_template(doc, template.as_ref(), body);
    let content_type = t.str(doc, "content_type").map(|s| s.value);
    ok &= refuse_ftp_keys(doc, t);
    let access = read_access(doc, root, t, url, "output");
    let idempotency_header = match t.str(doc, "idempotency_header") {
        None => Some(DEFAULT_IDEMPOTENCY_HEADER.to_string()),
        Some(s) if s.value.is_empty() => None,
        Some(s) => Some(s.value),
    };
    let response = read_response(doc, root, t);
    let on_error_raw = t.str(doc, "on_error");
    let on_error = one_of(
        doc,
        on_error_raw,
        &[("fail", OnRefused::Fail), ("skip", OnRefused::Skip)],
        OnRefused::Fail,
    );
    let soap_action = t.str(doc, "soap_action").map(|s| s.value);
    let (body, response) = (body?, response?);
    if !ok {
        return None;
    }
    Some(HttpEndpoint {
        url: url.value.clone(),
        method: method?,
        body,
        template: template.map(|s| s.value),
        content_type,
        access: access?,
        idempotency_header,
        response,
        on_error: on_error?,
        soap_action,
    })
}

/// `template` renders one request per record: it needs `body = "record"`, and must be a
/// valid template. False (reported) when not.
fn check_template(doc: &mut Doc<'_>, template: Option<&Str>, body: Option<Body>) -> bool {
    let Some(tpl) = template else {
        return true;
    };
    let mut ok = true;
    if body == Some(Body::File) {
        doc.error(
            tpl.span.clone(),
            &tpl.key,
            "`template` renders one request per record: it needs `body = \"record\"`",
        );
        ok = false;
    }
    if let Err(e) = crate::formats::template_out::environment().template_from_str(&tpl.value) {
        doc.error(
            tpl.span.clone(),
            &tpl.key,
            format!("not a valid template: {e}"),
        );
        ok = false;
    }
    ok
}

/// FTP's keys, which an output table otherwise knows: each is reported with why it does
/// not apply. False when there was one.
fn refuse_ftp_keys(doc: &mut Doc<'_>, t: &mut TableReader<'_, '_>) -> bool {
    let mut ok = true;
    for (key, why) in [
        (
            "tls_verify",
            "TLS is always verified for HTTP outputs; a private CA goes in `ca_file`",
        ),
        ("done_file", "an HTTP output writes no done-file"),
        ("passive", "`passive` is FTP's"),
    ] {
        if t.has(key) {
            let span = t.span_of(key);
            let _ = if key == "done_file" {
                t.str(doc, key).map(|_| ())
            } else {
                t.bool(doc, key).map(|_| ())
            };
            doc.error(span, &format!("{}.{key}", t.path), why);
            ok = false;
        }
    }
    ok
}

/// `response`: where each answer's body is kept, a path template relative to the
/// deployment root. `Some(None)` without it, `None` when wrong (reported).
fn read_response(
    doc: &mut Doc<'_>,
    root: &Path,
    t: &mut TableReader<'_, '_>,
) -> Option<Option<Template>> {
    let Some(s) = t.str(doc, "response") else {
        return Some(None);
    };
    let text = if Path::new(&s.value).is_absolute() {
        s.value.clone()
    } else {
        format!(
            "{}/{}",
            root.display()
                .to_string()
                .replace('{', "{{")
                .replace('}', "}}"),
            s.value
        )
    };
    match Template::parse(&text, PLACEHOLDERS) {
        Ok(tpl) => Some(Some(tpl)),
        Err(errors) => {
            // Positions in the job file's own text: the root prefix is not there.
            let shift = text.len() - s.value.len();
            for e in errors {
                let at = e.at.start.saturating_sub(shift)..e.at.end.saturating_sub(shift);
                doc.error_in_str(&s, at, e.message);
            }
            None
        }
    }
}

/// Reads the keys every HTTP endpoint has (`headers`, `user`, `password`, `ca_file`,
/// `client_cert`, `client_key`, `timeout`), for an HTTP output or a REST source (`section`:
/// "output" or "source", for the hints).
pub fn read_access(
    doc: &mut Doc<'_>,
    root: &Path,
    t: &mut TableReader<'_, '_>,
    url: &Str,
    section: &str,
) -> Option<HttpAccess> {
    let headers = read_headers(doc, t);
    let auth = read_basic_auth(doc, t, section);
    let tls = read_tls_files(doc, root, t, url);
    let timeout = read_timeout(doc, t);
    let ((user, password), tls) = (auth?, tls?);
    Some(HttpAccess {
        headers: headers?,
        user,
        password,
        ca_file: tls.ca_file,
        client_cert: tls.client_cert,
        client_key: tls.client_key,
        timeout: timeout?,
    })
}

/// `[headers]`: a name and a value (which may hold secrets) for every request. `None` when
/// one is wrong (each reported).
fn read_headers(
    doc: &mut Doc<'_>,
    t: &mut TableReader<'_, '_>,
) -> Option<Vec<(String, HeaderValue)>> {
    let mut ok = true;
    let mut headers = Vec::new();
    for (name, v) in t.str_map(doc, "headers").unwrap_or_default() {
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
            doc.error(
                v.span.clone(),
                &v.key,
                format!("{name:?} is not a header name"),
            );
            ok = false;
            continue;
        }
        match HeaderValue::parse(&name, &v.value) {
            Ok(h) => headers.push((name, h)),
            Err(e) => {
                doc.error(v.span.clone(), &v.key, e);
                ok = false;
            }
        }
    }
    ok.then_some(headers)
}

/// `user` and `password`: basic authentication (a password needs its user). `None` when
/// wrong (reported).
fn read_basic_auth(
    doc: &mut Doc<'_>,
    t: &mut TableReader<'_, '_>,
    section: &str,
) -> Option<(Option<String>, Option<Secret>)> {
    let mut ok = true;
    let user = t.str(doc, "user").map(|s| s.value);
    let password = match t.str(doc, "password") {
        None => None,
        Some(p) => match Secret::parse(&p.value) {
            Ok(s) => Some(s),
            Err(e) => {
                doc.error(p.span.clone(), &p.key, e);
                ok = false;
                None
            }
        },
    };
    if user.is_none()
        && password.is_some()
        && let Some(p) = t.str(doc, "password")
    {
        doc.error(
            p.span.clone(),
            &p.key,
            format!("`password` is basic authentication's: it needs `user` (a token goes in `[{section}.headers]`)"),
        );
        ok = false;
    }
    ok.then_some((user, password))
}

/// The PEM files of an `https://` endpoint, relative to the deployment root.
struct TlsFiles {
    ca_file: Option<PathBuf>,
    client_cert: Option<PathBuf>,
    client_key: Option<PathBuf>,
}

/// `ca_file`, and `client_cert` with `client_key` (both or neither): only for an
/// `https://` URL. `None` when wrong (reported).
fn read_tls_files(
    doc: &mut Doc<'_>,
    root: &Path,
    t: &mut TableReader<'_, '_>,
    url: &Str,
) -> Option<TlsFiles> {
    let mut ok = true;
    let path_of = |s: Option<Str>| s.map(|s| root.join(&s.value));
    let ca_file = path_of(t.str(doc, "ca_file"));
    let client_cert = path_of(t.str(doc, "client_cert"));
    let client_key = path_of(t.str(doc, "client_key"));
    if client_cert.is_some() != client_key.is_some() {
        doc.error(
            t.span.clone(),
            &format!("{}.client_cert", t.path),
            "a client certificate needs both `client_cert` and `client_key` (PEM files)",
        );
        ok = false;
    }
    // A URL that is wrong already is reported by itself.
    let plain_http =
        check_url(&url.value).is_ok() && !url.value.to_ascii_lowercase().starts_with("https://");
    for (key, given) in [
        ("ca_file", ca_file.is_some()),
        ("client_cert", client_cert.is_some()),
    ] {
        if given && plain_http {
            doc.error(
                t.span_of(key),
                &format!("{}.{key}", t.path),
                format!("`{key}` only matters for `https://` URLs"),
            );
            ok = false;
        }
    }
    ok.then_some(TlsFiles {
        ca_file,
        client_cert,
        client_key,
    })
}

/// `timeout`: the longest one request may take, at least 100ms ([`DEFAULT_TIMEOUT`] when
/// the job does not say).
fn read_timeout(doc: &mut Doc<'_>, t: &mut TableReader<'_, '_>) -> Option<Duration> {
    match t.str(doc, "timeout") {
        None => Some(DEFAULT_TIMEOUT),
        Some(s) => match parse_duration(&s.value) {
            Ok(d) if d >= Duration::from_millis(100) => Some(d),
            Ok(_) => {
                doc.error(s.span.clone(), &s.key, "expected at least \"100ms\"");
                None
            }
            Err(e) => {
                doc.error(s.span.clone(), &s.key, e);
                None
            }
        },
    }
}

/// The outbox format of an HTTP output: with `body = "record"` the outbox holds the records
/// as JSON lines (each line one request, rendered by `template` when there is one), so the
/// deliverer can send them one by one and resume after the last acknowledged one.
pub fn outbox_data(
    doc: &mut Doc<'_>,
    t: &TableReader<'_, '_>,
    h: &HttpEndpoint,
    data: Option<crate::job::data::OutputData>,
    has_input: bool,
) -> Option<crate::job::data::OutputData> {
    use crate::formats::json::JsonStyle;
    use crate::job::data::OutputFormat;
    if h.body != Body::Record {
        return data;
    }
    if !has_input {
        doc.error(
            t.span_of("body"),
            &format!("{}.body", t.path),
            "`body = \"record\"` sends one request per record: the job needs an `[input]` section that says how to read the file",
        );
        return None;
    }
    let mut data = data?;
    match data.format {
        OutputFormat::Original => data.format = OutputFormat::Json(JsonStyle::Lines),
        OutputFormat::Json(JsonStyle::Lines) => {}
        _ => {
            doc.error(
                t.span_of("format"),
                &format!("{}.format", t.path),
                "with `body = \"record\"` each record is sent as JSON, or rendered by `template`: remove `format` (or write \"jsonl\")",
            );
            return None;
        }
    }
    Some(data)
}

/// An `http://` or `https://` URL with a host and no user information (credentials go in
/// `user`/`password` or `[output.headers]`, never in a URL that is logged).
pub fn check_url(url: &str) -> Result<(), String> {
    let lower = url.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
        .ok_or_else(|| {
            "expected a URL like \"https://erp.example/api/orders\" (http:// or https://)"
                .to_string()
        })?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Err(
            "credentials do not go in the URL (it is logged): use `user` and `password = \"${env:NAME}\"`, or `[output.headers]`"
                .into(),
        );
    }
    if authority.is_empty() || authority.starts_with(':') {
        return Err("the URL has no host".into());
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("the URL has blanks or control characters; write them %-escaped".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_with_references() {
        let h = HeaderValue::parse("Authorization", "Bearer ${env:ERP_TOKEN}").unwrap();
        assert_eq!(
            h.parts,
            vec![
                Piece::Text("Bearer ".into()),
                Piece::Secret(Secret::Env("ERP_TOKEN".into()))
            ]
        );
        assert!(!h.literal_secret);
        let lit = HeaderValue::parse("X-Api-Key", "abc123").unwrap();
        assert!(lit.literal_secret);
        let plain = HeaderValue::parse("Accept", "application/json").unwrap();
        assert!(!plain.literal_secret);
        assert!(HeaderValue::parse("A", "x ${env:B").is_err());
        assert!(HeaderValue::parse("A", "${vault:x}").is_err());
    }

    #[test]
    fn urls() {
        assert!(check_url("https://erp.example/api/orders?x=1").is_ok());
        assert!(check_url("http://127.0.0.1:8080").is_ok());
        assert!(check_url("ftp://h/x").is_err());
        let e = check_url("https://u:Pw-Url-9x@h/x").unwrap_err();
        assert!(!e.contains("Pw-Url"), "{e}");
        assert!(check_url("https:///x").is_err());
    }
}
