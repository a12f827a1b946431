//! Column values as text, faithfully (docs/databases-source.md, "Values"): numbers as the
//! database holds them (`NUMERIC`/`DECIMAL` digit for digit), dates and times in ISO 8601
//! (`2026-12-03`, `2026-12-03T18:40:15.25`, with `Z` for a time in UTC), booleans as
//! `true`/`false`, binary as `\x` and hex digits, NULL as `None` (an empty CSV field).
//! Also the watermark's order: which of two values is the higher.

use std::cmp::Ordering;

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use sqlx::mysql::MySqlRow;
use sqlx::postgres::PgValueRef;
use sqlx::{Row, TypeInfo, ValueRef};

/// How a column's values compare, for the watermark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Integers and decimals: compared as exact decimal numbers.
    Number,
    /// Floating point: compared as f64.
    Float,
    /// Dates, timestamps, times in the fixed ISO 8601 shape written here.
    Time,
    /// Text and anything else: compared byte by byte.
    Text,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Number => "number",
            Kind::Float => "float",
            Kind::Time => "time",
            Kind::Text => "text",
        }
    }

    pub fn parse(s: &str) -> Kind {
        match s {
            "number" => Kind::Number,
            "float" => Kind::Float,
            "time" => Kind::Time,
            _ => Kind::Text,
        }
    }
}

/// The kind of a PostgreSQL type (by sqlx's name for it).
pub fn pg_kind(type_name: &str) -> Kind {
    match type_name {
        "INT2" | "INT4" | "INT8" | "NUMERIC" | "OID" => Kind::Number,
        "FLOAT4" | "FLOAT8" => Kind::Float,
        "DATE" | "TIMESTAMP" | "TIMESTAMPTZ" | "TIME" => Kind::Time,
        _ => Kind::Text,
    }
}

/// The kind of a MySQL/MariaDB type.
pub fn mysql_kind(type_name: &str) -> Kind {
    match type_name {
        t if t.contains("INT") || t == "DECIMAL" || t == "YEAR" || t == "BOOLEAN" => Kind::Number,
        "FLOAT" | "DOUBLE" => Kind::Float,
        "DATE" | "DATETIME" | "TIMESTAMP" | "TIME" => Kind::Time,
        _ => Kind::Text,
    }
}

/// The lowest value of a PostgreSQL type, as text it accepts: `:since` of a first run
/// without `since`, so that `col > :since` takes every row. `None`: no such value (the
/// job must set `since`).
pub fn pg_lowest(type_name: &str) -> Option<&'static str> {
    Some(match type_name {
        "INT2" => "-32768",
        "INT4" => "-2147483648",
        "INT8" => "-9223372036854775808",
        "NUMERIC" | "FLOAT4" | "FLOAT8" => "-Infinity",
        "DATE" | "TIMESTAMP" | "TIMESTAMPTZ" => "-infinity",
        "TIME" => "00:00:00",
        "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" => "",
        "UUID" => "00000000-0000-0000-0000-000000000000",
        _ => return None,
    })
}

fn bad(col: &str, ty: &str, why: impl std::fmt::Display) -> String {
    format!("column {col:?} ({ty}): {why}")
}

fn be<const N: usize>(b: &[u8], col: &str, ty: &str) -> Result<[u8; N], String> {
    b.try_into()
        .map_err(|_| bad(col, ty, format!("expected {N} bytes, got {}", b.len())))
}

const PG_EPOCH_DAYS: i64 = 10_957; // 2000-01-01 after 1970-01-01

fn pg_timestamp(micros: i64, utc: bool) -> String {
    match micros {
        i64::MAX => return "infinity".into(),
        i64::MIN => return "-infinity".into(),
        _ => {}
    }
    let base = NaiveDate::from_ymd_opt(2000, 1, 1)
        .expect("a date")
        .and_hms_opt(0, 0, 0)
        .expect("a time");
    let t = base + chrono::Duration::microseconds(micros);
    iso_datetime(&t, utc)
}

fn iso_datetime(t: &NaiveDateTime, utc: bool) -> String {
    let s = t.format("%Y-%m-%dT%H:%M:%S%.f").to_string();
    if utc { s + "Z" } else { s }
}

fn hex(prefix: &str, b: &[u8]) -> String {
    let mut s = String::with_capacity(prefix.len() + 2 * b.len());
    s.push_str(prefix);
    s.push_str(&hex::encode(b));
    s
}

/// PostgreSQL's binary NUMERIC as its decimal text, digit for digit (its display scale).
fn pg_numeric(b: &[u8], col: &str) -> Result<String, String> {
    let ty = "NUMERIC";
    if b.len() < 8 {
        return Err(bad(col, ty, "short value"));
    }
    let word = |i: usize| i16::from_be_bytes([b[i], b[i + 1]]);
    let ndigits = word(0).max(0) as usize;
    let weight = word(2) as i64;
    let sign = u16::from_be_bytes([b[4], b[5]]);
    let dscale = word(6).max(0) as usize;
    match sign {
        0xC000 => return Ok("NaN".into()),
        0xD000 => return Ok("Infinity".into()),
        0xF000 => return Ok("-Infinity".into()),
        _ => {}
    }
    if b.len() < 8 + 2 * ndigits {
        return Err(bad(col, ty, "short value"));
    }
    let digits: Vec<i64> = (0..ndigits).map(|i| word(8 + 2 * i) as i64).collect();
    let mut int_part = String::new();
    let mut k = 0i64;
    while k <= weight {
        let d = digits.get(k as usize).copied().unwrap_or(0);
        if int_part.is_empty() {
            if d != 0 {
                int_part = d.to_string();
            }
        } else {
            int_part.push_str(&format!("{d:04}"));
        }
        k += 1;
    }
    if int_part.is_empty() {
        int_part.push('0');
    }
    let mut frac = String::new();
    let mut idx = weight + 1;
    while frac.len() < dscale {
        let d = if idx < 0 {
            0
        } else {
            digits.get(idx as usize).copied().unwrap_or(0)
        };
        frac.push_str(&format!("{d:04}"));
        idx += 1;
    }
    frac.truncate(dscale);
    let neg = sign == 0x4000;
    let mut s = String::new();
    if neg {
        s.push('-');
    }
    s.push_str(&int_part);
    if dscale > 0 {
        s.push('.');
        s.push_str(&frac);
    }
    Ok(s)
}

/// One PostgreSQL value as text; `None` for NULL.
pub fn pg_text(v: PgValueRef<'_>, col: &str) -> Result<Option<String>, String> {
    if v.is_null() {
        return Ok(None);
    }
    let info = v.type_info().into_owned();
    let ty = info.name();
    let b = v.as_bytes().map_err(|e| bad(col, ty, e))?;
    if v.format() == sqlx::postgres::PgValueFormat::Text {
        return std::str::from_utf8(b)
            .map(|s| Some(s.to_string()))
            .map_err(|e| bad(col, ty, e));
    }
    let utf8 = |b: &[u8]| {
        std::str::from_utf8(b)
            .map(str::to_string)
            .map_err(|e| bad(col, ty, e))
    };
    let s = match ty {
        "BOOL" => (b.first() == Some(&1)).to_string(),
        "INT2" => i16::from_be_bytes(be(b, col, ty)?).to_string(),
        "INT4" => i32::from_be_bytes(be(b, col, ty)?).to_string(),
        "OID" => u32::from_be_bytes(be(b, col, ty)?).to_string(),
        "INT8" => i64::from_be_bytes(be(b, col, ty)?).to_string(),
        "FLOAT4" => f32::from_be_bytes(be(b, col, ty)?).to_string(),
        "FLOAT8" => f64::from_be_bytes(be(b, col, ty)?).to_string(),
        "NUMERIC" => pg_numeric(b, col)?,
        "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" | "JSON" | "XML" | "UNKNOWN" | "CITEXT" => utf8(b)?,
        "JSONB" => utf8(b.get(1..).unwrap_or_default())?,
        "DATE" => match i32::from_be_bytes(be(b, col, ty)?) {
            i32::MAX => "infinity".into(),
            i32::MIN => "-infinity".into(),
            d => {
                let days = d as i64 + PG_EPOCH_DAYS;
                let date = NaiveDate::from_ymd_opt(1970, 1, 1).expect("a date")
                    + chrono::Duration::days(days);
                date.format("%Y-%m-%d").to_string()
            }
        },
        "TIMESTAMP" => pg_timestamp(i64::from_be_bytes(be(b, col, ty)?), false),
        "TIMESTAMPTZ" => pg_timestamp(i64::from_be_bytes(be(b, col, ty)?), true),
        "TIME" => {
            let us = i64::from_be_bytes(be(b, col, ty)?);
            let t = NaiveTime::from_num_seconds_from_midnight_opt(
                (us / 1_000_000) as u32,
                ((us % 1_000_000) * 1000) as u32,
            )
            .ok_or_else(|| bad(col, ty, "out of range"))?;
            t.format("%H:%M:%S%.f").to_string()
        }
        "UUID" => {
            let h = hex::encode(b);
            if h.len() != 32 {
                return Err(bad(col, ty, "expected 16 bytes"));
            }
            format!(
                "{}-{}-{}-{}-{}",
                &h[0..8],
                &h[8..12],
                &h[12..16],
                &h[16..20],
                &h[20..]
            )
        }
        "BYTEA" => hex("\\x", b),
        other => {
            return Err(bad(
                col,
                other,
                "ferry cannot write this type as text; cast it in the query (e.g. `col::text`)",
            ));
        }
    };
    Ok(Some(s))
}

/// One MySQL/MariaDB value as text; `None` for NULL.
pub fn mysql_text(row: &MySqlRow, i: usize, col: &str) -> Result<Option<String>, String> {
    let raw = row.try_get_raw(i).map_err(|e| bad(col, "?", e))?;
    if raw.is_null() {
        return Ok(None);
    }
    let info = raw.type_info().into_owned();
    let ty = info.name();
    let e = |e: sqlx::Error| bad(col, ty, e);
    let s = match ty {
        t if t.ends_with("UNSIGNED") => row.try_get_unchecked::<u64, _>(i).map_err(e)?.to_string(),
        "BOOLEAN" | "TINYINT" | "SMALLINT" | "INT" | "MEDIUMINT" | "BIGINT" | "YEAR" => {
            row.try_get_unchecked::<i64, _>(i).map_err(e)?.to_string()
        }
        "FLOAT" => row.try_get_unchecked::<f32, _>(i).map_err(e)?.to_string(),
        "DOUBLE" => row.try_get_unchecked::<f64, _>(i).map_err(e)?.to_string(),
        "DATE" => row
            .try_get_unchecked::<NaiveDate, _>(i)
            .map_err(e)?
            .format("%Y-%m-%d")
            .to_string(),
        "DATETIME" => iso_datetime(
            &row.try_get_unchecked::<NaiveDateTime, _>(i).map_err(e)?,
            false,
        ),
        "TIMESTAMP" => iso_datetime(
            &row.try_get_unchecked::<NaiveDateTime, _>(i).map_err(e)?,
            true,
        ),
        "TIME" => row
            .try_get_unchecked::<NaiveTime, _>(i)
            .map_err(e)?
            .format("%H:%M:%S%.f")
            .to_string(),
        "BIT" => row.try_get_unchecked::<u64, _>(i).map_err(e)?.to_string(),
        "BINARY" | "VARBINARY" | "TINYBLOB" | "BLOB" | "MEDIUMBLOB" | "LONGBLOB" | "GEOMETRY" => {
            hex("\\x", &row.try_get_unchecked::<Vec<u8>, _>(i).map_err(e)?)
        }
        _ => row.try_get_unchecked::<String, _>(i).map_err(e)?,
    };
    Ok(Some(s))
}

/// One SQLite value as text; `None` for NULL. The kind is that of the value itself
/// (SQLite types values, not columns).
pub fn sqlite_text(
    v: rusqlite::types::ValueRef<'_>,
    col: &str,
) -> Result<Option<(String, Kind)>, String> {
    use rusqlite::types::ValueRef as V;
    Ok(match v {
        V::Null => None,
        V::Integer(i) => Some((i.to_string(), Kind::Number)),
        V::Real(f) => Some((f.to_string(), Kind::Float)),
        V::Text(t) => Some((
            std::str::from_utf8(t)
                .map_err(|e| bad(col, "TEXT", e))?
                .to_string(),
            Kind::Text,
        )),
        V::Blob(b) => Some((hex("\\x", b), Kind::Text)),
    })
}

/// Compares two decimal numbers written as text (`-12.50`, `3`); `None` when either is
/// not one (then the caller compares otherwise).
fn cmp_decimal(a: &str, b: &str) -> Option<Ordering> {
    fn parts(s: &str) -> Option<(bool, &str, &str)> {
        let (neg, s) = match s.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, s.strip_prefix('+').unwrap_or(s)),
        };
        let (i, f) = s.split_once('.').unwrap_or((s, ""));
        if i.is_empty() && f.is_empty()
            || !i.bytes().all(|c| c.is_ascii_digit())
            || !f.bytes().all(|c| c.is_ascii_digit())
        {
            return None;
        }
        let i = i.trim_start_matches('0');
        let f = f.trim_end_matches('0');
        let zero = i.is_empty() && f.is_empty();
        Some((neg && !zero, i, f))
    }
    let (na, ia, fa) = parts(a)?;
    let (nb, ib, fb) = parts(b)?;
    let magnitude = ia
        .len()
        .cmp(&ib.len())
        .then_with(|| ia.cmp(ib))
        .then_with(|| fa.cmp(fb));
    Some(match (na, nb) {
        (false, true) => Ordering::Greater,
        (true, false) => Ordering::Less,
        (false, false) => magnitude,
        (true, true) => magnitude.reverse(),
    })
}

/// A time written here, made sortable as text: infinities at the ends, fractions padded.
fn time_key(s: &str) -> (i8, String) {
    match s {
        "-infinity" => (-1, String::new()),
        "infinity" => (1, String::new()),
        _ => {
            let utc = s.strip_suffix('Z').unwrap_or(s);
            let (whole, frac) = utc.split_once('.').unwrap_or((utc, ""));
            (0, format!("{whole}.{frac:0<9}"))
        }
    }
}

/// Whether `a` is higher than `b` for a watermark of `kind`.
pub fn higher(kind: Kind, a: &str, b: &str) -> bool {
    let ord = match kind {
        Kind::Number => cmp_decimal(a, b).unwrap_or_else(|| a.cmp(b)),
        Kind::Float => match (a.parse::<f64>(), b.parse::<f64>()) {
            (Ok(x), Ok(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
            _ => a.cmp(b),
        },
        Kind::Time => time_key(a).cmp(&time_key(b)),
        Kind::Text => a.cmp(b),
    };
    ord == Ordering::Greater
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_compare_exactly() {
        let cases = [
            ("10", "9", true),
            ("9", "10", false),
            ("1.50", "1.5", false),
            ("1.51", "1.5", true),
            ("-1", "-2", true),
            ("-0", "0", false),
            (
                "12345678901234567890.000000000000000001",
                "12345678901234567890",
                true,
            ),
            ("-9223372036854775808", "5", false),
        ];
        for (a, b, want) in cases {
            assert_eq!(higher(Kind::Number, a, b), want, "{a} > {b}");
        }
    }

    #[test]
    fn times_compare_with_their_fractions() {
        assert!(higher(
            Kind::Time,
            "2026-01-01T10:00:00.5Z",
            "2026-01-01T10:00:00Z"
        ));
        assert!(!higher(
            Kind::Time,
            "2026-01-01T10:00:00Z",
            "2026-01-01T10:00:00.5Z"
        ));
        assert!(higher(
            Kind::Time,
            "2026-01-01T10:00:01",
            "2026-01-01T10:00:00.999999"
        ));
        assert!(higher(Kind::Time, "2026-01-01", "-infinity"));
        assert!(higher(Kind::Time, "infinity", "2026-01-01"));
    }

    #[test]
    fn numerics_are_read_digit_for_digit() {
        // 12345.6789 with dscale 4: digits [1, 2345, 6789], weight 1.
        let mut b = Vec::new();
        for w in [3i16, 1, 0, 4, 1, 2345, 6789] {
            b.extend_from_slice(&w.to_be_bytes());
        }
        assert_eq!(pg_numeric(&b, "x").unwrap(), "12345.6789");
        // 0.0500 with dscale 4: digits [500], weight -1.
        let mut b = Vec::new();
        for w in [1i16, -1, 0, 4, 500] {
            b.extend_from_slice(&w.to_be_bytes());
        }
        assert_eq!(pg_numeric(&b, "x").unwrap(), "0.0500");
        // -100000000 (dscale 0): digits [1], weight 2.
        let mut b = Vec::new();
        for w in [1i16, 2, 0x4000, 0, 1] {
            b.extend_from_slice(&w.to_be_bytes());
        }
        assert_eq!(pg_numeric(&b, "x").unwrap(), "-100000000");
    }
}
