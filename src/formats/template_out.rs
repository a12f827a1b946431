//! Text out through templates (MiniJinja, a Jinja2 dialect): a header rendered once before
//! the first record, a record template rendered once per record, a footer rendered once at
//! the end. Streams: each record is rendered and written as it comes.
//!
//! What the templates see:
//! - every template: `meta`, a map the caller gives (file name, job, ...);
//! - the record template: the record's fields by name (`{{ OrderNo }}`), the same as a map
//!   (`{{ record["Order No"] }}`, `{% for k, v in record|items %}`), and `rec_no`, the
//!   1-based number of the record in this output;
//! - the header: the first record's fields (by name and as `record`), when there is one;
//! - the footer: `count` (records written), `totals` (the sum of every field whose values
//!   were all numbers, for trailer records) and the last record's fields, when there is one.
//!
//! `meta`, `record`, `rec_no` and `count` win over fields of the same name (reach those
//! through `record`). Undefined names are errors (strict mode), so a typo fails the first
//! record instead of writing empty text; `{% if x is defined %}` and `x|default("")` still
//! work. Templates keep their trailing newline, and a block tag alone on its line leaves
//! no blank line (`trim_blocks`, `lstrip_blocks`). Line endings are the template's own:
//! write `\r\n` in the template for CRLF output. Nothing is escaped unless the template
//! says so (`|e`).

use std::collections::BTreeMap;
use std::io::{self, BufWriter, Write};
use std::sync::Arc;

use minijinja::value::{Enumerator, Object, Value};
use minijinja::{Environment, UndefinedBehavior};

use super::{ParseError, Record};

/// The templates of a [`TemplateWriter`], as MiniJinja source text.
#[derive(Debug, Clone, Default)]
pub struct TemplateOptions {
    /// Rendered once before the first record (or at the end when there is none).
    pub header: Option<String>,
    /// Rendered once per record.
    pub record: String,
    /// Rendered once at the end.
    pub footer: Option<String>,
}

/// One record's fields, as a template sees them: a map in field order.
#[derive(Debug)]
struct Fields {
    names: Arc<[String]>,
    values: Vec<Value>,
}

impl Fields {
    fn new(rec: &Record) -> Fields {
        Fields {
            names: rec.names.clone(),
            values: (0..rec.names.len())
                .map(|i| Value::from(rec.values.get(i).map_or("", String::as_str)))
                .collect(),
        }
    }
}

impl Object for Fields {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.get_value_by_str(key.as_str()?)
    }

    fn get_value_by_str(self: &Arc<Self>, key: &str) -> Option<Value> {
        let i = self.names.iter().position(|n| n == key)?;
        self.values.get(i).cloned()
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(self.names.iter().map(|n| Value::from(n.as_str())).collect())
    }
}

/// The names a template sees.
#[derive(Debug)]
struct Context {
    fields: Option<Arc<Fields>>,
    rec_no: Option<u64>,
    count: Option<u64>,
    meta: Value,
    /// In the footer: the sum of every field whose values were all numbers.
    totals: Option<Value>,
}

impl Object for Context {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.get_value_by_str(key.as_str()?)
    }

    fn get_value_by_str(self: &Arc<Self>, key: &str) -> Option<Value> {
        match key {
            "meta" => Some(self.meta.clone()),
            "rec_no" if self.rec_no.is_some() => self.rec_no.map(Value::from),
            "count" if self.count.is_some() => self.count.map(Value::from),
            "totals" if self.totals.is_some() => self.totals.clone(),
            "record" if self.fields.is_some() => self.fields.clone().map(Value::from_dyn_object),
            _ => self.fields.as_ref()?.get_value_by_str(key),
        }
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let mut keys: Vec<Value> = vec![Value::from("meta")];
        if self.rec_no.is_some() {
            keys.push(Value::from("rec_no"));
        }
        if self.count.is_some() {
            keys.push(Value::from("count"));
        }
        if let Some(f) = &self.fields {
            keys.push(Value::from("record"));
            keys.extend(f.names.iter().map(|n| Value::from(n.as_str())));
        }
        Enumerator::Values(keys)
    }
}

/// "`record` template, line 3: undefined value at `{{ OrderNoo }}`".
fn describe(e: &minijinja::Error) -> String {
    let mut s = match (e.name(), e.line()) {
        (Some(n), Some(l)) => format!("{n} template, line {l}: {}", e.kind()),
        (Some(n), None) => format!("{n} template: {}", e.kind()),
        _ => e.kind().to_string(),
    };
    if let Some(d) = e.detail() {
        s.push_str(": ");
        s.push_str(d);
    }
    if let (Some(src), Some(r)) = (e.template_source(), e.range())
        && let Some(snippet) = src.get(r)
        && !snippet.is_empty()
        && snippet.len() <= 200
        && !e.detail().is_some_and(|d| d.contains(snippet))
    {
        s.push_str(&format!(" at `{snippet}`"));
    }
    s
}

/// The environment text output templates are rendered with.
pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_syntax(
        minijinja::syntax::SyntaxConfig::builder()
            .keep_trailing_newline(true)
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .expect("default delimiters"),
    );
    crate::filters::add_filters(&mut env);
    env
}

/// Writes records as text rendered through templates, streaming.
pub struct TemplateWriter<W: Write> {
    out: BufWriter<W>,
    env: Environment<'static>,
    meta: Value,
    has_header: bool,
    has_footer: bool,
    started: bool,
    count: u64,
    totals: BTreeMap<String, f64>,
    not_numeric: std::collections::BTreeSet<String>,
    /// The last record written, for the footer.
    last: Option<Arc<Fields>>,
}

impl<W: Write> TemplateWriter<W> {
    /// Compiles the templates; a syntax error is returned with the template's name
    /// (`header`, `record`, `footer`) and line. Nothing is written before the first record
    /// (or [`finish`](Self::finish)).
    pub fn new(
        out: W,
        opts: &TemplateOptions,
        meta: BTreeMap<String, String>,
    ) -> Result<Self, String> {
        let mut env = environment();
        let templates = [
            ("header", opts.header.as_ref()),
            ("record", Some(&opts.record)),
            ("footer", opts.footer.as_ref()),
        ];
        for (name, source) in templates {
            if let Some(src) = source {
                env.add_template_owned(name, src.clone())
                    .map_err(|e| describe(&e))?;
            }
        }
        Ok(TemplateWriter {
            out: BufWriter::with_capacity(64 * 1024, out),
            env,
            meta: Value::from(meta),
            has_header: opts.header.is_some(),
            has_footer: opts.footer.is_some(),
            started: false,
            count: 0,
            totals: BTreeMap::new(),
            not_numeric: Default::default(),
            last: None,
        })
    }

    /// Records written so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    fn render(&self, name: &str, ctx: Context) -> Result<String, String> {
        let t = self.env.get_template(name).map_err(|e| describe(&e))?;
        t.render(Value::from_object(ctx)).map_err(|e| describe(&e))
    }

    /// Renders the record template for one record (after the header, before the first
    /// one) and writes it. A template that fails (an undefined name, a failing filter) is
    /// an error naming the record, and nothing of the record is written. A failed write to
    /// `W` is an error too (its message starts with "cannot write").
    pub fn write(&mut self, rec: &Record) -> Result<(), ParseError> {
        let mut pos = rec.pos;
        if pos.record == 0 {
            pos.record = self.count + 1;
        }
        let fields = Arc::new(Fields::new(rec));
        let header = if !self.started && self.has_header {
            let h = self.render(
                "header",
                Context {
                    fields: Some(fields.clone()),
                    rec_no: None,
                    count: None,
                    meta: self.meta.clone(),
                    totals: None,
                },
            );
            Some(h.map_err(|m| ParseError::new(m).at(pos))?)
        } else {
            None
        };
        let text = self
            .render(
                "record",
                Context {
                    fields: Some(fields.clone()),
                    rec_no: Some(self.count + 1),
                    count: None,
                    meta: self.meta.clone(),
                    totals: None,
                },
            )
            .map_err(|m| ParseError::new(m).at(pos))?;
        let written = header
            .iter()
            .try_for_each(|h| self.out.write_all(h.as_bytes()))
            .and_then(|()| self.out.write_all(text.as_bytes()));
        written.map_err(|e| ParseError::new(format!("cannot write: {e}")).at(pos))?;
        self.started = true;
        self.count += 1;
        if self.has_footer {
            for (name, value) in rec.fields() {
                if self.not_numeric.contains(name) {
                    continue;
                }
                match crate::filters::parse_number(value).and_then(|v| f64::try_from(v).ok()) {
                    Some(n) => *self.totals.entry(name.to_string()).or_insert(0.0) += n,
                    None => {
                        self.not_numeric.insert(name.to_string());
                    }
                }
            }
        }
        self.last = Some(fields);
        Ok(())
    }

    /// Writes the footer (and the header, when no record came) and returns the writer. A
    /// template that fails here is an error of kind `Other` with the template's message.
    pub fn finish(mut self) -> io::Result<W> {
        if !self.started && self.has_header {
            let h = self
                .render(
                    "header",
                    Context {
                        fields: None,
                        rec_no: None,
                        count: None,
                        meta: self.meta.clone(),
                        totals: None,
                    },
                )
                .map_err(io::Error::other)?;
            self.out.write_all(h.as_bytes())?;
        }
        if self.has_footer {
            let f = self
                .render(
                    "footer",
                    Context {
                        fields: self.last.clone(),
                        rec_no: None,
                        count: Some(self.count),
                        meta: self.meta.clone(),
                        totals: Some(Value::from(
                            self.totals
                                .iter()
                                .filter(|(k, _)| !self.not_numeric.contains(*k))
                                .map(|(k, v)| {
                                    // Whole sums read as whole numbers (`7`, not `7.0`).
                                    let v = if v.fract() == 0.0 && v.abs() < 9.0e15 {
                                        Value::from(*v as i64)
                                    } else {
                                        Value::from(*v)
                                    };
                                    (k.clone(), v)
                                })
                                .collect::<BTreeMap<String, Value>>(),
                        )),
                    },
                )
                .map_err(io::Error::other)?;
            self.out.write_all(f.as_bytes())?;
        }
        self.out.flush()?;
        self.out.into_inner().map_err(|e| e.into_error())
    }
}

/// Renders a one-line template against one record, for output file names
/// (`order_{{ OrderNo }}.xml`): the fields by name, `record` and `rec_no` (the record's
/// number in its input) as in [`TemplateWriter`], undefined names an error. The result
/// must be a plain file name: not empty, not `.` or `..`, no `/`, `\` or control
/// characters (a field value cannot lead elsewhere).
pub fn render_name(template: &str, rec: &Record) -> Result<String, String> {
    let env = environment();
    let ctx = Context {
        fields: Some(Arc::new(Fields::new(rec))),
        rec_no: Some(rec.pos.record),
        count: None,
        meta: Value::from(BTreeMap::<String, String>::new()),
        totals: None,
    };
    let name = env
        .template_from_named_str("name", template)
        .and_then(|t| t.render(Value::from_object(ctx)))
        .map_err(|e| describe(&e))?;
    if name.is_empty() || name == "." || name == ".." {
        return Err(format!(
            "name template {template:?} gave {name:?}, which is not a file name"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|&c| c == '/' || c == '\\' || c.is_control())
    {
        return Err(format!(
            "name template {template:?} gave {name:?}: {c:?} cannot be in a file name"
        ));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::Position;

    fn rec(fields: &[(&str, &str)]) -> Record {
        Record {
            names: fields
                .iter()
                .map(|(n, _)| n.to_string())
                .collect::<Vec<_>>()
                .into(),
            values: fields.iter().map(|(_, v)| v.to_string()).collect(),
            kinds: Vec::new(),
            pos: Position::default(),
        }
    }

    fn opts(header: Option<&str>, record: &str, footer: Option<&str>) -> TemplateOptions {
        TemplateOptions {
            header: header.map(str::to_string),
            record: record.to_string(),
            footer: footer.map(str::to_string),
        }
    }

    fn meta() -> BTreeMap<String, String> {
        [("file", "orders.csv"), ("job", "shop")]
            .into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn render_all(o: &TemplateOptions, recs: &[Record]) -> Result<String, ParseError> {
        let mut w = TemplateWriter::new(Vec::new(), o, meta()).map_err(ParseError::new)?;
        for r in recs {
            w.write(r)?;
        }
        let out = w.finish().map_err(|e| ParseError::new(e.to_string()))?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn header_records_footer_with_crlf() {
        let o = opts(
            Some("H;{{ meta.file }};{{ meta.job }};{{ OrderNo }}\r\n"),
            "{{ rec_no }};{{ OrderNo }};{{ record[\"Item name\"] }};{{ Qty|int * 2 }}\r\n",
            Some("T;{{ count }};last {{ OrderNo }};{{ totals.Qty }}\r\n"),
        );
        let recs = [
            rec(&[("OrderNo", "A1"), ("Item name", "Bolt"), ("Qty", "3")]),
            rec(&[("OrderNo", "A2"), ("Item name", "Nüt €"), ("Qty", "4")]),
        ];
        assert_eq!(
            render_all(&o, &recs).unwrap(),
            "H;orders.csv;shop;A1\r\n1;A1;Bolt;6\r\n2;A2;Nüt €;8\r\nT;2;last A2;7\r\n"
        );
    }

    #[test]
    fn fields_as_a_map_blocks_and_precedence() {
        let o = opts(
            None,
            "{% for k, v in record|items %}\n{{ k }}={{ v }}\n{% endfor %}\n\
             {% if Note %}\n  note: {{ Note }}\n{% endif %}\n\
             {{ opt|default(\"-\") }} {{ opt is defined }} {{ record.meta }} {{ meta.job }}\n",
            None,
        );
        let r = rec(&[("a", "1"), ("Note", ""), ("meta", "shadowed")]);
        assert_eq!(
            render_all(&o, &[r]).unwrap(),
            "a=1\nNote=\nmeta=shadowed\n- False shadowed shop\n"
        );
        let r = rec(&[("a", "1"), ("Note", "hi"), ("meta", "")]);
        assert!(render_all(&o, &[r]).unwrap().contains("\n  note: hi\n"));
        // Nothing is escaped unless asked for.
        let o = opts(None, "{{ v }} {{ v|e }}", None);
        assert_eq!(
            render_all(&o, &[rec(&[("v", "<a & b>")])]).unwrap(),
            "<a & b> &lt;a &amp; b&gt;"
        );
    }

    #[test]
    fn zero_records_get_header_and_footer() {
        let o = opts(
            Some(
                "{% if record is defined %}{{ record.x }}{% else %}empty{% endif %} {{ meta.file }}\n",
            ),
            "{{ x }}\n",
            Some("{{ count }} records\n"),
        );
        assert_eq!(
            render_all(&o, &[]).unwrap(),
            "empty orders.csv\n0 records\n"
        );
        assert_eq!(render_all(&opts(None, "{{ x }}\n", None), &[]).unwrap(), "");
        // A footer that needs a record fails at finish without one.
        let o = opts(None, "{{ x }}\n", Some("{{ x }}\n"));
        let w = TemplateWriter::new(Vec::new(), &o, meta()).unwrap();
        let e = w.finish().unwrap_err();
        assert!(e.to_string().contains("footer template"), "{e}");
    }

    #[test]
    fn undefined_names_are_errors_naming_the_record() {
        let o = opts(
            None,
            "{{ OrderNo }};\n{{ OrderNoo }}\n",
            Some("{{ count }}\n"),
        );
        let mut w = TemplateWriter::new(Vec::new(), &o, meta()).unwrap();
        let mut r = rec(&[("OrderNo", "A1")]);
        r.pos = Position {
            record: 7,
            line: 8,
            byte: 99,
        };
        let e = w.write(&r).unwrap_err();
        assert_eq!(e.pos.unwrap().record, 7);
        assert!(e.message.contains("record template, line 2"), "{e}");
        assert!(e.message.contains("undefined"), "{e}");
        assert!(e.message.contains("OrderNoo"), "{e}");
        assert!(e.to_string().starts_with("record 7 (line 8"), "{e}");
        // Nothing of the failed record was written.
        assert_eq!(w.count(), 0);
        assert_eq!(w.finish().unwrap(), b"0\n");
        // A record without its own position is numbered by the writer.
        let o = opts(Some("{{ nope }}"), "x", None);
        let mut w = TemplateWriter::new(Vec::new(), &o, meta()).unwrap();
        let e = w.write(&rec(&[("a", "1")])).unwrap_err();
        assert_eq!(e.pos.unwrap().record, 1);
        assert!(e.message.contains("header template"), "{e}");
        // `if` on an undefined name is an error too (strict).
        let o = opts(None, "{% if nope %}x{% endif %}", None);
        let mut w = TemplateWriter::new(Vec::new(), &o, meta()).unwrap();
        assert!(w.write(&rec(&[("a", "1")])).is_err());
    }

    #[test]
    fn syntax_errors_name_template_and_line() {
        let e = TemplateWriter::new(
            Vec::new(),
            &opts(None, "ok\n{{ a }}\n{% if a %}\nno end\n", None),
            meta(),
        )
        .err()
        .unwrap();
        assert!(e.starts_with("record template, line "), "{e}");
        assert!(e.contains("syntax error"), "{e}");
        let e = TemplateWriter::new(
            Vec::new(),
            &opts(None, "x", Some("a\nb\n{{ count }")),
            meta(),
        )
        .err()
        .unwrap();
        assert!(e.starts_with("footer template, line 3"), "{e}");
        let e = TemplateWriter::new(Vec::new(), &opts(Some("{% for %}"), "x", None), meta())
            .err()
            .unwrap();
        assert!(e.starts_with("header template, line 1"), "{e}");
    }

    #[test]
    fn names_from_records() {
        let mut r = rec(&[("OrderNo", "A 17"), ("Customer", "Ünal & Co")]);
        r.pos.record = 3;
        assert_eq!(
            render_name("order_{{ OrderNo }}.xml", &r).unwrap(),
            "order_A 17.xml"
        );
        assert_eq!(
            render_name(
                "{{ Customer|lower|replace(' ', '-') }}_{{ rec_no }}.txt",
                &r
            )
            .unwrap(),
            "ünal-&-co_3.txt"
        );
        assert_eq!(render_name("{{ record.OrderNo }}", &r).unwrap(), "A 17");
        let e = render_name("order_{{ OrderNoo }}.xml", &r).unwrap_err();
        assert!(e.contains("undefined") && e.contains("OrderNoo"), "{e}");
        assert!(
            render_name("{{ OrderNo ", &r)
                .unwrap_err()
                .contains("syntax")
        );
        let bad = rec(&[
            ("a", "../../etc/passwd"),
            ("b", ""),
            ("c", "x\ny"),
            ("d", ".."),
        ]);
        assert!(render_name("{{ a }}", &bad).unwrap_err().contains("'/'"));
        assert!(render_name("{{ b }}", &bad).is_err());
        assert!(render_name("{{ c }}", &bad).is_err());
        assert!(render_name("{{ d }}", &bad).is_err());
        assert!(render_name("x\\{{ b }}", &bad).is_err());
    }
}
