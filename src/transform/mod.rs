//! Transforms: keep the records that match a filter, compute output fields with minijinja
//! expressions (Jinja syntax admins know from Ansible), look values up in CSV tables.
//!
//! Every field of the record is a variable (`Qty`, or `record["Unit Price"]` for names that
//! are not identifiers), and `meta` holds the file's facts (`meta.name`, `meta.job`, ...).
//! Besides minijinja's built-in filters, ferry adds:
//! - `num` / `num(",")`: a number from text, with a decimal point or a decimal comma
//!   (`"12,50"`, `"1.234,56"`, `"1,234.56"`; name the decimal separator when the file
//!   writes thousands as `1.000`); an error when it is not a number;
//! - `decimal(places=2, sep=".")`: a number written with fixed decimals;
//! - `date(from, to="%Y-%m-%d")`: a date parsed with one strftime format and written with
//!   another;
//! - `lookup(table, key, column)`: a value from a lookup table (none when the key is absent).
//!
//! A computed field keeps the type of its result for the JSON writers ([`Kind`]): a number
//! (`num`, arithmetic), a boolean or none; anything else, and minijinja's `string` filter,
//! gives text. `decimal` gives a string to the expression (so string filters and
//! comparisons work on it), but an expression that ends with it gives a number whose digits
//! are kept as written (`1.50`; not with a decimal comma). A bare field name copies the
//! field with its kind.
//!
//! Theory of operation: the record's values are moved into a reference-counted object for
//! evaluation and moved back afterwards, so evaluating costs no copy of the record.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use minijinja::value::{Object, Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind, Expression, UndefinedBehavior};

use crate::filters::offending;
pub use crate::filters::{add_filters, parse_number, parse_number_with};
use crate::formats::{Kind, ParseError, Record};

pub mod check;
pub mod fast;

/// `[transform]`: keep records matching `filter`, then compute `fields`.
#[derive(Debug, Clone, Default)]
pub struct TransformSpec {
    /// A minijinja expression; records where it is false are dropped.
    pub filter: Option<String>,
    /// Output field name and its minijinja expression, in order.
    pub fields: Vec<(String, String)>,
    /// Keep the input fields not named in `fields` (after them).
    pub keep: bool,
    /// Lookup tables: name and CSV file (first column is the key).
    pub lookups: Vec<(String, std::path::PathBuf)>,
    /// Split the records into one file per value of this field (per output); output names
    /// use the field as `{Field}`.
    pub split: Option<String>,
}

impl TransformSpec {
    /// The filter alone, and everything but the filter: the two halves of the transform,
    /// applied one after the other, do what the whole does.
    pub fn split_filter(&self) -> (TransformSpec, TransformSpec) {
        (
            TransformSpec {
                filter: self.filter.clone(),
                fields: Vec::new(),
                keep: true,
                lookups: self.lookups.clone(),
                split: None,
            },
            TransformSpec {
                filter: None,
                ..self.clone()
            },
        )
    }
}

/// A lookup table: the first column is the key.
#[derive(Debug, Default)]
pub struct Table {
    columns: Vec<String>,
    rows: HashMap<String, Vec<String>>,
}

/// Lookup tables by name.
pub type Lookups = HashMap<String, Arc<Table>>;

/// Loads the lookup tables a transform names (CSV, UTF-8, with a header row; `,` or `;`).
pub fn load_lookups(spec: &TransformSpec) -> Result<Lookups, String> {
    let mut out = HashMap::new();
    for (name, path) in &spec.lookups {
        out.insert(
            name.clone(),
            Arc::new(
                load_table(path)
                    .map_err(|e| format!("lookup table `{name}` ({}): {e}", path.display()))?,
            ),
        );
    }
    Ok(out)
}

fn load_table(path: &Path) -> Result<Table, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let first = text.lines().next().unwrap_or("");
    let delimiter = if first.matches(';').count() > first.matches(',').count() {
        b';'
    } else {
        b','
    };
    let mut r = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .from_reader(text.as_bytes());
    let columns: Vec<String> = r
        .headers()
        .map_err(|e| e.to_string())?
        .iter()
        .map(|s| s.trim_start_matches('\u{feff}').to_string())
        .collect();
    let mut rows = HashMap::new();
    for row in r.records() {
        let row = row.map_err(|e| e.to_string())?;
        let values: Vec<String> = row.iter().map(str::to_string).collect();
        if let Some(k) = values.first() {
            rows.insert(k.clone(), values);
        }
    }
    Ok(Table { columns, rows })
}

/// The minijinja environment every expression and template of a job uses.
pub fn environment(lookups: &Lookups) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    add_filters(&mut env);
    let tables = lookups.clone();
    env.add_function(
        "lookup",
        move |table: String, key: Value, column: String| -> Result<Value, Error> {
            let t = tables.get(&table).ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidOperation,
                    format!("no lookup table `{table}`"),
                )
            })?;
            let col = t.columns.iter().position(|c| *c == column).ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidOperation,
                    format!(
                        "lookup table `{table}` has no column `{column}` (it has {})",
                        t.columns.join(", ")
                    ),
                )
            })?;
            let key = key
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| key.to_string());
            Ok(t.rows
                .get(&key)
                .and_then(|r| r.get(col))
                .map_or(Value::from(()), |v| Value::from(v.clone())))
        },
    );
    env
}

/// A record as minijinja sees it.
#[derive(Debug)]
struct RecordObj {
    names: Arc<[String]>,
    values: Vec<String>,
    meta: Arc<BTreeMap<String, String>>,
}

impl RecordObj {
    /// A field by its full name, or a view of the fields below a dotted prefix (JSON input
    /// flattens `{"customer": {"name": ..}}` to `customer.name`, read as `customer.name`).
    fn lookup(self: &Arc<Self>, full: &str) -> Option<Value> {
        if let Some(i) = self.names.iter().position(|n| n == full) {
            return Some(Value::from(self.values.get(i).cloned().unwrap_or_default()));
        }
        let prefix = format!("{full}.");
        self.names.iter().any(|n| n.starts_with(&prefix)).then(|| {
            Value::from_object(Prefixed {
                root: self.clone(),
                prefix,
            })
        })
    }
}

impl Object for RecordObj {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let k = key.as_str()?;
        if let Some(v) = self.lookup(k) {
            return Some(v);
        }
        match k {
            "record" => Some(Value::from_dyn_object(self.clone())),
            "meta" => Some(Value::from(self.meta.as_ref().clone())),
            _ => None,
        }
    }
}

/// The fields of a record below a dotted prefix.
#[derive(Debug)]
struct Prefixed {
    root: Arc<RecordObj>,
    prefix: String,
}

impl Object for Prefixed {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.root
            .lookup(&format!("{}{}", self.prefix, key.as_str()?))
    }
}

/// What a value is for the JSON writers (see the module comment).
pub fn value_kind(v: &Value) -> Kind {
    match v.kind() {
        ValueKind::Number => Kind::Number,
        ValueKind::Bool => Kind::Bool(v.is_true()),
        ValueKind::None => Kind::Null,
        _ => Kind::Text,
    }
}

/// Writes a value as field text: numbers without noise (`3`, `12.5`), none as empty.
pub fn value_text(v: &Value) -> String {
    if v.is_undefined() || v.is_none() {
        return String::new();
    }
    if let Some(s) = v.as_str() {
        return s.to_string();
    }
    if v.is_number() && !v.is_integer() {
        // A float, written as the conversions below would, without the error message a
        // failed integer conversion builds.
        if let Ok(f) = f64::try_from(v.clone()) {
            return if f as i64 as f64 == f {
                (f as i64).to_string()
            } else {
                format!("{f}")
            };
        }
    }
    if let Ok(i) = i64::try_from(v.clone()) {
        return i.to_string();
    }
    if let Ok(f) = f64::try_from(v.clone()) {
        let s = format!("{f}");
        return s;
    }
    v.to_string()
}

/// A record's computed fields and their kinds.
type Computed = (Vec<String>, Vec<Kind>);

/// Input field names and the output names computed from them.
type NameMap = (Arc<[String]>, Arc<[String]>);

/// A compiled transform for one file.
pub struct Transformer<'env> {
    filter: Option<Expression<'env, 'env>>,
    fields: Vec<(String, Expression<'env, 'env>)>,
    /// For each field, the input field it copies when its expression is nothing but that
    /// name (`Quantity = "Qty"`, a rename): copied without evaluating, which costs a
    /// hundredth of an evaluation.
    plain: Vec<Option<String>>,
    /// For each field, whether its expression ends with the `decimal` filter: its text is
    /// then a number's digits (a string to minijinja, so every string filter and
    /// comparison works on it as before).
    decimal_last: Vec<bool>,
    keep: bool,
    meta: Arc<BTreeMap<String, String>>,
    /// Output names, per input names (records of one file usually share one).
    names: Option<NameMap>,
    /// The filter and every field compiled natively, when all of them are simple enough
    /// (see [`fast`]); a record they are not sure about is evaluated by minijinja.
    native: Option<Native>,
    /// Where native evaluation writes a record's computed fields, and their kinds.
    scratch: Vec<String>,
    scratch_kinds: Vec<Kind>,
}

/// Record names, and for each slot the index of its field among them.
type Layout = (Arc<[String]>, Vec<Option<usize>>);

/// Natively compiled expressions and the record layout their field slots were resolved
/// for.
struct Native {
    filter: Option<fast::Expr>,
    fields: Vec<fast::Expr>,
    /// The field names the slots stand for.
    vars: Vec<String>,
    /// For the record names below: the index of each slot's field.
    layout: Option<Layout>,
}

impl Native {
    fn compile(spec: &TransformSpec) -> Option<Native> {
        let mut vars = Vec::new();
        let filter = match &spec.filter {
            Some(f) => Some(fast::compile(f, &mut vars)?),
            None => None,
        };
        let fields = spec
            .fields
            .iter()
            .map(|(_, e)| fast::compile(e, &mut vars))
            .collect::<Option<Vec<_>>>()?;
        Some(Native {
            filter,
            fields,
            vars,
            layout: None,
        })
    }

    /// `Some(keep)` when every expression could be evaluated natively; the computed fields
    /// are then in `out` (one per field, their allocations reused from record to record)
    /// and their kinds in `kinds`.
    fn eval(&mut self, rec: &Record, out: &mut Vec<String>, kinds: &mut Vec<Kind>) -> Option<bool> {
        let stale = !matches!(&self.layout, Some((n, _)) if Arc::ptr_eq(n, &rec.names));
        if stale {
            let slots = self
                .vars
                .iter()
                .map(|v| rec.names.iter().position(|n| n == v))
                .collect();
            self.layout = Some((rec.names.clone(), slots));
        }
        let slots = &self.layout.as_ref()?.1;
        if let Some(f) = &self.filter
            && !f.eval(&rec.values, slots)?.truthy()
        {
            return Some(false);
        }
        out.resize_with(self.fields.len(), String::new);
        kinds.clear();
        for (e, o) in self.fields.iter().zip(out.iter_mut()) {
            let v = e.eval(&rec.values, slots)?;
            kinds.push(match (e, &v) {
                // A bare name copies its field's kind.
                (fast::Expr::Field(s), _) => slots[*s].map_or(Kind::Text, |i| rec.kind(i)),
                (_, fast::V::Int(_) | fast::V::Float(_)) => Kind::Number,
                _ => Kind::Text,
            });
            v.write_text(o)?;
        }
        Some(true)
    }
}

/// The field an expression names when it is a bare name (`Qty`), not a literal or keyword.
fn plain_name(expr: &str) -> Option<String> {
    let t = expr.trim();
    let mut chars = t.chars();
    let first = chars.next()?;
    let name = (first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    const KEYWORDS: &[&str] = &[
        "true", "false", "none", "True", "False", "None", "not", "and", "or", "in", "is", "if",
        "else",
    ];
    (name && !KEYWORDS.contains(&t)).then(|| t.to_string())
}

impl<'env> Transformer<'env> {
    pub fn new(
        env: &'env Environment<'env>,
        spec: &'env TransformSpec,
        meta: BTreeMap<String, String>,
    ) -> Result<Self, String> {
        let filter = match &spec.filter {
            Some(f) => Some(
                env.compile_expression(f)
                    .map_err(|e| format!("filter: {e}"))?,
            ),
            None => None,
        };
        let mut fields = Vec::new();
        let mut plain = Vec::new();
        for (name, expr) in &spec.fields {
            plain.push(plain_name(expr));
            fields.push((
                name.clone(),
                env.compile_expression(expr)
                    .map_err(|e| format!("field `{name}`: {e}"))?,
            ));
        }
        Ok(Transformer {
            filter,
            decimal_last: spec
                .fields
                .iter()
                .map(|(_, e)| check::ends_with_filter(e, "decimal"))
                .collect(),
            fields,
            plain,
            keep: spec.keep,
            meta: Arc::new(meta),
            names: None,
            native: Native::compile(spec),
            scratch: Vec::new(),
            scratch_kinds: Vec::new(),
        })
    }

    /// Whether this transform leaves every record as it is (no filter, no fields).
    pub fn is_noop(&self) -> bool {
        self.filter.is_none() && self.fields.is_empty()
    }

    /// Transforms `rec` in place. `Ok(false)`: the filter dropped it.
    pub fn apply(&mut self, rec: &mut Record) -> Result<bool, ParseError> {
        if self.filter.is_none() && self.fields.is_empty() {
            return Ok(true);
        }
        if let Some(native) = self.native.as_mut()
            && let Some(keep) = native.eval(rec, &mut self.scratch, &mut self.scratch_kinds)
        {
            if keep && !self.fields.is_empty() {
                if self.keep {
                    let values = std::mem::take(&mut rec.values);
                    let computed = std::mem::take(&mut self.scratch);
                    let kinds = std::mem::take(&mut self.scratch_kinds);
                    self.assemble(rec, values, (computed, kinds));
                } else {
                    // The computed fields become the record's values, and its old values
                    // (their allocations) the next record's scratch.
                    rec.names = self.output_names(&rec.names);
                    std::mem::swap(&mut rec.values, &mut self.scratch);
                    std::mem::swap(&mut rec.kinds, &mut self.scratch_kinds);
                }
            }
            return Ok(keep);
        }
        let obj = Arc::new(RecordObj {
            names: rec.names.clone(),
            values: std::mem::take(&mut rec.values),
            meta: self.meta.clone(),
        });
        let ctx = Value::from_dyn_object(obj.clone());
        let result = self.eval(&ctx, &obj, rec);
        drop(ctx);
        let values = Arc::try_unwrap(obj)
            .map(|o| o.values)
            .unwrap_or_else(|a| a.values.clone());
        let (keep, computed) = match result {
            Ok(r) => r,
            Err(e) => {
                rec.values = values;
                return Err(e);
            }
        };
        if !keep {
            rec.values = values;
            return Ok(false);
        }
        if self.fields.is_empty() {
            rec.values = values;
            return Ok(true);
        }
        self.assemble(rec, values, computed);
        Ok(true)
    }

    /// Makes `rec` the output record: the computed fields and their kinds (after the
    /// input's, with `keep`).
    fn assemble(&mut self, rec: &mut Record, values: Vec<String>, computed: Computed) {
        let names = self.output_names(&rec.names);
        let (computed, computed_kinds) = computed;
        let (out, kinds) = if self.keep {
            // Input fields in their places (replaced where a field of the same name was
            // computed), then the new fields.
            let mut computed: Vec<Option<String>> = computed.into_iter().map(Some).collect();
            let mut out = Vec::with_capacity(names.len());
            let mut kinds = Vec::with_capacity(names.len());
            for (j, (n, v)) in rec.names.iter().zip(values).enumerate() {
                match self.fields.iter().position(|(f, _)| f == n) {
                    Some(i) => {
                        out.push(computed[i].take().unwrap_or_default());
                        kinds.push(computed_kinds.get(i).copied().unwrap_or_default());
                    }
                    None => {
                        out.push(v);
                        kinds.push(rec.kind(j));
                    }
                }
            }
            for (v, k) in computed.into_iter().zip(computed_kinds) {
                if let Some(v) = v {
                    out.push(v);
                    kinds.push(k);
                }
            }
            (out, kinds)
        } else {
            (computed, computed_kinds)
        };
        rec.names = names;
        rec.values = out;
        rec.kinds = kinds;
    }

    fn eval(
        &self,
        ctx: &Value,
        obj: &RecordObj,
        rec: &Record,
    ) -> Result<(bool, Computed), ParseError> {
        let err = |what: &str, e: Error| ParseError {
            pos: Some(rec.pos),
            field: Some(what.to_string()),
            value: offending(&e),
            message: match e.detail() {
                Some(d) => format!("{}: {d}", e.kind()),
                None => e.to_string(),
            },
        };
        if let Some(f) = &self.filter {
            let v = f.eval(ctx.clone()).map_err(|e| err("filter", e))?;
            if !v.is_true() {
                return Ok((false, Default::default()));
            }
        }
        let mut out = Vec::with_capacity(self.fields.len());
        let mut kinds = Vec::with_capacity(self.fields.len());
        for (((name, e), plain), decimal) in
            self.fields.iter().zip(&self.plain).zip(&self.decimal_last)
        {
            if let Some(src) = plain
                && let Some(i) = obj.names.iter().position(|n| n == src)
            {
                // What evaluating the name gives: the field's text (and its kind).
                out.push(obj.values.get(i).cloned().unwrap_or_default());
                kinds.push(rec.kind(i));
                continue;
            }
            let v = e.eval(ctx.clone()).map_err(|e| err(name, e))?;
            if v.is_undefined() {
                return Err(ParseError {
                    pos: Some(rec.pos),
                    field: Some(name.clone()),
                    value: None,
                    message: format!(
                        "the expression names something the record does not have (its fields: {})",
                        rec.names.join(", ")
                    ),
                });
            }
            let text = value_text(&v);
            kinds.push(match value_kind(&v) {
                Kind::Text if *decimal && crate::formats::json::is_json_number(text.as_bytes()) => {
                    Kind::Number
                }
                kind => kind,
            });
            out.push(text);
        }
        Ok((true, (out, kinds)))
    }

    fn output_names(&mut self, input: &Arc<[String]>) -> Arc<[String]> {
        if let Some((i, o)) = &self.names
            && (Arc::ptr_eq(i, input) || **i == **input)
        {
            return o.clone();
        }
        let names: Vec<String> = if self.keep {
            let mut names: Vec<String> = input.to_vec();
            names.extend(
                self.fields
                    .iter()
                    .filter(|(f, _)| !input.contains(f))
                    .map(|(f, _)| f.clone()),
            );
            names
        } else {
            self.fields.iter().map(|(n, _)| n.clone()).collect()
        };
        let o: Arc<[String]> = names.into();
        self.names = Some((input.clone(), o.clone()));
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(names: &[&str], values: &[&str]) -> Record {
        Record {
            names: names
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .into(),
            values: values.iter().map(|s| s.to_string()).collect(),
            kinds: Vec::new(),
            pos: Default::default(),
        }
    }

    #[test]
    fn numbers_in_both_notations() {
        let n = |s: &str| parse_number(s).map(|v| v.to_string());
        assert_eq!(n("12,50").as_deref(), Some("12.5"));
        assert_eq!(n("1.234,56").as_deref(), Some("1234.56"));
        assert_eq!(n("1,234.56").as_deref(), Some("1234.56"));
        assert_eq!(n(" 42 ").as_deref(), Some("42"));
        assert_eq!(n("-3").as_deref(), Some("-3"));
        assert_eq!(n("abc"), None);
        assert_eq!(n(""), None);
        assert_eq!(
            parse_number_with("1.000", Some(','))
                .map(|v| v.to_string())
                .as_deref(),
            Some("1000")
        );
        assert_eq!(
            parse_number_with("1,000", Some('.'))
                .map(|v| v.to_string())
                .as_deref(),
            Some("1000")
        );
    }

    #[test]
    fn filter_rename_compute_and_lookup() {
        let dir = std::env::temp_dir().join(format!("ferry-lookup-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("customers.csv"), "code;name\nC-100;Acme GmbH\n").unwrap();
        let spec = TransformSpec {
            filter: Some("Qty | num > 0".into()),
            fields: vec![
                ("OrderNo".into(), "No".into()),
                (
                    "Customer".into(),
                    "lookup('customers', Cust, 'name') | default('?')".into(),
                ),
                (
                    "Total".into(),
                    "((Qty | num) * (Price | num)) | decimal(2, ',')".into(),
                ),
                ("Day".into(), "Date | date('%d.%m.%Y')".into()),
                ("Source".into(), "meta.name".into()),
            ],
            keep: false,
            lookups: vec![("customers".into(), dir.join("customers.csv"))],
            split: None,
        };
        let lookups = load_lookups(&spec).unwrap();
        let env = environment(&lookups);
        let meta = BTreeMap::from([("name".to_string(), "orders.csv".to_string())]);
        let mut t = Transformer::new(&env, &spec, meta).unwrap();
        let names = ["No", "Cust", "Qty", "Price", "Date"];
        let mut r = rec(&names, &["1", "C-100", "3", "2,50", "02.11.2026"]);
        assert!(t.apply(&mut r).unwrap());
        assert_eq!(
            &*r.names,
            &["OrderNo", "Customer", "Total", "Day", "Source"]
        );
        assert_eq!(
            r.values,
            vec!["1", "Acme GmbH", "7,50", "2026-11-02", "orders.csv"]
        );
        let mut r = rec(&names, &["2", "C-999", "0", "1", "01.01.2026"]);
        assert!(!t.apply(&mut r).unwrap(), "filtered out");
        let mut r = rec(&names, &["3", "C-999", "x", "1", "01.01.2026"]);
        let e = t.apply(&mut r).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("filter"));
        assert!(e.message.contains("\"x\" is not a number"), "{e}");
        let mut r = rec(&names, &["4", "C-999", "1", "1", "2026-01-01"]);
        let e = t.apply(&mut r).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("Day"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn dates_with_month_names_in_other_languages() {
        let spec = TransformSpec {
            fields: vec![
                ("De".into(), "A | date('%d. %B %Y', locale='de')".into()),
                (
                    "Fr".into(),
                    "B | date('%d %b %Y', '%d.%m.%Y', locale='fr')".into(),
                ),
                ("En".into(), "C | date('%B %d, %Y')".into()),
            ],
            ..TransformSpec::default()
        };
        let env = environment(&Lookups::default());
        let mut t = Transformer::new(&env, &spec, BTreeMap::new()).unwrap();
        let names = ["A", "B", "C"];
        let mut r = rec(&names, &["7. Mai 2014", "3 févr 2026", "May 7, 2014"]);
        assert!(t.apply(&mut r).unwrap());
        assert_eq!(r.values, vec!["2014-05-07", "03.02.2026", "2014-05-07"]);
        let bad = TransformSpec {
            fields: vec![("X".into(), "A | date('%d %B', locale='xx')".into())],
            ..TransformSpec::default()
        };
        let mut t = Transformer::new(&env, &bad, BTreeMap::new()).unwrap();
        let e = t.apply(&mut rec(&["A"], &["1 Mai"])).unwrap_err();
        assert!(
            e.message.contains("no month names for locale \"xx\""),
            "{e}"
        );
    }

    #[test]
    fn numbers_as_field_text() {
        let t = |v: Value| value_text(&v);
        assert_eq!(t(Value::from(3.0)), "3");
        assert_eq!(t(Value::from(12.5)), "12.5");
        assert_eq!(t(Value::from(-0.1 * 3.0)), "-0.30000000000000004");
        assert_eq!(t(Value::from(1e20)), "100000000000000000000");
        assert_eq!(t(Value::from(7)), "7");
        assert_eq!(t(Value::from(true)), "1");
        let n = |s: &str| parse_number(s).map(|v| value_text(&v));
        assert_eq!(n(" +7 ").as_deref(), Some("7"));
        assert_eq!(n("2.50").as_deref(), Some("2.5"));
        assert_eq!(n("1.2.3"), None);
        assert_eq!(n("-"), None);
    }

    /// Issue 11: the JSON type of a computed field is its result's.
    #[test]
    fn computed_fields_keep_the_type_of_their_result() {
        let fields = [
            ("A", "a | num"),
            ("B", "1 + 1"),
            ("C", "a | decimal"),
            ("D", "(a | num) > 1"),
            ("E", "none"),
            ("F", "a | num | string"),
            ("G", "a"),
            ("H", "a | decimal(2, ',')"),
            ("I", "(a | decimal) ~ ''"),
            ("J", "(a | num) / 4"),
            // Inside an expression `decimal` gives text, as it always did.
            ("K", "(a | decimal) == '1.50'"),
            ("L", "a | decimal | float"),
        ];
        let spec = TransformSpec {
            fields: fields.map(|(n, e)| (n.into(), e.into())).to_vec(),
            ..Default::default()
        };
        let env = environment(&Lookups::new());
        for native in [true, false] {
            let mut t = Transformer::new(&env, &spec, BTreeMap::new()).unwrap();
            if !native {
                t.native = None;
            }
            let mut r = rec(&["a"], &["1,5"]);
            r.kinds = vec![Kind::Number];
            assert!(t.apply(&mut r).unwrap());
            let (n, t, b) = (Kind::Number, Kind::Text, Kind::Bool(true));
            let values = [
                "1.5", "2", "1.50", "1", "", "1.5", "1,5", "1,50", "1.50", "0.375",
            ];
            assert_eq!(r.values[..10], values);
            assert_eq!(r.values[10..], ["1", "1.5"]);
            assert_eq!(r.kinds, [n, n, n, b, Kind::Null, t, n, t, t, n, b, n]);
        }
    }

    #[test]
    fn bare_names_are_copied_as_evaluating_them_would() {
        assert_eq!(plain_name(" Qty "), Some("Qty".into()));
        for e in ["true", "None", "Qty | num", "record['a b']", "a.b", "1", ""] {
            assert_eq!(plain_name(e), None, "{e}");
        }
        let spec = TransformSpec {
            fields: vec![
                ("a".into(), "Qty".into()),
                ("b".into(), "true".into()),
                ("c".into(), "meta".into()),
                ("d".into(), "x".into()),
            ],
            ..Default::default()
        };
        let env = environment(&Lookups::new());
        let meta = BTreeMap::from([("name".to_string(), "o.csv".to_string())]);
        let mut t = Transformer::new(&env, &spec, meta).unwrap();
        // `true` is the literal even with a field of that name; a field named `meta` wins
        // over the file's facts, as in an evaluation.
        let mut r = rec(&["Qty", "true", "meta", "x"], &["5", "no", "m", ""]);
        assert!(t.apply(&mut r).unwrap());
        assert_eq!(
            r.values,
            vec!["5", "1", "m", ""],
            "`true` as field text is 1"
        );
    }

    #[test]
    fn undefined_fields_are_errors_and_keep_adds_the_rest() {
        let spec = TransformSpec {
            filter: None,
            fields: vec![
                ("Quantity".into(), "Qty".into()),
                ("X".into(), "record['Unit Price']".into()),
            ],
            keep: true,
            lookups: vec![],
            split: None,
        };
        let env = environment(&Lookups::new());
        let mut t = Transformer::new(&env, &spec, BTreeMap::new()).unwrap();
        let mut r = rec(&["Qty", "Unit Price", "Item"], &["5", "9.99", "Bolt"]);
        let nested = TransformSpec {
            fields: vec![("n".into(), "customer.address.city | upper".into())],
            keep: false,
            ..spec.clone()
        };
        let mut tn = Transformer::new(&env, &nested, BTreeMap::new()).unwrap();
        let mut rn = rec(
            &["customer.name", "customer.address.city"],
            &["Ann", "Köln"],
        );
        assert!(tn.apply(&mut rn).unwrap());
        assert_eq!(rn.values, vec!["KÖLN"]);
        assert!(t.apply(&mut r).unwrap());
        assert_eq!(&*r.names, &["Qty", "Unit Price", "Item", "Quantity", "X"]);
        assert_eq!(r.values, vec!["5", "9.99", "Bolt", "5", "9.99"]);
        // A computed field with an input field's name replaces it in its place.
        let spec2 = TransformSpec {
            fields: vec![("Qty".into(), "(Qty | num) * 2".into())],
            ..spec.clone()
        };
        let mut t2 = Transformer::new(&env, &spec2, BTreeMap::new()).unwrap();
        let mut r = rec(&["Item", "Qty"], &["Bolt", "5"]);
        assert!(t2.apply(&mut r).unwrap());
        assert_eq!(
            (&*r.names, r.values.clone()),
            (
                &["Item".to_string(), "Qty".to_string()][..],
                vec!["Bolt".to_string(), "10".to_string()]
            )
        );
        let spec = TransformSpec {
            fields: vec![("a".into(), "Qtty".into())],
            ..spec
        };
        let mut t = Transformer::new(&env, &spec, BTreeMap::new()).unwrap();
        let mut r = rec(&["Qty"], &["5"]);
        assert!(t.apply(&mut r).is_err());
    }

    /// Random expressions of the natively compiled kind, on random records: the native
    /// evaluator (with minijinja as its fallback) and minijinja alone give the same
    /// records, the same filter decisions and the same errors.
    #[test]
    fn native_evaluation_agrees_with_minijinja() {
        struct Rng(u64);
        impl Rng {
            fn below(&mut self, n: usize) -> usize {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                (self.0 % n as u64) as usize
            }
        }
        fn expr(r: &mut Rng, depth: u32) -> String {
            let leaf = depth == 0 || r.below(3) == 0;
            if leaf {
                return match r.below(6) {
                    0 | 1 => ["A", "B", "C"][r.below(3)].to_string(),
                    2 => ["0", "1", "5", "42", "9223372036854775807"][r.below(5)].to_string(),
                    3 => ["0.5", "2.25", "1.0"][r.below(3)].to_string(),
                    4 => ["'abc'", "''", "'7'", "\"2,50\""][r.below(4)].to_string(),
                    _ => format!("{} | num", ["A", "B", "C"][r.below(3)]),
                };
            }
            let a = expr(r, depth - 1);
            let b = expr(r, depth - 1);
            let e = match r.below(12) {
                0 => format!("{a} | num"),
                1 => format!("{a} | num(',')"),
                2 => format!("-{a}"),
                3 => format!("not {a}"),
                4 => format!("{a} + {b}"),
                5 => format!("{a} - {b}"),
                6 => format!("{a} * {b}"),
                7 => format!("{a} / {b}"),
                8 => format!("{a} {} {b}", ["==", "!=", "<", "<=", ">", ">="][r.below(6)]),
                9 => format!("{a} and {b}"),
                10 => format!("{a} or {b}"),
                _ => format!("({a})"),
            };
            if r.below(2) == 0 { format!("({e})") } else { e }
        }
        const VALUES: &[&str] = &[
            "7",
            "2,50",
            "-3",
            "0",
            "",
            "abc",
            "1.5",
            " 42 ",
            "1.234,56",
            "0.0",
            "9223372036854775807",
            "1e3",
            "-0",
            "12.5",
        ];
        let env = environment(&Lookups::default());
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut natively = 0;
        for _ in 0..400 {
            let spec = TransformSpec {
                filter: (rng.below(2) == 0).then(|| expr(&mut rng, 3)),
                fields: vec![
                    ("X".into(), expr(&mut rng, 3)),
                    ("Y".into(), expr(&mut rng, 2)),
                ],
                keep: rng.below(2) == 0,
                lookups: Vec::new(),
                split: None,
            };
            let Ok(mut native) = Transformer::new(&env, &spec, BTreeMap::new()) else {
                continue;
            };
            if native.native.is_none() {
                continue;
            }
            let mut reference = Transformer::new(&env, &spec, BTreeMap::new()).unwrap();
            reference.native = None;
            for _ in 0..20 {
                let values: Vec<&str> = (0..3).map(|_| VALUES[rng.below(VALUES.len())]).collect();
                let mut a = rec(&["A", "B", "C"], &values);
                let mut b = a.clone();
                if native
                    .native
                    .as_mut()
                    .unwrap()
                    .eval(&a, &mut Vec::new(), &mut Vec::new())
                    .is_some()
                {
                    natively += 1;
                }
                let ra = native.apply(&mut a);
                let rb = reference.apply(&mut b);
                assert_eq!(
                    ra, rb,
                    "{spec:?} on {values:?}: native {:?}, minijinja {:?}",
                    a.values, b.values
                );
                assert_eq!(
                    (&a.names, &a.values, &a.kinds),
                    (&b.names, &b.values, &b.kinds),
                    "{spec:?} on {values:?}"
                );
            }
        }
        assert!(natively > 500, "only {natively} records evaluated natively");
    }
}
