//! A job's files per hour and failures over the last days, as a small SVG drawn on the
//! server (no JavaScript): one bar per hour, its failed part in red, a label per day.

use rusqlite::Connection;

/// How many days the chart shows.
pub const DAYS: i64 = 7;

const HOUR_MS: i64 = 3_600_000;
const WIDTH: f64 = 840.0;
const HEIGHT: f64 = 150.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 22.0;
const LEFT: f64 = 36.0;

/// Files and failures per hour, oldest hour first.
#[derive(Debug, Default, Clone)]
pub struct Series {
    /// The first hour, in hours since the epoch.
    pub first_hour: i64,
    /// (files, failed) per hour.
    pub hours: Vec<(i64, i64)>,
}

/// The last `days` days of `job`, by the hour the files were first seen.
pub fn series(conn: &Connection, job: &str, days: i64) -> rusqlite::Result<Series> {
    let now_hour = crate::journal::now_ms() / HOUR_MS;
    let first_hour = now_hour - days * 24 + 1;
    let mut hours = vec![(0, 0); (days * 24) as usize];
    let mut st = conn.prepare_cached(
        "SELECT first_seen / 3600000, COUNT(*), COALESCE(SUM(state = 'failed'), 0) FROM files
         WHERE job = ?1 AND first_seen >= ?2 GROUP BY 1",
    )?;
    let mut rows = st.query(rusqlite::params![job, first_hour * HOUR_MS])?;
    while let Some(r) = rows.next()? {
        let (h, n, failed): (i64, i64, i64) = (r.get(0)?, r.get(1)?, r.get(2)?);
        if let Some(slot) = hours.get_mut((h - first_hour) as usize) {
            *slot = (n, failed);
        }
    }
    Ok(Series { first_hour, hours })
}

/// The chart as an inline `<svg>` element.
pub fn svg(s: &Series) -> String {
    let max = s.hours.iter().map(|h| h.0).max().unwrap_or(0).max(1);
    let n = s.hours.len().max(1) as f64;
    let plot_w = WIDTH - LEFT - 4.0;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let bar_w = plot_w / n;
    let y = |v: i64| TOP + plot_h - plot_h * v as f64 / max as f64;
    let mut out = format!(
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" preserveAspectRatio="xMidYMid meet" role="img" aria-label="files per hour, failures in red">"#
    );
    out.push_str(&format!(
        r##"<text x="{x}" y="{ty}" class="axis" text-anchor="end">{max}</text><line x1="{LEFT}" y1="{TOP}" x2="{WIDTH}" y2="{TOP}" class="grid"/><text x="{x}" y="{by}" class="axis" text-anchor="end">0</text><line x1="{LEFT}" y1="{base}" x2="{WIDTH}" y2="{base}" class="base"/>"##,
        x = LEFT - 6.0,
        ty = TOP + 4.0,
        by = TOP + plot_h + 4.0,
        base = TOP + plot_h,
    ));
    let days: Vec<String> = (0..s.hours.len())
        .map(|i| local_day(s.first_hour + i as i64))
        .collect();
    // The first day is labelled only when most of it is on the chart.
    let first_change = days.iter().position(|d| *d != days[0]).unwrap_or(0);
    for (i, (files, failed)) in s.hours.iter().enumerate() {
        let x = LEFT + i as f64 * bar_w;
        let hour = s.first_hour + i as i64;
        let new_day = if i == 0 {
            first_change > 12
        } else {
            days[i] != days[i - 1]
        };
        if new_day {
            out.push_str(&day_label(x, &days[i]));
        }
        if *files == 0 {
            continue;
        }
        let title = format!("{}: {files} file(s), {failed} failed", hour_text(hour));
        out.push_str(&format!(
            r#"<g><title>{title}</title><rect x="{x:.1}" y="{:.1}" width="{w:.1}" height="{:.1}" class="ok"/>"#,
            y(*files),
            y(0) - y(*files),
            w = (bar_w - 1.0).max(1.0),
        ));
        if *failed > 0 {
            out.push_str(&format!(
                r#"<rect x="{x:.1}" y="{:.1}" width="{w:.1}" height="{:.1}" class="failed"/>"#,
                y(*failed),
                y(0) - y(*failed),
                w = (bar_w - 1.0).max(1.0),
            ));
        }
        out.push_str("</g>");
    }
    out.push_str("</svg>");
    out
}

fn hour_text(hour: i64) -> String {
    chrono::DateTime::from_timestamp(hour * 3600, 0)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:00")
                .to_string()
        })
        .unwrap_or_default()
}

/// The local day an hour is in, as the chart labels it: `Fri 04`.
fn local_day(hour: i64) -> String {
    chrono::DateTime::from_timestamp(hour * 3600, 0)
        .map(|t| t.with_timezone(&chrono::Local).format("%a %d").to_string())
        .unwrap_or_default()
}

fn day_label(x: f64, day: &str) -> String {
    format!(
        r#"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{b}" class="day"/><text x="{tx:.1}" y="{ty}" class="axis">{day}</text>"#,
        b = HEIGHT - BOTTOM,
        tx = x + 3.0,
        ty = HEIGHT - 6.0,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_follow_the_counts() {
        let s = Series {
            first_hour: 480_000,
            hours: vec![(0, 0), (4, 1), (2, 0)],
        };
        let svg = svg(&s);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("class=\"ok\"").count(), 2);
        assert_eq!(svg.matches("class=\"failed\"").count(), 1);
        assert!(svg.contains("4 file(s), 1 failed"), "{svg}");
        // It takes its card's width (the viewBox scales it), not a fixed one.
        let open = &svg[..svg.find('>').unwrap()];
        assert!(
            open.contains("width=\"100%\"") && !open.contains("height="),
            "{open}"
        );
    }
}
