//! Column types as the database reports them, and the conversion of a record's text value
//! to a value that column takes (docs/databases.md, "Type conversion").
//!
//! Values are checked and put in one canonical text form here, while the file is read, so
//! that a value that does not fit fails the file (or goes to the rejects file with
//! `on_error = "skip"`) naming the record, field, column and value, before anything is sent
//! to the database. Nothing is rounded or cut: a decimal with more places than its column
//! has, a number out of the column's range, a text longer than the column, a date that does
//! not exist are errors.

use super::connect::Kind;

/// What a column holds, as far as conversion cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColType {
    /// A whole number between `min` and `max`.
    Int {
        min: i128,
        max: i128,
    },
    /// `decimal(precision, scale)`; `None` for PostgreSQL's unconstrained `numeric`.
    Decimal(Option<(u32, u32)>),
    Float,
    Bool,
    Date,
    /// A date and time; `tz`: the column keeps the instant (PostgreSQL `timestamptz`).
    Timestamp {
        tz: bool,
    },
    Time,
    /// Text of at most this many characters (`None`: unbounded).
    Text(Option<u64>),
    /// Anything else (uuid, json, enums...): the text as it is; the database checks it.
    Other(String),
}

/// What a database says of a target table: its kind and columns.
#[derive(Debug)]
pub struct Described {
    pub kind: Kind,
    pub columns: Vec<Column>,
    /// The job and output (0-based) the table was described for.
    pub job: String,
    pub output: u32,
}

/// One column of the target table.
#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub ty: ColType,
    /// The database's own name of the type, for messages.
    pub type_name: String,
    pub nullable: bool,
}

impl ColType {
    /// The type from the names the database gives (`information_schema.columns.data_type`,
    /// MySQL's `column_type`, SQLite's declared type), with numeric precision and scale and
    /// the maximum character length where known.
    pub fn from_db(
        kind: Kind,
        data_type: &str,
        column_type: &str,
        precision: Option<i64>,
        scale: Option<i64>,
        max_len: Option<i64>,
    ) -> ColType {
        let t = data_type.to_ascii_lowercase();
        let full = column_type.to_ascii_lowercase();
        let int = |bits: u32, unsigned: bool| {
            if unsigned {
                ColType::Int {
                    min: 0,
                    max: (1i128 << bits) - 1,
                }
            } else {
                ColType::Int {
                    min: -(1i128 << (bits - 1)),
                    max: (1i128 << (bits - 1)) - 1,
                }
            }
        };
        let dec = || match (precision, scale) {
            (Some(p), Some(s)) if p > 0 => ColType::Decimal(Some((p as u32, s.max(0) as u32))),
            _ => ColType::Decimal(None),
        };
        let unsigned = full.contains("unsigned");
        match kind {
            Kind::Sqlite => sqlite_affinity(&t),
            Kind::Postgres => match t.as_str() {
                "smallint" => int(16, false),
                "integer" => int(32, false),
                "bigint" => int(64, false),
                "numeric" | "decimal" => dec(),
                "real" | "double precision" => ColType::Float,
                "boolean" => ColType::Bool,
                "date" => ColType::Date,
                "timestamp without time zone" => ColType::Timestamp { tz: false },
                "timestamp with time zone" => ColType::Timestamp { tz: true },
                "time without time zone" => ColType::Time,
                "text" => ColType::Text(None),
                "character varying" | "character" => {
                    ColType::Text(max_len.map(|n| n.max(0) as u64))
                }
                _ => ColType::Other(t),
            },
            Kind::MySql => match t.as_str() {
                "tinyint" if full.starts_with("tinyint(1)") => ColType::Bool,
                "bool" | "boolean" => ColType::Bool,
                "tinyint" => int(8, unsigned),
                "smallint" => int(16, unsigned),
                "mediumint" => int(24, unsigned),
                "int" | "integer" => int(32, unsigned),
                "bigint" => int(64, unsigned),
                "decimal" | "numeric" => dec(),
                "float" | "double" | "real" => ColType::Float,
                "date" => ColType::Date,
                "datetime" | "timestamp" => ColType::Timestamp { tz: false },
                "time" => ColType::Time,
                "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" => {
                    ColType::Text(max_len.map(|n| n.max(0) as u64))
                }
                _ => ColType::Other(t),
            },
        }
    }
}

/// SQLite's declared types, read by its affinity rules (and the usual names for booleans,
/// dates and decimals, which SQLite itself stores as numbers or text).
fn sqlite_affinity(t: &str) -> ColType {
    if t.contains("bool") {
        ColType::Bool
    } else if t.contains("int") {
        ColType::Int {
            min: i64::MIN as i128,
            max: i64::MAX as i128,
        }
    } else if t.contains("dec") || t.contains("numeric") {
        ColType::Decimal(parse_prec(t))
    } else if t.contains("real") || t.contains("floa") || t.contains("doub") {
        ColType::Float
    } else if t.contains("datetime") || t.contains("timestamp") {
        ColType::Timestamp { tz: false }
    } else if t == "date" {
        ColType::Date
    } else if t == "time" {
        ColType::Time
    } else {
        ColType::Text(None)
    }
}

/// `decimal(10,2)` → (10, 2).
fn parse_prec(t: &str) -> Option<(u32, u32)> {
    let inner = t.split_once('(')?.1.split_once(')')?.0;
    let (p, s) = inner.split_once(',').unwrap_or((inner, "0"));
    Some((p.trim().parse().ok()?, s.trim().parse().ok()?))
}

/// Converts `value` for `col`: `Ok(None)` is NULL. An empty value is NULL, except in a
/// text column, where it is the empty text. `null` says the record's value is a null
/// (a JSON `null`).
pub fn convert(
    kind: Kind,
    col: &Column,
    value: &str,
    null: bool,
) -> Result<Option<String>, String> {
    if null || (value.is_empty() && !matches!(col.ty, ColType::Text(_))) {
        return if col.nullable {
            Ok(None)
        } else {
            Err(format!(
                "an empty value for column {:?}, which is NOT NULL",
                col.name
            ))
        };
    }
    if value.contains('\0') {
        return Err("the value contains a NUL character, which databases do not store".into());
    }
    let v = value.trim();
    match &col.ty {
        ColType::Int { min, max } => {
            let digits = v.strip_prefix('+').unwrap_or(v);
            let n: i128 = digits
                .parse()
                .map_err(|_| format!("expected a whole number for {}", col.type_name))?;
            if n < *min || n > *max {
                return Err(format!("{n} is out of the range of {}", col.type_name));
            }
            Ok(Some(n.to_string()))
        }
        ColType::Decimal(prec) => decimal(v, *prec, &col.type_name).map(Some),
        ColType::Float => {
            let f: f64 = v
                .parse()
                .map_err(|_| format!("expected a number for {}", col.type_name))?;
            if !f.is_finite() {
                return Err(format!("expected a finite number for {}", col.type_name));
            }
            Ok(Some(v.to_string()))
        }
        ColType::Bool => {
            let b = match v.to_ascii_lowercase().as_str() {
                "true" | "t" | "yes" | "y" | "1" | "on" => true,
                "false" | "f" | "no" | "n" | "0" | "off" => false,
                _ => {
                    return Err(format!(
                        "expected a boolean (true/false, yes/no, 1/0) for {}",
                        col.type_name
                    ));
                }
            };
            Ok(Some(match (kind, b) {
                (Kind::Postgres, true) => "t".into(),
                (Kind::Postgres, false) => "f".into(),
                (_, true) => "1".into(),
                (_, false) => "0".into(),
            }))
        }
        ColType::Date => chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d")
            .map(|d| Some(d.format("%Y-%m-%d").to_string()))
            .map_err(|_| format!("expected a date as YYYY-MM-DD for {}", col.type_name)),
        ColType::Timestamp { tz } => timestamp(v, *tz, &col.type_name).map(Some),
        ColType::Time => ["%H:%M:%S%.f", "%H:%M"]
            .iter()
            .find_map(|f| chrono::NaiveTime::parse_from_str(v, f).ok())
            .map(|t| Some(t.format("%H:%M:%S%.f").to_string()))
            .ok_or_else(|| format!("expected a time as HH:MM[:SS] for {}", col.type_name)),
        ColType::Text(max) => {
            if let Some(max) = max {
                let n = value.chars().count() as u64;
                if n > *max {
                    return Err(format!(
                        "{n} characters, longer than the column's {max} ({})",
                        col.type_name
                    ));
                }
            }
            Ok(Some(value.to_string()))
        }
        ColType::Other(_) => Ok(Some(value.to_string())),
    }
}

/// A decimal checked against `precision, scale` without rounding: at most `p - s` digits
/// before the point and `s` after it (trailing zeros after the point beyond `s` are
/// allowed: `12.500` fits `decimal(10,2)`).
fn decimal(v: &str, prec: Option<(u32, u32)>, type_name: &str) -> Result<String, String> {
    let bad = || format!("expected a decimal number like 1234.50 for {type_name}");
    let (sign, body) = match v.strip_prefix('-') {
        Some(b) => ("-", b),
        None => ("", v.strip_prefix('+').unwrap_or(v)),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let int = int.trim_start_matches('0');
    let frac_sig = frac.trim_end_matches('0');
    if let Some((p, s)) = prec {
        if frac_sig.len() as u32 > s {
            return Err(format!(
                "{} decimal places, more than the column's {s} ({type_name}); ferry does not round",
                frac_sig.len()
            ));
        }
        if int.len() as u32 > p.saturating_sub(s) {
            return Err(format!("too many digits for {type_name}"));
        }
    }
    let int = if int.is_empty() { "0" } else { int };
    Ok(if frac.is_empty() {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    })
}

/// A timestamp `YYYY-MM-DD[T| ]HH:MM[:SS[.f]]` with an optional offset (`Z`, `+02:00`).
/// For a column that keeps the instant the result is in UTC; for one that does not, a
/// value with an offset is an error (which local time was meant is not known).
fn timestamp(v: &str, tz: bool, type_name: &str) -> Result<String, String> {
    let bad = || {
        format!(
            "expected a timestamp as YYYY-MM-DD HH:MM:SS (optionally with an offset) for {type_name}"
        )
    };
    let norm = v.replacen('T', " ", 1);
    if let Ok(dt) = chrono::DateTime::parse_from_rfc3339(&norm.replacen(' ', "T", 1))
        .or_else(|_| chrono::DateTime::parse_from_str(&norm, "%Y-%m-%d %H:%M:%S%.f%:z"))
        .or_else(|_| chrono::DateTime::parse_from_str(&norm, "%Y-%m-%d %H:%M%:z"))
    {
        if !tz {
            return Err(format!(
                "the value has a time zone offset, but {type_name} keeps local times; remove the offset or convert it in [transform]"
            ));
        }
        return Ok(dt
            .with_timezone(&chrono::Utc)
            .format("%Y-%m-%d %H:%M:%S%.f+00:00")
            .to_string());
    }
    let naive = ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M", "%Y-%m-%d"]
        .iter()
        .find_map(|f| {
            chrono::NaiveDateTime::parse_from_str(&norm, f)
                .ok()
                .or_else(|| {
                    (*f == "%Y-%m-%d")
                        .then(|| chrono::NaiveDate::parse_from_str(&norm, f).ok())
                        .flatten()
                        .and_then(|d| d.and_hms_opt(0, 0, 0))
                })
        })
        .ok_or_else(bad)?;
    let text = naive.format("%Y-%m-%d %H:%M:%S%.f").to_string();
    Ok(if tz { format!("{text}+00:00") } else { text })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(ty: ColType) -> Column {
        Column {
            name: "c".into(),
            ty,
            type_name: "t".into(),
            nullable: true,
        }
    }

    #[test]
    fn conversions() {
        let pg = Kind::Postgres;
        let int = col(ColType::from_db(pg, "smallint", "", None, None, None));
        assert_eq!(convert(pg, &int, " 42 ", false), Ok(Some("42".into())));
        assert!(convert(pg, &int, "40000", false).is_err());
        assert!(convert(pg, &int, "4.5", false).is_err());
        assert_eq!(convert(pg, &int, "", false), Ok(None));
        let d = col(ColType::from_db(pg, "numeric", "", Some(10), Some(2), None));
        assert_eq!(convert(pg, &d, "12.50", false), Ok(Some("12.50".into())));
        assert_eq!(
            convert(pg, &d, "-0012.500", false),
            Ok(Some("-12.500".into()))
        );
        assert!(convert(pg, &d, "12.505", false).is_err());
        assert!(convert(pg, &d, "123456789.1", false).is_err());
        assert!(convert(pg, &d, "1e5", false).is_err());
        let b = col(ColType::Bool);
        assert_eq!(convert(pg, &b, "Yes", false), Ok(Some("t".into())));
        assert_eq!(
            convert(Kind::MySql, &b, "false", false),
            Ok(Some("0".into()))
        );
        assert!(convert(pg, &b, "maybe", false).is_err());
        let date = col(ColType::Date);
        assert_eq!(
            convert(pg, &date, "2024-02-29", false),
            Ok(Some("2024-02-29".into()))
        );
        assert!(convert(pg, &date, "2023-02-29", false).is_err());
        assert!(convert(pg, &date, "29.02.2024", false).is_err());
        let ts = col(ColType::Timestamp { tz: false });
        assert_eq!(
            convert(pg, &ts, "2024-05-01T08:30:00", false),
            Ok(Some("2024-05-01 08:30:00".into()))
        );
        assert!(convert(pg, &ts, "2024-05-01T08:30:00+02:00", false).is_err());
        let tstz = col(ColType::Timestamp { tz: true });
        assert_eq!(
            convert(pg, &tstz, "2024-05-01 08:30:00.25+02:00", false),
            Ok(Some("2024-05-01 06:30:00.250+00:00".into()))
        );
        let t = col(ColType::Text(Some(3)));
        assert_eq!(convert(pg, &t, "äöü", false), Ok(Some("äöü".into())));
        assert!(convert(pg, &t, "abcd", false).is_err());
        assert_eq!(convert(pg, &t, "", false), Ok(Some(String::new())));
        assert!(convert(pg, &t, "a\0", false).is_err());
        let mut nn = col(ColType::Int { min: 0, max: 9 });
        nn.nullable = false;
        assert!(convert(pg, &nn, "", false).is_err());
        assert_eq!(
            ColType::from_db(Kind::MySql, "tinyint", "tinyint(1)", None, None, None),
            ColType::Bool
        );
        assert_eq!(
            ColType::from_db(Kind::Sqlite, "decimal(10,2)", "", None, None, None),
            ColType::Decimal(Some((10, 2)))
        );
    }
}
