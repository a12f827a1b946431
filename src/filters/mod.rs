//! ferry's own minijinja filters, used by transform expressions and output templates alike:
//! `num` (a number from text written with a decimal point or a decimal comma), `decimal`
//! (a number with fixed decimals) and `date` (a date from one format to another, with
//! month names in other languages). A leaf module: [`crate::formats`] and
//! [`crate::transform`] both use it, it uses neither.

use minijinja::value::Value;
use minijinja::{Environment, Error, ErrorKind};

mod months;

/// Parses a number written with a decimal point or a decimal comma. Without `decimal`,
/// a lone `,` is a decimal comma and a lone `.` a decimal point; with both, the last one is
/// the decimal separator. `decimal` names it when the file says otherwise (`"1.000"` is a
/// thousand with `decimal = ","`).
pub fn parse_number_with(text: &str, decimal: Option<char>) -> Option<Value> {
    let plain = text.trim();
    if decimal.is_none()
        && !plain.is_empty()
        && plain
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+'))
    {
        // Nothing to remove or normalize (the usual case): what the code below comes to,
        // without its copies.
        if let Ok(i) = plain.parse::<i64>() {
            return Some(Value::from(i));
        }
        return plain
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(Value::from);
    }
    let t: String = text
        .trim()
        .chars()
        .filter(|c| !matches!(c, ' ' | '\'' | '\u{a0}' | '_'))
        .collect();
    if t.is_empty() {
        return None;
    }
    let t = match decimal {
        Some(',') => t.replace('.', "").replace(',', "."),
        Some(_) => t.replace(',', ""),
        None => t,
    };
    if decimal.is_some() {
        return t.parse::<i64>().map(Value::from).ok().or_else(|| {
            t.parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .map(Value::from)
        });
    }
    let (last_dot, last_comma) = (t.rfind('.'), t.rfind(','));
    let normalized = match (last_dot, last_comma) {
        (Some(d), Some(c)) if c > d => t.replace('.', "").replace(',', "."),
        (Some(_), Some(_)) => t.replace(',', ""),
        (None, Some(_)) if t.matches(',').count() == 1 => t.replace(',', "."),
        (None, Some(_)) => t.replace(',', ""),
        _ => t,
    };
    if let Ok(i) = normalized.parse::<i64>() {
        return Some(Value::from(i));
    }
    normalized
        .parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
        .map(Value::from)
}

/// See [`parse_number_with`].
pub fn parse_number(text: &str) -> Option<Value> {
    parse_number_with(text, None)
}

/// The text a filter could not take (`num`, `decimal`, `date`), carried as the source of
/// its error: the rejects file and the report show it as the value.
#[derive(Debug)]
struct Offending(String);

impl std::fmt::Display for Offending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl std::error::Error for Offending {}

/// The text an expression's filter could not take, when the error says.
pub(crate) fn offending(e: &Error) -> Option<String> {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(o) = s.downcast_ref::<Offending>() {
            return Some(o.0.clone());
        }
        source = s.source();
    }
    None
}

fn num(v: Value, decimal: Option<String>) -> Result<Value, Error> {
    if v.is_number() {
        return Ok(v);
    }
    let owned;
    let s = match v.as_str() {
        Some(s) => s,
        None => {
            owned = v.to_string();
            &owned
        }
    };
    let sep = decimal.as_deref().and_then(|d| d.chars().next());
    parse_number_with(s, sep).ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!("{s:?} is not a number"),
        )
        .with_source(Offending(s.to_string()))
    })
}

fn decimal(v: Value, places: Option<usize>, sep: Option<String>) -> Result<String, Error> {
    let n = num(v, None)?;
    let f = f64::try_from(n).map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))?;
    let s = format!("{:.*}", places.unwrap_or(2), f);
    Ok(match sep {
        Some(sep) if sep != "." => s.replace('.', &sep),
        _ => s,
    })
}

/// `date(FROM)`, `date(FROM, TO)`, and `locale='de'` for month names in another language
/// (`'12. März 2026' | date('%d. %B %Y', locale='de')`).
fn date(
    v: Value,
    from: String,
    to: Option<String>,
    kwargs: minijinja::value::Kwargs,
) -> Result<String, Error> {
    let locale: Option<String> = kwargs.get("locale")?;
    kwargs.assert_all_used()?;
    let s = v
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| v.to_string());
    let to = to.unwrap_or_else(|| "%Y-%m-%d".into());
    // Month names become English full names, which `%B` parses (`%b` takes only the
    // three-letter abbreviation, so it reads as `%B` here).
    let (s, from) = match &locale {
        Some(l) => (
            months::to_english(&s, l).map_err(|e| Error::new(ErrorKind::InvalidOperation, e))?,
            months::full_month_format(&from),
        ),
        None => (s, from),
    };
    let s = s.trim();
    if let Ok(dt) = chrono::NaiveDateTime::parse_from_str(s, &from) {
        return Ok(dt.format(&to).to_string());
    }
    chrono::NaiveDate::parse_from_str(s, &from)
        .map(|d| d.format(&to).to_string())
        .map_err(|e| {
            Error::new(
                ErrorKind::InvalidOperation,
                format!("{s:?} is not a date in the format {from:?}: {e}"),
            )
            .with_source(Offending(s.to_string()))
        })
}

/// Adds ferry's filters (`num`, `decimal`, `date`) to an environment.
pub fn add_filters(env: &mut Environment<'_>) {
    env.add_filter("num", num);
    env.add_filter("decimal", decimal);
    env.add_filter("date", date);
}
