//! HTTP requests for HTTP outputs, over ureq (blocking, rustls with ring, no native TLS):
//! the agent of an endpoint (TLS trust, client certificate, timeouts, no redirects), one
//! request and its answer, what an answer means ([`Verdict`]), and SOAP faults.
//! Knows nothing of outboxes or the journal (`outputs::http` does).

use std::time::Duration;

use crate::job::http::{HttpAccess, HttpEndpoint};

/// The most of an answer's body that is read (a saved response, a report excerpt).
pub const MAX_ANSWER: u64 = 16 * 1024 * 1024;
/// How much of an answer's body a report or log line quotes.
pub const EXCERPT: usize = 300;

/// What the server answered.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub reason: String,
    pub body: Vec<u8>,
    pub retry_after: Option<Duration>,
}

/// What an answer (or its absence) means for the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx: delivered.
    Accepted,
    /// 408, 429, 5xx, no answer at all: try again later, with the same idempotency key.
    Retry(String),
    /// Any other answer (4xx, a SOAP fault, a redirect): sending it again fails the same way.
    Refused(String),
}

/// The agent of an endpoint. TLS is always verified: against `ca_file` when given (a
/// partner's private CA, trusted instead of the public roots), else Mozilla's roots.
pub fn agent(ep: &HttpAccess) -> Result<ureq::Agent, String> {
    use ureq::tls::{ClientCert, PemItem, RootCerts, TlsConfig};
    let mut tls = TlsConfig::builder();
    if let Some(ca) = &ep.ca_file {
        let pem = std::fs::read(ca)
            .map_err(|e| format!("cannot read the CA file {}: {e}", ca.display()))?;
        let certs: Vec<_> = ureq::tls::parse_pem(&pem)
            .filter_map(|i| match i {
                Ok(PemItem::Certificate(c)) => Some(c),
                _ => None,
            })
            .collect();
        if certs.is_empty() {
            return Err(format!("no PEM certificate in {}", ca.display()));
        }
        tls = tls.root_certs(RootCerts::new_with_certs(&certs));
    }
    if let (Some(cert), Some(key)) = (&ep.client_cert, &ep.client_key) {
        let pem = std::fs::read(cert)
            .map_err(|e| format!("cannot read the client certificate {}: {e}", cert.display()))?;
        let chain: Vec<_> = ureq::tls::parse_pem(&pem)
            .filter_map(|i| match i {
                Ok(PemItem::Certificate(c)) => Some(c),
                _ => None,
            })
            .collect();
        let key_pem = std::fs::read(key)
            .map_err(|e| format!("cannot read the client key {}: {e}", key.display()))?;
        let key = ureq::tls::PrivateKey::from_pem(&key_pem)
            .map_err(|e| format!("the client key {} is not a PEM key: {e}", key.display()))?;
        if chain.is_empty() {
            return Err(format!("no PEM certificate in {}", cert.display()));
        }
        tls = tls.client_cert(Some(ClientCert::new_with_certs(&chain, key)));
    }
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .max_redirects_will_error(false)
        .timeout_global(Some(ep.timeout))
        .user_agent(concat!("ferry/", env!("CARGO_PKG_VERSION")))
        .tls_config(tls.build())
        .build();
    Ok(ureq::Agent::new_with_config(config))
}

/// What a request carries.
pub enum Payload<'a> {
    Bytes(&'a [u8]),
    File(std::fs::File),
}

/// Sends one request. `Err` is "no answer" (connection refused or dropped, TLS refused,
/// timeout): a message for the report, the request may be retried.
pub fn send(
    agent: &ureq::Agent,
    ep: &HttpEndpoint,
    headers: &[(String, String)],
    payload: Payload<'_>,
) -> Result<Answer, String> {
    let mut req = match ep.method {
        crate::job::http::Method::Post => agent.post(&ep.url),
        crate::job::http::Method::Put => agent.put(&ep.url),
    };
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let sent = match payload {
        Payload::Bytes(b) => req.send(b),
        Payload::File(f) => req.send(f),
    };
    let resp = sent.map_err(|e| no_answer(&e))?;
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(retry_after);
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut body = resp
        .into_body()
        .with_config()
        .limit(MAX_ANSWER)
        .read_to_vec()
        .map_err(|e| format!("the answer's body could not be read: {e}"))?;
    if status.is_redirection()
        && body.is_empty()
        && let Some(l) = location
    {
        body = format!("Location: {l}").into_bytes();
    }
    Ok(Answer {
        status: status.as_u16(),
        reason: status.canonical_reason().unwrap_or("").to_string(),
        body,
        retry_after,
    })
}

/// A GET's answer (a REST source's page): its status, its body, and the target of a
/// `Link: <...>; rel="next"` header.
#[derive(Debug)]
pub struct Page {
    pub status: u16,
    pub reason: String,
    pub body: Vec<u8>,
    pub link_next: Option<String>,
}

/// Sends one GET. `Err` is "no answer" (connection refused or dropped, TLS refused,
/// timeout) or a body larger than `limit` bytes.
pub fn get(
    agent: &ureq::Agent,
    url: &str,
    headers: &[(String, String)],
    limit: u64,
) -> Result<Page, String> {
    let mut req = agent.get(url);
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let resp = req.call().map_err(|e| no_answer(&e))?;
    let status = resp.status();
    let link_next = resp
        .headers()
        .get_all("link")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(link_next);
    let body = resp
        .into_body()
        .with_config()
        .limit(limit)
        .read_to_vec()
        .map_err(|e| match e {
            ureq::Error::BodyExceedsLimit(_) => {
                format!("the answer is larger than {} MiB", limit >> 20)
            }
            e => format!("the answer's body could not be read: {e}"),
        })?;
    Ok(Page {
        status: status.as_u16(),
        reason: status.canonical_reason().unwrap_or("").to_string(),
        body,
        link_next,
    })
}

/// The `rel="next"` target of a `Link` header value (RFC 8288):
/// `<https://h/o?page=2>; rel="next", <...>; rel="last"`.
pub fn link_next(value: &str) -> Option<String> {
    let mut rest = value;
    while let Some(open) = rest.find('<') {
        let close = open + rest[open..].find('>')?;
        let target = &rest[open + 1..close];
        let params_end = rest[close..].find('<').map_or(rest.len(), |i| close + i);
        let is_next = rest[close + 1..params_end].split(';').any(|p| {
            let Some((k, v)) = p.split_once('=') else {
                return false;
            };
            k.trim().eq_ignore_ascii_case("rel")
                && v.trim()
                    .trim_end_matches(',')
                    .trim()
                    .trim_matches('"')
                    .split_whitespace()
                    .any(|r| r.eq_ignore_ascii_case("next"))
        });
        if is_next {
            return Some(target.trim().to_string());
        }
        rest = &rest[params_end..];
    }
    None
}

/// An error without an answer, for logs and reports.
fn no_answer(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Timeout(t) => format!("no answer in time ({t})"),
        ureq::Error::Io(io) => format!("connection failed: {io}"),
        other => format!("no answer: {other}"),
    }
}

/// `Retry-After`: seconds, or an HTTP date. At most an hour is honoured (a longer pause is
/// the backoff's business, and `[retry] for` still counts).
pub fn retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    let d = match v.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => {
            let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
            let ms = at.timestamp_millis() - chrono::Utc::now().timestamp_millis();
            Duration::from_millis(ms.max(0) as u64)
        }
    };
    Some(d.min(Duration::from_secs(3600)))
}

impl Answer {
    /// The start of the body as text (for reports), one line.
    pub fn excerpt(&self) -> String {
        excerpt(&self.body)
    }

    /// What this answer means. With `soap`, a SOAP fault in the body is a refusal with its
    /// fault string whatever the status (SOAP 1.1 services answer faults with 500).
    pub fn verdict(&self, soap: bool) -> Verdict {
        if soap && let Some(f) = soap_fault(&self.body) {
            return Verdict::Refused(format!("HTTP {}: SOAP fault: {f}", self.status));
        }
        let what = format!("HTTP {} {}: {}", self.status, self.reason, self.excerpt());
        match self.status {
            200..=299 => Verdict::Accepted,
            408 | 429 | 500..=599 => Verdict::Retry(what),
            300..=399 => Verdict::Refused(format!("{what} (redirects are not followed)")),
            _ => Verdict::Refused(what),
        }
    }
}

/// The first [`EXCERPT`] characters of a body as one line of text.
pub fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(EXCERPT * 4)]);
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(EXCERPT)
        .collect();
    if text.chars().count() > EXCERPT {
        out.push_str("...");
    }
    let out = out.split_whitespace().collect::<Vec<_>>().join(" ");
    crate::redact::scrub(&out).into_owned()
}

/// A SOAP 1.1 or 1.2 fault in `body`: "CODE: STRING" (`faultcode`/`faultstring`, or
/// `Code/Value` and `Reason/Text`), or `None` when the body is no SOAP fault.
pub fn soap_fault(body: &[u8]) -> Option<String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(body);
    let mut path: Vec<String> = Vec::new();
    let mut in_fault = false;
    let (mut code, mut string, mut cur) = (String::new(), String::new(), String::new());
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e)) => {
                let name = e.local_name().as_ref().to_string();
                if name == "Fault" && path.iter().any(|p| p == "Body") {
                    in_fault = true;
                }
                path.push(name);
                cur.clear();
            }
            Ok(Event::End(_)) => {
                let text = cur.trim().to_string();
                cur.clear();
                if in_fault {
                    let inside = |n: &str| path.iter().any(|p| p == n);
                    match path.last().map(String::as_str) {
                        Some("faultcode") => code = text,
                        Some("Value") if inside("Code") && code.is_empty() => code = text,
                        Some("faultstring") => string = text,
                        Some("Text") if inside("Reason") && string.is_empty() => string = text,
                        _ => {}
                    }
                }
                path.pop();
            }
            Ok(Event::Empty(e))
                if e.local_name().as_ref() == "Fault" && path.iter().any(|p| p == "Body") =>
            {
                in_fault = true;
            }
            Ok(Event::Text(t)) => cur.push_str(&t.xml10_content()),
            Ok(Event::CData(t)) => cur.push_str(&t.xml10_content()),
            Ok(Event::GeneralRef(r)) => {
                let name = r.xml10_content().into_owned();
                match r.resolve_char_ref() {
                    Ok(Some(c)) => cur.push(c),
                    _ => cur.push_str(
                        quick_xml::escape::resolve_predefined_entity(&name).unwrap_or(""),
                    ),
                }
            }
            Ok(Event::Eof) | Err(_) => break,
            _ => {}
        }
        buf.clear();
    }
    if !in_fault {
        return None;
    }
    let out = match (code.is_empty(), string.is_empty()) {
        (false, false) => format!("{code}: {string}"),
        (true, false) => string,
        (false, true) => code,
        (true, true) => "(no fault string)".into(),
    };
    Some(crate::redact::scrub(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_by_status() {
        let a = |status: u16, body: &str| Answer {
            status,
            reason: String::new(),
            body: body.as_bytes().to_vec(),
            retry_after: None,
        };
        let cases = [
            (200, Verdict::Accepted),
            (201, Verdict::Accepted),
            (204, Verdict::Accepted),
        ];
        for (s, v) in cases {
            assert_eq!(a(s, "").verdict(false), v, "{s}");
        }
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(matches!(a(s, "x").verdict(false), Verdict::Retry(_)), "{s}");
        }
        for s in [301, 400, 401, 403, 404, 409, 422] {
            assert!(
                matches!(a(s, "x").verdict(false), Verdict::Refused(_)),
                "{s}"
            );
        }
        let Verdict::Refused(m) = a(400, "invalid order:\n  no customer").verdict(false) else {
            panic!()
        };
        assert!(
            m.contains("HTTP 400") && m.contains("invalid order: no customer"),
            "{m}"
        );
    }

    #[test]
    fn soap_faults_are_read_in_both_versions() {
        let v11 = r#"<?xml version="1.0"?><soap11env:Envelope xmlns:soap11env="http://schemas.xmlsoap.org/soap/envelope/"><soap11env:Body><soap11env:Fault><faultcode>soap11env:Client.Invalid</faultcode><faultstring>unknown customer 42</faultstring></soap11env:Fault></soap11env:Body></soap11env:Envelope>"#;
        assert_eq!(
            soap_fault(v11.as_bytes()).as_deref(),
            Some("soap11env:Client.Invalid: unknown customer 42")
        );
        let v12 = r#"<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope"><env:Body><env:Fault><env:Code><env:Value>env:Sender</env:Value></env:Code><env:Reason><env:Text xml:lang="en">bad &amp; wrong</env:Text></env:Reason></env:Fault></env:Body></env:Envelope>"#;
        assert_eq!(
            soap_fault(v12.as_bytes()).as_deref(),
            Some("env:Sender: bad & wrong")
        );
        let ok = r#"<e:Envelope xmlns:e="x"><e:Body><r>Fault</r></e:Body></e:Envelope>"#;
        assert_eq!(soap_fault(ok.as_bytes()), None);
        let a = Answer {
            status: 500,
            reason: "Internal Server Error".into(),
            body: v11.as_bytes().to_vec(),
            retry_after: None,
        };
        assert!(
            matches!(a.verdict(true), Verdict::Refused(m) if m.contains("unknown customer 42"))
        );
        assert!(matches!(a.verdict(false), Verdict::Retry(_)));
    }

    #[test]
    fn link_headers_name_the_next_page() {
        let cases = [
            (
                r#"<https://h/o?page=2>; rel="next""#,
                Some("https://h/o?page=2"),
            ),
            (
                r#"<https://h/o?page=1>; rel="prev", </o?page=3>; rel="next", <https://h/o?page=9>; rel="last""#,
                Some("/o?page=3"),
            ),
            (r#"<x>; rel="last"; title="a, b""#, None),
            (r#"<a>; rel=next"#, Some("a")),
            (r#"<a>; rel="prefetch next""#, Some("a")),
            ("", None),
        ];
        for (value, want) in cases {
            assert_eq!(link_next(value).as_deref(), want, "{value}");
        }
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        assert_eq!(retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(retry_after("99999"), Some(Duration::from_secs(3600)));
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon"), None);
    }
}
