//! The record pipeline of one file: decode, read records, transform, and write every
//! record-format output, in one streaming pass. Outputs are temporary files (see
//! [`crate::outputs::folder::TempOutput`]); nothing here makes anything visible.
//!
//! A bad record fails the whole file (`on_error = "fail"`, the default) with a report that
//! names the record, line, byte offset, field and value; or, with `on_error = "skip"`, goes
//! to a rejects file beside the first output (JSON Lines: the position, the reason and the
//! record's fields) while the good records are written.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::formats::csv::{CsvReader, CsvWriter};
use crate::formats::encoding::{DecodeReader, EncodeWriter};
use crate::formats::fixed::{FixedReader, FixedWriter};
use crate::formats::json::JsonWriter;
use crate::formats::json_in::JsonReader;
use crate::formats::template_out::TemplateWriter;
use crate::formats::text::TextReader;
use crate::formats::xml::{XmlPaths, XmlReader};
use crate::formats::xml_out::XmlWriter;
use crate::formats::{ParseError, Record};
use crate::job::Job;
use crate::job::data::{InputFormat, OnError, OutputData, OutputFormat};
use crate::outputs::folder::TempOutput;
use crate::transform::{self, Transformer};

/// Hashes what is read through it: the original's sha256 without a second pass.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// Reads what is left (so the hash covers the whole file) and returns sha256 and size.
    pub fn finish(mut self) -> io::Result<(String, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((hex::encode(self.hasher.finalize()), self.bytes))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// One record-format output being written into `W` (a temporary file, or memory for a dry
/// run).
#[allow(clippy::large_enum_variant)] // one per output and file: boxing buys nothing
enum Writer<W: io::Write> {
    Csv(CsvWriter<EncodeWriter<W>>),
    Json(JsonWriter<EncodeWriter<W>>),
    Fixed(FixedWriter<EncodeWriter<W>>),
    Xml(XmlWriter<EncodeWriter<W>>),
    Text(TemplateWriter<EncodeWriter<W>>),
}

impl<W: io::Write> Writer<W> {
    fn new(
        temp: W,
        data: &OutputData,
        meta: &BTreeMap<String, String>,
    ) -> Result<Writer<W>, ParseError> {
        let sink = EncodeWriter::new(temp, data.encoding, data.replace);
        Ok(match &data.format {
            OutputFormat::Csv(o) => Writer::Csv(CsvWriter::new(sink, o)),
            OutputFormat::Json(style) => Writer::Json(JsonWriter::new(sink, *style)),
            OutputFormat::Fixed(l) => Writer::Fixed(FixedWriter::new(sink, l.clone(), data.crlf)),
            OutputFormat::Xml(o) => Writer::Xml(
                XmlWriter::new(sink, o)
                    .map_err(ParseError::new)?
                    .with_encoding(data.encoding.name()),
            ),
            OutputFormat::Text(o) => {
                Writer::Text(TemplateWriter::new(sink, o, meta.clone()).map_err(ParseError::new)?)
            }
            OutputFormat::Original => unreachable!("original outputs are copied, not written"),
        })
    }

    fn write(&mut self, rec: &Record) -> Result<(), ParseError> {
        let io = |e: io::Error| {
            let message = match e
                .get_ref()
                .and_then(|i| i.downcast_ref::<crate::formats::encoding::EncodeError>())
            {
                Some(enc) => enc.to_string(),
                None => format!("cannot write: {e}"),
            };
            ParseError {
                pos: Some(rec.pos),
                ..ParseError::new(message)
            }
        };
        match self {
            Writer::Csv(w) => w.write(rec).map_err(io),
            Writer::Json(w) => w.write(rec).map_err(io),
            Writer::Fixed(w) => w.write(rec),
            Writer::Xml(w) => w.write(rec),
            Writer::Text(w) => w.write(rec),
        }
    }

    fn finish(self) -> io::Result<W> {
        let sink = match self {
            Writer::Csv(w) => w.finish()?,
            Writer::Json(w) => w.finish()?,
            Writer::Fixed(w) => w.finish()?,
            Writer::Xml(w) => w.finish()?,
            Writer::Text(w) => w.finish()?,
        };
        sink.finish()
    }
}

/// What the pass did, for the journal and the log.
#[derive(Debug, Default)]
pub struct Stats {
    pub read: u64,
    pub written: u64,
    pub filtered: u64,
    pub rejected: u64,
}

/// Where rejected records go.
pub struct Rejects<'a> {
    pub path: &'a Path,
    pub file: Option<TempOutput>,
}

/// What a pass produced: the outputs (to be fsynced and committed), the original's sha256
/// and size, and what was done.
pub struct Converted {
    pub temps: Vec<TempOutput>,
    /// Split outputs: output index, final path, temporary file.
    pub split: Vec<(u32, PathBuf, TempOutput)>,
    pub hash: (String, u64),
    pub stats: Stats,
}

/// Reads `src` as the job's input and writes the records to `outputs` (temporary files,
/// with their format).
pub fn run(
    job: &Job,
    src: &Path,
    outputs: Vec<(TempOutput, &OutputData)>,
    mut meta: BTreeMap<String, String>,
    rejects: &mut Rejects<'_>,
    mut split: Option<Split<'_>>,
) -> Result<Converted, ParseError> {
    let input = job.input.as_ref().expect("a record pipeline has an input");
    let file = std::fs::File::open(src)
        .map_err(|e| ParseError::new(format!("cannot open the file: {e}")))?;
    let mut hashing = HashingReader::new(file);
    if matches!(input.format, InputFormat::Pdf(_)) || input.attachment.is_some() {
        crate::formats::pdf::check_size(src, &job.pdf).map_err(ParseError::new)?;
    }
    let from_pdf = pdf_source(job, input, &mut hashing, &mut meta)?;
    let lookups = transform::load_lookups(&job.transform).map_err(ParseError::new)?;
    let env = transform::environment(&lookups);
    let mut transformer =
        Transformer::new(&env, &job.transform, meta.clone()).map_err(ParseError::new)?;
    let mut writers = Vec::new();
    for (t, d) in outputs {
        writers.push(Writer::new(t, d, &meta)?);
    }
    // With a split: one set of writers per value of the split field.
    let mut groups: HashMap<String, usize> = HashMap::new();
    let mut group_writers: Vec<Vec<(u32, PathBuf, Writer<TempOutput>)>> = Vec::new();
    let mut stats = Stats::default();
    {
        let raw: Box<dyn Read + '_> = match from_pdf {
            Some(bytes) => Box::new(io::Cursor::new(bytes)),
            None => Box::new(&mut hashing),
        };
        let decoded = BufReader::with_capacity(
            256 * 1024,
            DecodeReader::new(raw, input.encoding, input.replace),
        );
        let mut reader = Reader::open(input, decoded)?;
        let mut rec = Record::default();
        loop {
            let step = match reader.read_into(&mut rec) {
                Ok(false) => break,
                Ok(true) => {
                    stats.read += 1;
                    transform_record(&mut rec, &mut transformer, input.on_error)
                }
                Err(e) => Err(e),
            };
            let written = step.and_then(|kept| {
                let Some(original) = kept else {
                    stats.filtered += 1;
                    return Ok(());
                };
                let targets: Vec<&mut Writer<TempOutput>> = match split.as_mut() {
                    None => writers.iter_mut().collect(),
                    Some(sp) => {
                        let g = group_of(sp, &rec, &mut groups, &mut group_writers, &meta)
                            .map_err(|e| Bad::Skip(e, original.clone()))?;
                        group_writers[g].iter_mut().map(|(_, _, w)| w).collect()
                    }
                };
                for w in targets {
                    w.write(&rec).map_err(|e| Bad::Skip(e, original.clone()))?;
                }
                stats.written += 1;
                Ok(())
            });
            match written {
                Ok(()) => {}
                Err(Bad::Skip(e, data)) if input.on_error == OnError::Skip => {
                    stats.rejected += 1;
                    reject(rejects, &e, data.as_deref()).map_err(|io| {
                        ParseError::new(format!("cannot write the rejects file: {io}"))
                    })?;
                }
                Err(Bad::Skip(e, _) | Bad::Fatal(e)) => return Err(e),
            }
        }
    }
    let hash = hashing
        .finish()
        .map_err(|e| ParseError::new(format!("cannot read the file: {e}")))?;
    let finish = |w: Writer<TempOutput>| {
        w.finish()
            .map_err(|e| ParseError::new(format!("cannot write an output: {e}")))
    };
    let mut temps = Vec::new();
    for w in writers {
        temps.push(finish(w)?);
    }
    let mut split_outputs = Vec::new();
    for group in group_writers {
        for (idx, final_path, w) in group {
            split_outputs.push((idx, final_path, finish(w)?));
        }
    }
    Ok(Converted {
        temps,
        hash,
        stats,
        split: split_outputs,
    })
}

/// With PDF input (`format = "pdf"`, or `attachment`): reads the whole file (within
/// `pdf.max_size`) and returns the bytes to read records from, the PDF's text (UTF-8) or
/// an embedded file, adding the PDF's facts to `meta`. `None`: read the file itself.
fn pdf_source(
    job: &Job,
    input: &crate::job::data::Input,
    file: &mut impl Read,
    meta: &mut BTreeMap<String, String>,
) -> Result<Option<Vec<u8>>, ParseError> {
    use crate::formats::pdf;
    let want = match (&input.format, &input.attachment) {
        (InputFormat::Pdf(_), _) => pdf::Want::Text,
        (_, Some((pattern, m))) => pdf::Want::Attachment(m.clone(), pattern.clone()),
        _ => return Ok(None),
    };
    let bytes = pdf::read_limited(file, &job.pdf).map_err(ParseError::new)?;
    let (data, facts) = pdf::read_for_records(bytes, job.pdf, want).map_err(ParseError::new)?;
    meta.extend(facts);
    Ok(Some(data))
}

/// Names a new group's file for an output: its final and its temporary path.
pub type OpenSplit<'a> = dyn FnMut(u32, &Record) -> Result<(PathBuf, PathBuf), ParseError> + 'a;

/// How to split: the field, the record outputs, and how to name a new group's file.
pub struct Split<'a> {
    pub field: &'a str,
    pub outputs: Vec<(u32, &'a OutputData)>,
    /// Given an output's index and the first record of a group: its final path and the
    /// temporary path to write it under.
    pub open: &'a mut OpenSplit<'a>,
}

/// How many files one input may be split into: each is an open file until the end.
pub const MAX_GROUPS: usize = 1000;

fn group_of(
    sp: &mut Split<'_>,
    rec: &Record,
    groups: &mut HashMap<String, usize>,
    group_writers: &mut Vec<Vec<(u32, PathBuf, Writer<TempOutput>)>>,
    meta: &BTreeMap<String, String>,
) -> Result<usize, ParseError> {
    let key = rec.get(sp.field).ok_or_else(|| ParseError {
        pos: Some(rec.pos),
        field: Some(sp.field.to_string()),
        ..ParseError::new("the record has no such field to split by")
    })?;
    if let Some(&g) = groups.get(key) {
        return Ok(g);
    }
    if groups.len() >= MAX_GROUPS {
        return Err(ParseError {
            pos: Some(rec.pos),
            field: Some(sp.field.to_string()),
            value: Some(key.to_string()),
            ..ParseError::new(format!(
                "more than {MAX_GROUPS} different values to split by"
            ))
        });
    }
    let mut ws = Vec::new();
    for (idx, data) in &sp.outputs {
        let (final_path, temp) = (sp.open)(*idx, rec)?;
        let t = TempOutput::create(&temp)
            .map_err(|e| ParseError::new(format!("cannot write {}: {e}", temp.display())))?;
        ws.push((*idx, final_path, Writer::new(t, data, meta)?));
    }
    group_writers.push(ws);
    groups.insert(key.to_string(), group_writers.len() - 1);
    Ok(group_writers.len() - 1)
}

/// A record that went wrong: one that can be skipped (with what is known of it), or an
/// error after which the file cannot be read further.
enum Bad {
    Skip(ParseError, Option<Box<Record>>),
    Fatal(ParseError),
}

/// Transforms one record. `Ok(None)`: the filter dropped it; `Ok(Some(original))`: keep it
/// (the original is kept for the rejects file when bad records are skipped).
fn transform_record(
    rec: &mut Record,
    transformer: &mut Transformer<'_>,
    on_error: OnError,
) -> Result<Option<Option<Box<Record>>>, Bad> {
    let original = (on_error == OnError::Skip).then(|| Box::new(rec.clone()));
    match transformer.apply(rec) {
        Ok(true) => Ok(Some(original)),
        Ok(false) => Ok(None),
        Err(e) => Err(Bad::Skip(e, original)),
    }
}

enum Reader<R: io::BufRead> {
    Csv(Box<CsvReader<R>>),
    Xml(Box<XmlReader<R>>),
    Fixed(Box<FixedReader<R>>),
    Json(Box<JsonReader<R>>),
    Text(Box<TextReader<R>>),
}

impl<R: io::BufRead> Reader<R> {
    fn open(input: &crate::job::data::Input, decoded: R) -> Result<Self, ParseError> {
        Ok(match &input.format {
            InputFormat::Csv(o) => Reader::Csv(Box::new(CsvReader::new(decoded, o.clone())?)),
            InputFormat::Xml(o) => Reader::Xml(Box::new(XmlReader::new(
                decoded,
                XmlPaths::compile(o).map_err(ParseError::new)?,
            ))),
            InputFormat::Fixed(l) => Reader::Fixed(Box::new(FixedReader::new(decoded, l.clone()))),
            InputFormat::Json(o) => Reader::Json(Box::new(JsonReader::new(decoded, o.clone()))),
            InputFormat::Text(rules) | InputFormat::Pdf(rules) => {
                Reader::Text(Box::new(TextReader::new(decoded, rules.clone())))
            }
        })
    }
}

impl<R: io::BufRead> Reader<R> {
    fn read_into(&mut self, rec: &mut Record) -> Result<bool, Bad> {
        let (r, line_based) = match self {
            Reader::Csv(r) => (r.read_into(rec), true),
            Reader::Xml(r) => (r.read_into(rec), false),
            Reader::Fixed(r) => (r.read_into(rec), true),
            Reader::Json(r) => (r.read_into(rec), true),
            Reader::Text(r) => (r.read_into(rec), true),
        };
        // In line-based formats a bad record (a wrong field count, a short line) can be
        // skipped and reading goes on; undecodable bytes and malformed XML end the file.
        r.map_err(|e| {
            if line_based && e.pos.is_some() && !e.message.contains("not valid") {
                Bad::Skip(e, None)
            } else {
                Bad::Fatal(e)
            }
        })
    }
}

fn reject(rejects: &mut Rejects<'_>, e: &ParseError, rec: Option<&Record>) -> io::Result<()> {
    if rejects.file.is_none() {
        rejects.file = Some(TempOutput::create(rejects.path)?);
    }
    let f = rejects.file.as_mut().expect("just created");
    let mut fields = serde_json::Map::new();
    for (k, v) in rec.iter().flat_map(|r| r.fields()) {
        fields.insert(k.to_string(), v.into());
    }
    let pos = e.pos.or(rec.map(|r| r.pos)).unwrap_or_default();
    let line = serde_json::json!({
        "record": pos.record,
        "line": pos.line,
        "byte": pos.byte,
        "field": e.field,
        "value": e.value,
        "reason": e.message,
        "data": fields,
    });
    serde_json::to_writer(&mut *f, &line)?;
    f.write_all(b"\n")
}

/// What a dry run shows of the first records of a file.
pub struct Preview {
    pub parsed: Vec<Record>,
    pub transformed: Vec<Result<Option<Record>, ParseError>>,
    /// Each record output's text for those records (decoded for display).
    pub outputs: Vec<Result<String, ParseError>>,
    /// Reading stopped at this error.
    pub error: Option<ParseError>,
}

/// Reads the first `limit` records of `src` and shows what the job makes of them, writing
/// nothing anywhere.
pub fn preview(
    job: &Job,
    src: &Path,
    meta: BTreeMap<String, String>,
    limit: usize,
) -> Result<Preview, ParseError> {
    let input = job
        .input
        .as_ref()
        .ok_or_else(|| ParseError::new("the job has no [input]"))?;
    let mut file = std::fs::File::open(src)
        .map_err(|e| ParseError::new(format!("cannot open the file: {e}")))?;
    let mut meta = meta;
    let raw: Box<dyn Read> = match pdf_source(job, input, &mut file, &mut meta)? {
        Some(bytes) => Box::new(io::Cursor::new(bytes)),
        None => Box::new(file),
    };
    let decoded = BufReader::new(DecodeReader::new(raw, input.encoding, input.replace));
    let mut reader = Reader::open(input, decoded)?;
    let lookups = transform::load_lookups(&job.transform).map_err(ParseError::new)?;
    let env = transform::environment(&lookups);
    let mut transformer =
        Transformer::new(&env, &job.transform, meta.clone()).map_err(ParseError::new)?;
    let mut p = Preview {
        parsed: Vec::new(),
        transformed: Vec::new(),
        outputs: Vec::new(),
        error: None,
    };
    let mut rec = Record::default();
    while p.parsed.len() < limit {
        match reader.read_into(&mut rec) {
            Ok(false) => break,
            Ok(true) => {
                p.parsed.push(rec.clone());
                let mut t = rec.clone();
                p.transformed
                    .push(transformer.apply(&mut t).map(|keep| keep.then_some(t)));
            }
            Err(Bad::Skip(e, _) | Bad::Fatal(e)) => {
                p.error = Some(e);
                break;
            }
        }
    }
    for o in job
        .outputs
        .iter()
        .filter(|o| !matches!(o.data.format, OutputFormat::Original))
    {
        let rendered = (|| {
            let mut w = Writer::new(Vec::new(), &o.data, &meta)?;
            for r in p.transformed.iter().flatten().flatten() {
                w.write(r)?;
            }
            let bytes = w.finish().map_err(|e| ParseError::new(e.to_string()))?;
            Ok(o.data.encoding.decode(&bytes).0.into_owned())
        })();
        p.outputs.push(rendered);
    }
    Ok(p)
}
