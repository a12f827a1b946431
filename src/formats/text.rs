//! Text in: plain text as records, two ways.
//!
//! `Lines`: one record per non-blank line, in one field (`line` unless the job names it
//! otherwise). Streams: memory holds one line, at most `[input] max_record` long.
//!
//! `Capture`, in the manner of invoice2data, for text pulled from PDFs and printed reports,
//! where values sit next to labels rather than in columns. The whole text is read (at most
//! `[input] max_record`, 64 MiB unless set), then:
//!
//! - each header field tries its patterns in order; the first pattern that matches gives
//!   the value: the capture group named like the field, or else the first capture group,
//!   or else the whole match (a pattern whose chosen group takes no part in its match
//!   counts as not matching). Values are trimmed; a field no pattern finds is empty, or an
//!   error if it is `required`;
//! - without `items`, the text is exactly one record of the header fields;
//! - with `items`, the text between the `start` and `end` markers (the match end of
//!   `start` to the match start of `end`, as invoice2data cuts it; from the beginning and
//!   to the end of the text when not given) is split into lines, and every line the
//!   `line` pattern matches is one record: the header fields, then the pattern's named
//!   groups. After an `end` marker the next `start` marker opens another section, so the
//!   items of an invoice that runs over several pages, repeating its table header on
//!   each, are all found. No item at all is an error: an invoice whose lines were not
//!   recognised must not pass as empty.
//!
//! Patterns use the regex crate's syntax (linear time: no pattern can hang on hostile
//! text) and are compiled once per job by [`TextOptions::compile`]. They run in multi-line
//! mode: `^` and `$` match at the start and end of every line (`\r\n` included); `.` does
//! not cross a line break but `\s` does, so `Invoice number\s+(\S+)` finds a value printed
//! on the line below its label.

use std::io::{BufRead, BufReader, Read};
use std::sync::Arc;

use regex::{Regex, RegexBuilder};

use super::{DEFAULT_MAX_RECORD, ParseError, Position, Record};

/// How text becomes records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TextMode {
    /// One record per non-blank line.
    #[default]
    Lines,
    /// Fields captured by patterns from the whole text.
    Capture,
}

/// Line items in capture mode: which lines are records, and where they are.
#[derive(Debug, Clone, Default)]
pub struct ItemsOptions {
    /// Items start after this pattern's match (say the table header).
    pub start: Option<String>,
    /// Items end where this pattern matches (say `Subtotal`).
    pub end: Option<String>,
    /// An item line; its named groups are the item's fields.
    pub line: String,
    /// The `line` pattern may span several lines (`\n` in it): each match in the section
    /// is one item. Text pulled from PDFs often puts an item's name, quantity and price on
    /// lines of their own.
    pub across_lines: bool,
}

/// What a job says about its text input; [`TextOptions::compile`] checks it.
#[derive(Debug, Clone)]
pub struct TextOptions {
    /// Lines or capture.
    pub mode: TextMode,
    /// The field holding the line, in lines mode.
    pub line_field: String,
    /// Capture mode: (field name, patterns tried in order), in output order.
    pub fields: Vec<(String, Vec<String>)>,
    /// Capture mode: fields (header fields or item groups) that must be found.
    pub required: Vec<String>,
    /// Capture mode: line items, each matching line one record (otherwise the text is one
    /// record).
    pub items: Option<ItemsOptions>,
}

impl Default for TextOptions {
    fn default() -> Self {
        TextOptions {
            mode: TextMode::Lines,
            line_field: "line".into(),
            fields: Vec::new(),
            required: Vec::new(),
            items: None,
        }
    }
}

/// A header field's patterns, each with the capture group that holds the value.
#[derive(Debug, Clone)]
struct FieldRule {
    name: String,
    patterns: Vec<(Regex, usize)>,
}

#[derive(Debug, Clone)]
struct ItemRules {
    start: Option<Regex>,
    end: Option<Regex>,
    line: Regex,
    across_lines: bool,
    /// Group index of each item field, in output order (after the header fields).
    groups: Vec<usize>,
    /// Item fields that must be found, as indexes into `groups`.
    required: Vec<usize>,
}

/// Compiled [`TextOptions`]: build once per job with [`TextOptions::compile`], then hand
/// a clone to each file's [`TextReader`].
#[derive(Debug, Clone)]
pub struct TextRules {
    mode: TextMode,
    fields: Vec<FieldRule>,
    /// Header fields that must be found, as indexes into `fields`.
    required: Vec<usize>,
    items: Option<ItemRules>,
    names: Arc<[String]>,
}

fn compile_pattern(what: &str, pattern: &str) -> Result<Regex, String> {
    RegexBuilder::new(pattern)
        .multi_line(true)
        .crlf(true)
        .build()
        .map_err(|e| format!("{what}: pattern {pattern:?}: {e}"))
}

impl TextRules {
    /// The fields of its records, in order: the captured fields, then the item groups (or
    /// the line field).
    pub fn names(&self) -> &[String] {
        &self.names
    }
}

impl TextOptions {
    /// Checks the options and compiles their patterns; the error names the field and
    /// pattern at fault.
    pub fn compile(&self) -> Result<TextRules, String> {
        if self.mode == TextMode::Lines {
            if self.line_field.is_empty() {
                return Err("line_field: the field holding the line needs a name".into());
            }
            if !self.fields.is_empty() || !self.required.is_empty() || self.items.is_some() {
                return Err(
                    "fields, required and items apply to capture mode, not to lines".into(),
                );
            }
            return Ok(TextRules {
                mode: self.mode,
                fields: Vec::new(),
                required: Vec::new(),
                items: None,
                names: Arc::from(vec![self.line_field.clone()]),
            });
        }
        if self.fields.is_empty() && self.items.is_none() {
            return Err("capture mode needs fields, items or both".into());
        }
        let mut names: Vec<String> = Vec::new();
        let mut fields = Vec::new();
        for (name, patterns) in &self.fields {
            if name.is_empty() {
                return Err("a field needs a name".into());
            }
            if names.contains(name) {
                return Err(format!("field `{name}` is defined twice"));
            }
            if patterns.is_empty() {
                return Err(format!("field `{name}`: give at least one pattern"));
            }
            let mut compiled = Vec::new();
            for p in patterns {
                let re = compile_pattern(&format!("field `{name}`"), p)?;
                let group = re
                    .capture_names()
                    .position(|g| g == Some(name.as_str()))
                    .unwrap_or(if re.captures_len() > 1 { 1 } else { 0 });
                compiled.push((re, group));
            }
            names.push(name.clone());
            fields.push(FieldRule {
                name: name.clone(),
                patterns: compiled,
            });
        }
        let header = names.len();
        let items = match &self.items {
            None => None,
            Some(it) => {
                let start = match &it.start {
                    Some(p) => Some(compile_pattern("items start", p)?),
                    None => None,
                };
                let end = match &it.end {
                    Some(p) => Some(compile_pattern("items end", p)?),
                    None => None,
                };
                let line = compile_pattern("items line", &it.line)?;
                let mut groups = Vec::new();
                for (i, g) in line.capture_names().enumerate() {
                    let Some(g) = g else { continue };
                    if names.iter().any(|n| n == g) {
                        return Err(format!(
                            "items line: pattern {:?}: the group `{g}` has the name of a field; rename one of them",
                            it.line
                        ));
                    }
                    names.push(g.to_string());
                    groups.push(i);
                }
                if groups.is_empty() {
                    return Err(format!(
                        "items line: pattern {:?}: name the item's fields with groups, like (?P<qty>\\d+)",
                        it.line
                    ));
                }
                Some(ItemRules {
                    start,
                    end,
                    line,
                    across_lines: it.across_lines,
                    groups,
                    required: Vec::new(),
                })
            }
        };
        let mut rules = TextRules {
            mode: self.mode,
            fields,
            required: Vec::new(),
            items,
            names: names.clone().into(),
        };
        for r in &self.required {
            match names.iter().position(|n| n == r) {
                Some(i) if i < header => rules.required.push(i),
                Some(i) => {
                    if let Some(it) = rules.items.as_mut() {
                        it.required.push(i - header);
                    }
                }
                None => {
                    return Err(format!(
                        "required `{r}` is neither a field nor a group of the items line pattern"
                    ));
                }
            }
        }
        Ok(rules)
    }
}

enum State {
    /// Lines mode, or capture mode before the text was read.
    Start,
    /// Capture mode: the item lines still to look at.
    Items(Items),
    Done,
}

struct Items {
    text: String,
    header: Vec<String>,
    /// Byte ranges of the text holding items.
    sections: Vec<(usize, usize)>,
    section: usize,
    /// Where the next line starts, and its 1-based number.
    at: usize,
    line: u64,
}

/// Reads records from plain text (already decoded to UTF-8).
pub struct TextReader<R: Read> {
    input: BufReader<R>,
    rules: TextRules,
    state: State,
    count: u64,
    /// Lines mode: the line being read, the lines and bytes before it.
    buf: Vec<u8>,
    line: u64,
    byte: u64,
    /// Lines mode: the longest line. Capture mode: the largest text.
    max_record: u64,
}

impl<R: Read> TextReader<R> {
    /// A reader of `input` with a job's compiled rules (a clone: rules are cheap to clone).
    pub fn new(input: R, rules: TextRules) -> Self {
        TextReader {
            input: BufReader::with_capacity(64 * 1024, input),
            rules,
            state: State::Start,
            count: 0,
            buf: Vec::new(),
            line: 0,
            byte: 0,
            max_record: DEFAULT_MAX_RECORD,
        }
    }

    /// Fails on a line (lines mode) or a text (capture mode) longer than `max` bytes (a
    /// line's line break not counted), reading no more of it than that.
    pub fn with_max_record(mut self, max: u64) -> Self {
        self.max_record = max;
        self
    }

    /// Reads the next record into `out`, reusing its allocations. `Ok(false)` at the end.
    ///
    /// In lines mode a bad line (too long, not UTF-8) is an error and reading goes on with
    /// the next one. In capture mode an error about the whole text (too long, a required
    /// field missing, no items) ends the reading; a required item field missing is an
    /// error for that item only.
    pub fn read_into(&mut self, out: &mut Record) -> Result<bool, ParseError> {
        match self.rules.mode {
            TextMode::Lines => self.next_line(out),
            TextMode::Capture => {
                let r = self.next_capture(out);
                if r.is_err() && matches!(self.state, State::Start) {
                    self.state = State::Done;
                }
                r
            }
        }
    }

    fn set_names(&self, out: &mut Record) {
        if !Arc::ptr_eq(&out.names, &self.rules.names) && *out.names != *self.rules.names {
            out.names = self.rules.names.clone();
        }
    }

    fn read_error(&self, e: std::io::Error, pos: Position) -> ParseError {
        ParseError::new(match super::encoding::decode_error(&e) {
            Some(d) => d.to_string(),
            None => format!("cannot read: {e}"),
        })
        .at(pos)
    }

    // --- lines mode ---

    fn next_line(&mut self, out: &mut Record) -> Result<bool, ParseError> {
        loop {
            if matches!(self.state, State::Done) {
                return Ok(false);
            }
            let pos = Position {
                record: self.count + 1,
                line: self.line + 1,
                byte: self.byte,
            };
            self.buf.clear();
            let max = self.max_record;
            let n = match (&mut self.input)
                .take(max + 1)
                .read_until(b'\n', &mut self.buf)
            {
                Ok(n) => n,
                Err(e) => {
                    self.state = State::Done;
                    return Err(self.read_error(e, pos));
                }
            };
            if n == 0 {
                self.state = State::Done;
                return Ok(false);
            }
            self.line += 1;
            self.byte += n as u64;
            let ended = self.buf.last() == Some(&b'\n');
            if !ended && n as u64 > max {
                // Where the next line starts is not known without reading on: the file
                // ends here.
                self.state = State::Done;
                return Err(ParseError::too_large(max, pos));
            }
            let mut line = &self.buf[..];
            if ended {
                line = &line[..line.len() - 1];
            }
            if let Some(l) = line.strip_suffix(b"\r") {
                line = l;
            }
            if pos.line == 1
                && let Some(l) = line.strip_prefix("\u{feff}".as_bytes())
            {
                line = l;
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            self.count += 1;
            let text = match std::str::from_utf8(line) {
                Ok(t) => t,
                Err(e) => {
                    let at = e.valid_up_to();
                    return Err(ParseError {
                        value: Some(String::from_utf8_lossy(line).into_owned()),
                        ..ParseError::new(format!(
                            "the line is not valid UTF-8 (at byte {} of the file)",
                            pos.byte + at as u64
                        ))
                        .at(pos)
                    });
                }
            };
            self.set_names(out);
            out.values.truncate(1);
            match out.values.first_mut() {
                Some(v) => {
                    v.clear();
                    v.push_str(text);
                }
                None => out.values.push(text.to_string()),
            }
            out.pos = pos;
            return Ok(true);
        }
    }

    // --- capture mode ---

    fn next_capture(&mut self, out: &mut Record) -> Result<bool, ParseError> {
        match &self.state {
            State::Done => return Ok(false),
            State::Items(_) => return self.next_item(out),
            State::Start => {}
        }
        let top = Position {
            record: 1,
            line: 1,
            byte: 0,
        };
        let text = self.read_text(top)?;
        let header = self.capture_header(&text, top)?;
        let Some(items) = &self.rules.items else {
            self.count = 1;
            self.set_names(out);
            out.values.clear();
            out.values.extend(header);
            out.pos = top;
            self.state = State::Done;
            return Ok(true);
        };
        let sections = find_sections(&text, items.start.as_ref(), items.end.as_ref());
        if sections.is_empty() {
            return Err(ParseError::new(
                "the start marker of the items is not in the text (items.start matches nothing)",
            )
            .at(top));
        }
        let found = sections.iter().any(|&(b, e)| {
            if items.across_lines {
                return items.line.is_match(&text[b..e]);
            }
            text[b..e]
                .split('\n')
                .any(|l| items.line.is_match(l.strip_suffix('\r').unwrap_or(l)))
        });
        if !found {
            let where_ = if items.start.is_some() || items.end.is_some() {
                " between the start and end markers"
            } else {
                ""
            };
            return Err(ParseError::new(format!(
                "no line{where_} matches the items line pattern: no items found"
            ))
            .at(top));
        }
        self.state = State::Items(Items {
            text,
            header,
            sections,
            section: 0,
            at: 0,
            line: 1,
        });
        self.next_item(out)
    }

    /// Reads the whole text, at most `max_record` bytes.
    fn read_text(&mut self, top: Position) -> Result<String, ParseError> {
        let max = self.max_record;
        let mut bytes = Vec::new();
        (&mut self.input)
            .take(max + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| self.read_error(e, top))?;
        if bytes.len() as u64 > max {
            // Capture mode reads the whole text as one record.
            return Err(ParseError::too_large(max, top));
        }
        let mut text = String::from_utf8(bytes).map_err(|e| {
            let at = e.utf8_error().valid_up_to();
            let line = e.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count() as u64 + 1;
            ParseError::new(format!("the text is not valid UTF-8 at byte {at}")).at(Position {
                record: 1,
                line,
                byte: at as u64,
            })
        })?;
        if text.starts_with('\u{feff}') {
            text.drain(..3);
        }
        Ok(text)
    }

    /// The header fields' values; an error names the required fields not found.
    fn capture_header(&self, text: &str, top: Position) -> Result<Vec<String>, ParseError> {
        let mut values = Vec::with_capacity(self.rules.fields.len());
        let mut found = Vec::with_capacity(self.rules.fields.len());
        for f in &self.rules.fields {
            let v = f.patterns.iter().find_map(|(re, group)| {
                re.captures(text)
                    .and_then(|c| c.get(*group))
                    .map(|m| m.as_str().trim().to_string())
            });
            found.push(v.is_some());
            values.push(v.unwrap_or_default());
        }
        let missing: Vec<&str> = self
            .rules
            .required
            .iter()
            .filter(|&&i| !found[i])
            .map(|&i| self.rules.fields[i].name.as_str())
            .collect();
        if let Some(first) = missing.first() {
            let others = if missing.len() > 1 {
                format!(
                    " (also missing: {})",
                    missing[1..]
                        .iter()
                        .map(|m| format!("`{m}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            } else {
                String::new()
            };
            let patterns = self
                .rules
                .fields
                .iter()
                .find(|f| f.name == *first)
                .map_or(0, |f| f.patterns.len());
            return Err(ParseError {
                field: Some(first.to_string()),
                ..ParseError::new(format!(
                    "required field not found: none of its {patterns} pattern(s) matches the text{others}"
                ))
                .at(top)
            });
        }
        Ok(values)
    }

    fn next_item(&mut self, out: &mut Record) -> Result<bool, ParseError> {
        let State::Items(st) = &mut self.state else {
            return Ok(false);
        };
        let Some(items) = &self.rules.items else {
            return Ok(false);
        };
        loop {
            let Some(&(begin, end)) = st.sections.get(st.section) else {
                self.state = State::Done;
                return Ok(false);
            };
            if st.at < begin {
                st.line += count_lines(&st.text[st.at..begin]);
                st.at = begin;
            }
            if st.at >= end {
                st.section += 1;
                continue;
            }
            if items.across_lines {
                let Some(caps) = items.line.captures_at(&st.text[..end], st.at) else {
                    st.line += count_lines(&st.text[st.at..end]);
                    st.at = end;
                    continue;
                };
                let m = caps.get(0).expect("group 0 is the match");
                st.line += count_lines(&st.text[st.at..m.start()]);
                let pos = Position {
                    record: self.count + 1,
                    line: st.line,
                    byte: m.start() as u64,
                };
                st.line += count_lines(m.as_str());
                st.at = if m.end() > m.start() {
                    m.end()
                } else {
                    m.end() + 1
                };
                self.count += 1;
                let item = Item {
                    caps: &caps,
                    text: m.as_str(),
                    what: "item",
                    pos,
                };
                return item_record(&self.rules.names, &st.header, items, item, out);
            }
            let (line_start, line_no) = (st.at, st.line);
            let line_end = st.text[st.at..end].find('\n').map_or(end, |i| st.at + i);
            if line_end < end {
                st.at = line_end + 1;
                st.line += 1;
            } else {
                st.at = end;
            }
            let line = &st.text[line_start..line_end];
            let line = line.strip_suffix('\r').unwrap_or(line);
            let Some(caps) = items.line.captures(line) else {
                continue;
            };
            self.count += 1;
            let pos = Position {
                record: self.count,
                line: line_no,
                byte: line_start as u64,
            };
            let item = Item {
                caps: &caps,
                text: line,
                what: "item line",
                pos,
            };
            return item_record(&self.rules.names, &st.header, items, item, out);
        }
    }
}

/// One matched item: its captures, the text it matched (for errors) and where.
struct Item<'c, 't> {
    caps: &'c regex::Captures<'t>,
    text: &'t str,
    what: &'static str,
    pos: Position,
}

/// Makes `out` the record of one item: the header's fields, then the item's groups; an
/// error when a required group did not match.
fn item_record(
    names: &Arc<[String]>,
    header: &[String],
    items: &ItemRules,
    item: Item<'_, '_>,
    out: &mut Record,
) -> Result<bool, ParseError> {
    let caps = item.caps;
    if let Some(&missing) = items
        .required
        .iter()
        .find(|&&g| caps.get(items.groups[g]).is_none())
    {
        return Err(ParseError {
            field: Some(names[header.len() + missing].clone()),
            value: Some(item.text.to_string()),
            ..ParseError::new(format!("required field not found in this {}", item.what))
                .at(item.pos)
        });
    }
    if !Arc::ptr_eq(&out.names, names) && *out.names != **names {
        out.names = names.clone();
    }
    out.values
        .resize(header.len() + items.groups.len(), String::new());
    let values = header.iter().map(String::as_str).chain(
        items
            .groups
            .iter()
            .map(|&g| caps.get(g).map_or("", |m| m.as_str().trim())),
    );
    for (o, v) in out.values.iter_mut().zip(values) {
        o.clear();
        o.push_str(v);
    }
    out.pos = item.pos;
    Ok(true)
}

fn count_lines(s: &str) -> u64 {
    s.bytes().filter(|&b| b == b'\n').count() as u64
}

/// The byte ranges holding items: from the end of each `start` match to the start of the
/// next `end` match (or the end of the text); again from the next `start` after that.
fn find_sections(text: &str, start: Option<&Regex>, end: Option<&Regex>) -> Vec<(usize, usize)> {
    let mut sections = Vec::new();
    let mut at = 0;
    loop {
        let begin = match start {
            Some(re) => match re.find_at(text, at) {
                Some(m) => m.end(),
                None => break,
            },
            None => 0,
        };
        let stop = end.and_then(|re| re.find_at(text, begin));
        sections.push((begin, stop.map_or(text.len(), |m| m.start())));
        match stop {
            // Another section may follow, if the markers move forward.
            Some(m) if start.is_some() && m.end() > at && m.end() < text.len() => at = m.end(),
            _ => break,
        }
    }
    sections
}

#[cfg(test)]
mod across_lines_tests {
    use super::*;

    #[test]
    fn items_may_span_lines() {
        let rules = TextOptions {
            mode: TextMode::Capture,
            fields: vec![("inv".into(), vec![r"Invoice\s+(\d+)".into()])],
            items: Some(ItemsOptions {
                start: Some("Detail".into()),
                end: None,
                line: r"^(?P<name>[A-Z][^\n$]*?) *\n\$(?P<price>[0-9.]+)".into(),
                across_lines: true,
            }),
            ..Default::default()
        }
        .compile()
        .unwrap();
        let text = "Invoice 7\nDetail\nData Transfer \n$0.01 \nCharges\n$0.01\nGlacier\n$2.22\n";
        let mut r = TextReader::new(text.as_bytes(), rules);
        let mut rec = Record::default();
        let mut got = Vec::new();
        while r.read_into(&mut rec).unwrap() {
            got.push((
                rec.get("name").unwrap().to_string(),
                rec.get("price").unwrap().to_string(),
                rec.pos.line,
            ));
        }
        assert_eq!(
            got,
            vec![
                ("Data Transfer".into(), "0.01".into(), 3),
                ("Charges".into(), "0.01".into(), 5),
                ("Glacier".into(), "2.22".into(), 7)
            ]
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(text: &str, rules: &TextRules) -> Vec<Result<Record, ParseError>> {
        read_all_max(text, rules, DEFAULT_MAX_RECORD)
    }

    fn read_all_max(text: &str, rules: &TextRules, max: u64) -> Vec<Result<Record, ParseError>> {
        let mut r = TextReader::new(text.as_bytes(), rules.clone()).with_max_record(max);
        let mut rec = Record::default();
        let mut out = Vec::new();
        loop {
            match r.read_into(&mut rec) {
                Ok(true) => out.push(Ok(rec.clone())),
                Ok(false) => return out,
                Err(e) => out.push(Err(e)),
            }
            assert!(out.len() < 1000, "the reader does not end");
        }
    }

    fn field(name: &str, patterns: &[&str]) -> (String, Vec<String>) {
        (
            name.to_string(),
            patterns.iter().map(|p| p.to_string()).collect(),
        )
    }

    fn capture(
        fields: Vec<(String, Vec<String>)>,
        required: &[&str],
        items: Option<ItemsOptions>,
    ) -> TextOptions {
        TextOptions {
            mode: TextMode::Capture,
            fields,
            required: required.iter().map(|r| r.to_string()).collect(),
            items,
            ..Default::default()
        }
    }

    #[test]
    fn lines_mode() {
        let rules = TextOptions {
            line_field: "text".into(),
            ..Default::default()
        }
        .compile()
        .unwrap();
        let text = "\u{feff}first line\r\n\r\n   \n second  \nlast";
        let all = read_all(text, &rules);
        let recs: Vec<&Record> = all.iter().map(|r| r.as_ref().unwrap()).collect();
        assert_eq!(recs.len(), 3);
        assert_eq!(&*recs[0].names, &["text"]);
        assert!(Arc::ptr_eq(&recs[0].names, &recs[2].names));
        assert_eq!(recs[0].values, vec!["first line"]);
        assert_eq!(recs[1].values, vec![" second  "]);
        assert_eq!(recs[2].values, vec!["last"]);
        let p = |record, line, byte| Position { record, line, byte };
        assert_eq!(recs[0].pos, p(1, 1, 0));
        assert_eq!(recs[1].pos, p(2, 4, 21));
        assert_eq!(&text[21..22], " ");
        assert_eq!(recs[2].pos, p(3, 5, 31));
        assert!(read_all("", &rules).is_empty());
    }

    #[test]
    fn lines_mode_errors_go_on_with_the_next_line() {
        let rules = TextOptions::default().compile().unwrap();
        // A line past max_record ends the file.
        let all = read_all_max("short\nmuch too long a line\nok\n", &rules, 8);
        assert_eq!(all.len(), 2);
        let e = all[1].as_ref().unwrap_err();
        assert_eq!(
            e.to_string(),
            "record 2 (line 2, byte 6): the record is larger than max_record (8 bytes); the file is not read further (raise `[input] max_record` if records this large are expected)"
        );
        // Exactly max_record fits, with or without its line break.
        let all = read_all_max("12345678\n12345678", &rules, 8);
        assert!(all.iter().all(|r| r.is_ok()) && all.len() == 2);

        let mut r = TextReader::new(&b"a\nb\xffc\nd"[..], rules);
        let mut rec = Record::default();
        assert!(r.read_into(&mut rec).unwrap());
        let e = r.read_into(&mut rec).unwrap_err();
        assert!(e.message.contains("not valid UTF-8 (at byte 3"), "{e}");
        assert_eq!(e.pos.unwrap().line, 2);
        assert!(r.read_into(&mut rec).unwrap());
        assert_eq!(rec.values, vec!["d"]);
        assert!(!r.read_into(&mut rec).unwrap());
    }

    /// An invoice as pdftotext prints it, modelled on the QualityHosting invoice that
    /// invoice2data's tests use (../shared/corpus/pdf-invoices/QualityHosting.json): a
    /// label with its value on the next line, a second page that repeats the table header,
    /// and a German date the first date pattern does not know.
    const INVOICE: &str = "\
QualityHosting AG
Uferweg 40-42 · 63571 Gelnhausen
USt-IdNr.: DE 232 446 240

                                               Rechnung
Kundennummer          Rechnungsnummer
K-10441               30064443
Rechnungsdatum: 07.05.2014                     Seite 1 von 2

Pos  Menge  Beschreibung                                    Preis EUR
1    1,00   Small Business StandardExchange 2010            3,89
            Grundgebühr pro Einheit
            Dienst: OUDJQ_strukan
2    1,00   Small Business QualityExchange 2010             5,39
            Grundgebühr pro Einheit
3    1,00   Small Business QualityExchange 2010             5,39
                                                   Übertrag 14,67
\x0c
QualityHosting AG                                  Seite 2 von 2
Pos  Menge  Beschreibung                                    Preis EUR
4    1,00   Small Business QualityExchange 2010             5,39
5    1,00   Small Business QualityExchange 2010             5,39
6    1,00   Small Business QualityExchange 2010             5,39
7    1,00   Small Business StandardExchange 2010            3,89

                                              Zwischensumme 34,73
                                              Gesamtbetrag  34,73 EUR
Zahlbar innerhalb von 14 Tagen.
8    1,00   Not an item: after the table                 9,99
";

    fn invoice_options() -> TextOptions {
        capture(
            vec![
                field("issuer", &["QualityHosting AG"]),
                field(
                    "invoice_number",
                    &[
                        r"Rechnung Nr\.\s*(\d+)",
                        r"Rechnungsnummer\s*\n\S+\s+(?P<invoice_number>\d+)",
                    ],
                ),
                field(
                    "date",
                    &[
                        r"Datum:\s*(?P<date>\d{4}-\d{2}-\d{2})",
                        r"Rechnungsdatum:\s*(\d{2}\.\d{2}\.\d{4})",
                    ],
                ),
                field("amount", &[r"Gesamtbetrag\s+(?P<amount>[\d.]+,\d{2})"]),
                field("vat", &[r"USt-IdNr\.:\s*(DE[\d ]+\d)"]),
                field("currency", &[r"(?P<currency>EUR|USD|INR)$"]),
                field("order_id", &[r"Bestellung:\s*(\S+)"]),
            ],
            &["invoice_number", "date", "amount", "price"],
            Some(ItemsOptions {
                start: Some(r"Pos\s+Menge\s+Beschreibung.*".into()),
                end: Some(r"Übertrag|Zwischensumme".into()),
                line: r"^(?P<pos>\d+)\s+(?P<qty>\d+,\d+)\s+(?P<desc>.+?)\s+(?P<price>\d+,\d{2})$"
                    .into(),
                across_lines: false,
            }),
        )
    }

    #[test]
    fn invoice_header_fields_and_line_items() {
        let rules = invoice_options().compile().unwrap();
        let all = read_all(INVOICE, &rules);
        let recs: Vec<&Record> = all.iter().map(|r| r.as_ref().unwrap()).collect();
        assert_eq!(recs.len(), 7, "items of both pages, none after the table");
        assert_eq!(
            &*recs[0].names,
            &[
                "issuer",
                "invoice_number",
                "date",
                "amount",
                "vat",
                "currency",
                "order_id",
                "pos",
                "qty",
                "desc",
                "price"
            ]
        );
        let head = [
            "QualityHosting AG",
            "30064443",
            "07.05.2014",
            "34,73",
            "DE 232 446 240",
            "EUR",
            "",
        ];
        let mut first: Vec<&str> = head.to_vec();
        first.extend(["1", "1,00", "Small Business StandardExchange 2010", "3,89"]);
        assert_eq!(recs[0].values, first);
        let mut last: Vec<&str> = head.to_vec();
        last.extend(["7", "1,00", "Small Business StandardExchange 2010", "3,89"]);
        assert_eq!(recs[6].values, last);
        let positions: Vec<&str> = recs.iter().map(|r| r.get("pos").unwrap()).collect();
        assert_eq!(positions, ["1", "2", "3", "4", "5", "6", "7"]);
        // Positions are those of the item lines.
        for (i, r) in recs.iter().enumerate() {
            assert_eq!(r.pos.record, i as u64 + 1);
            let line = INVOICE.lines().nth(r.pos.line as usize - 1).unwrap();
            assert!(line.starts_with(r.get("pos").unwrap()), "{line}");
            assert!(INVOICE[r.pos.byte as usize..].starts_with(line));
        }
        assert_eq!(recs[0].pos.line, 11);
        assert_eq!(recs[3].pos.line, 21);
        let total: f64 = recs
            .iter()
            .map(|r| {
                r.get("price")
                    .unwrap()
                    .replace(',', ".")
                    .parse::<f64>()
                    .unwrap()
            })
            .sum();
        assert!((total - 34.73).abs() < 1e-9);
    }

    #[test]
    fn missing_required_fields_are_named() {
        let rules = invoice_options().compile().unwrap();
        let text = INVOICE
            .replace("Gesamtbetrag", "Total")
            .replace("Rechnungsdatum", "Datum");
        let all = read_all(&text, &rules);
        assert_eq!(all.len(), 1, "the reading ends");
        let e = all[0].as_ref().unwrap_err();
        assert_eq!(e.field.as_deref(), Some("date"));
        assert_eq!(
            e.to_string(),
            "record 1 (line 1, byte 0): field `date`: required field not found: none of its 2 pattern(s) matches the text (also missing: `amount`)"
        );
        // A missing optional field is empty; without items the text is one record.
        let rules = capture(
            vec![
                field("invoice_number", &[r"Rechnungsnummer\s*\n\S+\s+(\d+)"]),
                field("order_id", &[r"Bestellung:\s*(\S+)"]),
            ],
            &["invoice_number"],
            None,
        )
        .compile()
        .unwrap();
        let all = read_all(INVOICE, &rules);
        assert_eq!(all.len(), 1);
        let rec = all[0].as_ref().unwrap();
        assert_eq!(rec.values, vec!["30064443", ""]);
        assert_eq!(rec.pos.record, 1);
        // A required item field missing fails that item only.
        let mut o = invoice_options();
        o.items.as_mut().unwrap().line =
            r"^(?P<pos>\d+)\s+(?P<qty>\d+,\d+)\s+(?P<desc>.+?)(?:\s+(?P<price>\d+,\d{2}))?$".into();
        let text = INVOICE.replace(
            "3    1,00   Small Business QualityExchange 2010             5,39",
            "3    1,00   Small Business QualityExchange 2010",
        );
        let all = read_all(&text, &o.compile().unwrap());
        assert_eq!(all.len(), 7);
        let e = all[2].as_ref().unwrap_err();
        assert_eq!(e.field.as_deref(), Some("price"));
        assert_eq!(e.pos.unwrap().line, 16);
        assert!(all[3].is_ok());
    }

    #[test]
    fn which_group_is_the_value() {
        let text = "Invoice no: A-17 (ref R9)\nDate\n  2014-08-03\nTotal: n/a\nTotal: 4.11 USD\n";
        let rules = capture(
            vec![
                // The group named like the field, not the first group.
                field("number", &[r"Invoice no: (\S+) \(ref (?P<number>\w+)\)"]),
                // The first group.
                field("invoice", &[r"Invoice no: (\S+) \(ref (\w+)\)"]),
                // The whole match (trimmed).
                field("ref", &[r" R\d+"]),
                // A label and its value on the next line.
                field("date", &[r"^Date\s*$\s*(\d{4}-\d{2}-\d{2})"]),
                // The first pattern matches without its group: the next one is tried.
                field(
                    "total",
                    &[r"Total: (?:(?P<total>\d+\.\d+)|n/a)", r"Total: (\d+\.\d+)"],
                ),
                field("currency", &[r"\d (EUR|USD)$"]),
            ],
            &[],
            None,
        )
        .compile()
        .unwrap();
        let all = read_all(text, &rules);
        assert_eq!(
            all[0].as_ref().unwrap().values,
            vec!["R9", "A-17", "R9", "2014-08-03", "4.11", "USD"]
        );
        // CRLF text: `$` still ends a line.
        let all = read_all(&text.replace('\n', "\r\n"), &rules);
        assert_eq!(all[0].as_ref().unwrap().values[5], "USD");
    }

    #[test]
    fn items_without_markers_and_missing_markers() {
        let text = "Order 55\nA 2\nB 3\nnot an item\n";
        let opts = |start: Option<&str>| {
            capture(
                vec![field("order", &[r"Order (\d+)"])],
                &[],
                Some(ItemsOptions {
                    start: start.map(str::to_string),
                    end: None,
                    line: r"^(?P<sku>[A-Z]) (?P<qty>\d+)$".into(),
                    across_lines: false,
                }),
            )
            .compile()
            .unwrap()
        };
        let all = read_all(text, &opts(None));
        let values: Vec<Vec<String>> = all.into_iter().map(|r| r.unwrap().values).collect();
        assert_eq!(values, vec![vec!["55", "A", "2"], vec!["55", "B", "3"]]);
        let all = read_all(text, &opts(Some("Positions")));
        assert_eq!(all.len(), 1);
        assert!(
            all[0]
                .as_ref()
                .unwrap_err()
                .message
                .contains("start marker of the items is not in the text")
        );
        let all = read_all("Order 55\nnothing here\n", &opts(None));
        assert_eq!(all.len(), 1);
        assert!(
            all[0]
                .as_ref()
                .unwrap_err()
                .message
                .contains("no items found")
        );
    }

    #[test]
    fn capture_reads_at_most_max_record() {
        let o = capture(vec![field("x", &["x"])], &[], None);
        let rules = o.compile().unwrap();
        let all = read_all_max("x123456789", &rules, 10);
        assert!(all[0].is_ok());
        let all = read_all_max("x1234567890", &rules, 10);
        assert_eq!(all.len(), 1);
        let e = all[0].as_ref().unwrap_err();
        assert!(e.is_too_large(), "{e}");
        assert!(e.message.contains("max_record (10 bytes)"), "{e}");
        let mut r = TextReader::new(&b"ab\ncd\xff"[..], rules);
        let e = r.read_into(&mut Record::default()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "record 1 (line 2, byte 5): the text is not valid UTF-8 at byte 5"
        );
    }

    #[test]
    fn compile_errors_name_the_field_and_pattern() {
        let e = capture(vec![field("date", &[r"ok", r"(\d+"])], &[], None)
            .compile()
            .unwrap_err();
        assert!(e.starts_with("field `date`: pattern \"(\\\\d+\": "), "{e}");
        let e = capture(vec![field("a", &["x"]), field("a", &["y"])], &[], None)
            .compile()
            .unwrap_err();
        assert!(e.contains("defined twice"), "{e}");
        let e = capture(vec![field("a", &[])], &[], None)
            .compile()
            .unwrap_err();
        assert!(e.contains("at least one pattern"), "{e}");
        let e = capture(vec![field("a", &["x"])], &["b"], None)
            .compile()
            .unwrap_err();
        assert!(e.contains("required `b`"), "{e}");
        let items = |line: &str| {
            Some(ItemsOptions {
                line: line.into(),
                ..Default::default()
            })
        };
        let e = capture(vec![field("a", &["x"])], &[], items(r"(\d+)"))
            .compile()
            .unwrap_err();
        assert!(e.contains("name the item's fields"), "{e}");
        let e = capture(vec![field("a", &["x"])], &[], items(r"(?P<a>\d+)"))
            .compile()
            .unwrap_err();
        assert!(e.contains("the group `a` has the name of a field"), "{e}");
        let mut o = capture(vec![], &[], items(r"(?P<a>\d+)"));
        o.items.as_mut().unwrap().end = Some("[".into());
        assert!(o.compile().unwrap_err().starts_with("items end: pattern"));
        assert!(capture(vec![], &[], None).compile().is_err());
        let lines_with_fields = TextOptions {
            fields: vec![field("a", &["x"])],
            ..Default::default()
        };
        assert!(lines_with_fields.compile().is_err());
    }
}
