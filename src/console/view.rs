//! The console's templates and style sheet, embedded in the binary (no files to install,
//! no build step), rendered with minijinja (HTML-escaped by default, as their names end
//! in `.html`). Every rendered page goes through [`crate::redact::scrub`].

use std::sync::LazyLock;

use axum::http::header;
use axum::response::{Html, IntoResponse};
use minijinja::Environment;
use serde::Serialize;

use super::{Identity, Problem};

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("login.html", include_str!("templates/login.html")),
    ("jobs.html", include_str!("templates/jobs.html")),
    ("job.html", include_str!("templates/job.html")),
    ("files.html", include_str!("templates/files.html")),
    ("file.html", include_str!("templates/file.html")),
    ("errors.html", include_str!("templates/errors.html")),
    ("review.html", include_str!("templates/review.html")),
    ("done.html", include_str!("templates/done.html")),
];

const STYLE: &str = include_str!("templates/style.css");

static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    for (name, source) in TEMPLATES {
        if let Err(e) = env.add_template(name, source) {
            // A broken template is a bug of this build: found by the console's tests.
            tracing::error!(template = name, error = %e, "Console template does not parse.");
        }
    }
    env.add_filter("bytes", |n: i64| human_bytes(n));
    env.set_formatter(html_formatter);
    env
});

/// HTML-escapes `&`, `<`, `>`, `"` and `'` in strings (minijinja's own escaping also turns
/// every `/` into `&#x2f;`, which makes paths and URLs unreadable in the page source and
/// unsearchable in tests); everything else as minijinja does it.
fn html_formatter(
    out: &mut minijinja::Output,
    state: &mut minijinja::State,
    value: &minijinja::Value,
) -> Result<(), minijinja::Error> {
    let html = matches!(state.auto_escape(), minijinja::AutoEscape::Html);
    match value.as_str() {
        Some(s) if html && !value.is_safe() => {
            let mut escaped = String::with_capacity(s.len());
            for c in s.chars() {
                match c {
                    '&' => escaped.push_str("&amp;"),
                    '<' => escaped.push_str("&lt;"),
                    '>' => escaped.push_str("&gt;"),
                    '"' => escaped.push_str("&quot;"),
                    '\'' => escaped.push_str("&#39;"),
                    c => escaped.push(c),
                }
            }
            out.write_str(&escaped).map_err(|e| {
                minijinja::Error::new(minijinja::ErrorKind::WriteFailure, e.to_string())
            })
        }
        _ => minijinja::escape_formatter(out, state, value),
    }
}

/// `1536` as `1.5 KiB`.
fn human_bytes(n: i64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// The page `name` with `ctx`, for `who` (the menu shows the user, forms carry the CSRF
/// token), under the menu entry `nav`.
pub fn page(
    name: &str,
    nav: &str,
    who: &Identity,
    ctx: impl Serialize,
) -> Result<Html<String>, Problem> {
    let t = ENV.get_template(name).map_err(Problem::internal)?;
    let mut ctx = serde_json::to_value(ctx).map_err(Problem::internal)?;
    if let Some(map) = ctx.as_object_mut() {
        map.insert(
            "who".into(),
            serde_json::to_value(who).map_err(Problem::internal)?,
        );
        map.insert("nav".into(), nav.into());
    }
    let html = t
        .render(minijinja::value::Serde(ctx))
        .map_err(Problem::internal)?;
    Ok(Html(crate::redact::scrub(&html).into_owned()))
}

/// `GET /style.css`.
pub async fn style() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        STYLE,
    )
}
