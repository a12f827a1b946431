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

use crate::hashing::Hasher;

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
    hasher: Hasher,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Hasher::new(),
        }
    }

    /// Reads what is left (so the hash covers the whole file) and returns sha256 and size.
    pub fn finish(mut self) -> io::Result<(String, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        self.hasher
            .finish()
            .ok_or_else(|| io::Error::other("hashing failed"))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
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
    Database(crate::outputs::database::DbWriter<W>),
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
            OutputFormat::Database(db, Some(described)) => {
                Writer::Database(crate::outputs::database::DbWriter::new(
                    sink.finish().map_err(|e| ParseError::new(e.to_string()))?,
                    db.clone(),
                    described.clone(),
                ))
            }
            OutputFormat::Database(_, None) => {
                return Err(ParseError::new(
                    "the database output's table was not described before its records",
                ));
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
            Writer::Database(w) => w.write(rec),
        }
    }

    fn finish(self) -> io::Result<W> {
        let sink = match self {
            Writer::Csv(w) => w.finish()?,
            Writer::Json(w) => w.finish()?,
            Writer::Fixed(w) => w.finish()?,
            Writer::Xml(w) => w.finish()?,
            Writer::Text(w) => w.finish()?,
            Writer::Database(w) => return w.finish(),
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
    /// In a combined run's rejects file: the original each rejected record came from.
    pub original: Option<String>,
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

/// Records per batch handed from the reading side to the writing side, and the value
/// bytes after which a batch is handed over early (big records).
const BATCH_RECORDS: usize = 512;
const BATCH_BYTES: usize = 1 << 20;
/// Batches in flight between the two sides: with the batches being filled and written,
/// memory is bounded by about (this + 2) batches whatever the file's size.
const BATCHES_IN_FLIGHT: usize = 4;
/// Files from this size up are read on a thread of their own while this one writes.
const THREADED_FROM: u64 = 1 << 20;

/// Records read, handed from the reading side to the writing side.
#[derive(Default)]
struct Batch {
    /// `recs[..len]` are the records read.
    recs: Vec<Record>,
    len: usize,
    /// Records that could not be read or filtered and can be skipped: (index of the record
    /// they came before, error, the record as read when known).
    bad: Vec<(usize, ParseError, Option<Box<Record>>)>,
    /// Records the filter dropped.
    filtered: u64,
    /// Set on the last batch: the original's sha256 and size, or the error that ended it.
    end: Option<Result<(String, u64), ParseError>>,
}

/// Reads `src` as the job's input and writes the records to `outputs` (temporary files,
/// with their format).
///
/// Big files are read, decoded, parsed and filtered on a second thread while this one
/// computes the fields and formats, encodes, hashes and writes; batches of records go
/// between the two through a bounded channel and come back to be refilled, so memory
/// stays flat.
pub fn run(
    job: &Job,
    file: std::fs::File,
    outputs: Vec<(TempOutput, &OutputData)>,
    meta: BTreeMap<String, String>,
    rejects: &mut Rejects<'_>,
    split: Option<Split<'_>>,
) -> Result<Converted, ParseError> {
    let mut writers = Vec::new();
    for (t, d) in outputs {
        writers.push(Writer::new(t, d, &meta)?);
    }
    let fed = feed(job, file, meta, writers, rejects, split)?;
    fed.finish()
}

/// A combined run's record outputs (`combine = true`, docs/schedules.md "Combined runs"):
/// the writers outlive one original, so a header is written once and a trailer counts the
/// whole run. Each original is streamed through the job's transform with its own
/// placeholders ([`Combined::feed`]).
pub struct Combined {
    /// `None` after an original failed: the run's temporaries are then written again
    /// without it, and the rest of this pass only checks ([`Combined::feed`] writes nothing).
    writers: Option<Vec<Writer<TempOutput>>>,
    pub stats: Stats,
}

impl Combined {
    /// The run's writers, with the run's placeholders (`meta`) for headers and trailers.
    pub fn new(
        outputs: Vec<(TempOutput, &OutputData)>,
        meta: &BTreeMap<String, String>,
    ) -> Result<Combined, ParseError> {
        let mut writers = Vec::new();
        for (t, d) in outputs {
            writers.push(Writer::new(t, d, meta)?);
        }
        Ok(Combined {
            writers: Some(writers),
            stats: Stats::default(),
        })
    }

    /// Streams one original (`meta`: its placeholders) into the run's outputs, or, once an
    /// original has failed, only reads and transforms it (to find every bad original of the
    /// run in one pass). Returns its sha256 and size. On an error the writers are dropped.
    pub fn feed(
        &mut self,
        job: &Job,
        file: std::fs::File,
        meta: BTreeMap<String, String>,
        rejects: &mut Rejects<'_>,
    ) -> Result<(String, u64), ParseError> {
        let writing = self.writers.is_some();
        let writers = self.writers.take().unwrap_or_default();
        let fed = feed(job, file, meta, writers, rejects, None)?;
        self.stats.read += fed.stats.read;
        self.stats.written += fed.stats.written;
        self.stats.filtered += fed.stats.filtered;
        self.stats.rejected += fed.stats.rejected;
        if writing {
            self.writers = Some(fed.writers);
        }
        Ok(fed.hash)
    }

    /// Whether every original so far was written (no original failed).
    pub fn is_whole(&self) -> bool {
        self.writers.is_some()
    }

    /// Ends the outputs (trailers) and returns the temporary files, to be fsynced.
    pub fn finish(self) -> Result<Vec<TempOutput>, ParseError> {
        let mut temps = Vec::new();
        for w in self.writers.unwrap_or_default() {
            temps.push(
                w.finish()
                    .map_err(|e| ParseError::new(format!("cannot write an output: {e}")))?,
            );
        }
        Ok(temps)
    }
}

/// What one original's pass left: its sha256 and size, the writers (still open: a
/// combined run's go on with the next original), a split's group writers, and the counts.
struct Fed {
    hash: (String, u64),
    writers: Vec<Writer<TempOutput>>,
    group_writers: Vec<Vec<(u32, PathBuf, Writer<TempOutput>)>>,
    stats: Stats,
}

/// Streams one original's records through the job's transform into `writers`.
fn feed(
    job: &Job,
    file: std::fs::File,
    mut meta: BTreeMap<String, String>,
    writers: Vec<Writer<TempOutput>>,
    rejects: &mut Rejects<'_>,
    split: Option<Split<'_>>,
) -> Result<Fed, ParseError> {
    let input = job.input.as_ref().expect("a record pipeline has an input");
    let threaded = file.metadata().is_ok_and(|m| m.len() >= THREADED_FROM);
    if matches!(input.format, InputFormat::Pdf(_)) || input.attachment.is_some() {
        crate::formats::pdf::check_file(&file, &job.pdf).map_err(ParseError::new)?;
    }
    let mut hashing = HashingReader::new(file);
    let from_pdf = pdf_source(job, input, &mut hashing, &mut meta)?;
    let lookups = transform::load_lookups(&job.transform).map_err(ParseError::new)?;
    let env = transform::environment(&lookups);
    // The filter runs on the reading side, the fields on the writing side.
    let (filter_spec, fields_spec) = job.transform.split_filter();
    let filter = Transformer::new(&env, &filter_spec, meta.clone()).map_err(ParseError::new)?;
    let transformer =
        Transformer::new(&env, &fields_spec, meta.clone()).map_err(ParseError::new)?;
    let mut sink = Sink {
        on_error: input.on_error,
        transformer,
        writers,
        split,
        groups: HashMap::new(),
        group_writers: Vec::new(),
        stats: Stats::default(),
        rejects,
        meta: &meta,
    };
    let hash = if threaded {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Batch>(BATCHES_IN_FLIGHT);
        let (back_tx, back_rx) = std::sync::mpsc::channel::<Batch>();
        std::thread::scope(|s| {
            let reading = std::thread::Builder::new()
                .name("ferry-read".into())
                .spawn_scoped(s, move || {
                    produce(input, hashing, from_pdf, filter, &mut |b| {
                        tx.send(b).ok()?;
                        Some(back_rx.try_recv().unwrap_or_default())
                    })
                });
            if let Err(e) = reading {
                return Err(ParseError::new(format!(
                    "cannot start a reading thread: {e}"
                )));
            }
            // When this side stops early (an error), `rx` is dropped and the reading side
            // stops at its next hand-over.
            let mut hash = None;
            for mut b in rx {
                sink.take(&mut b)?;
                if let Some(end) = b.end.take() {
                    hash = Some(end?);
                    break;
                }
                let _ = back_tx.send(b);
            }
            hash.ok_or_else(|| ParseError::new("the reading side stopped without a result"))
        })?
    } else {
        let mut failed = None;
        let mut hash = None;
        produce(input, hashing, from_pdf, filter, &mut |mut b| {
            if let Err(e) = sink.take(&mut b) {
                failed = Some(e);
                return None;
            }
            if let Some(end) = b.end.take() {
                hash = Some(end);
                return None;
            }
            Some(b)
        });
        if let Some(e) = failed {
            return Err(e);
        }
        hash.ok_or_else(|| ParseError::new("the reading side stopped without a result"))??
    };
    Ok(Fed {
        hash,
        writers: sink.writers,
        group_writers: sink.group_writers,
        stats: sink.stats,
    })
}

/// The reading side: reads, decodes and parses the file in batches handed to `emit`,
/// which gives back a batch to refill or `None` to stop. The last batch carries the
/// original's hash, or the error that ended reading.
fn produce(
    input: &crate::job::data::Input,
    mut hashing: HashingReader<std::fs::File>,
    from_pdf: Option<Vec<u8>>,
    mut filter: Transformer<'_>,
    emit: &mut dyn FnMut(Batch) -> Option<Batch>,
) {
    let mut batch = Batch::default();
    // `Ok(false)`: the writing side stopped; nothing more to hand over.
    let ended = (|| -> Result<bool, ParseError> {
        // With PDF input, records come from the text or attachment taken out of it (the
        // file itself was read, and hashed, whole).
        let raw: Box<dyn Read + '_> = match from_pdf {
            Some(bytes) => Box::new(io::Cursor::new(bytes)),
            None => Box::new(&mut hashing),
        };
        let decoded = BufReader::with_capacity(
            256 * 1024,
            DecodeReader::new(raw, input.encoding, input.replace),
        );
        let mut reader = Reader::open(input, decoded)?;
        let mut bytes = 0;
        loop {
            if batch.len == batch.recs.len() {
                batch.recs.push(Record::default());
            }
            let rec = &mut batch.recs[batch.len];
            let step = match reader.read_into(rec) {
                Ok(false) => return Ok(true),
                Ok(true) => transform_record(rec, &mut filter, input.on_error),
                Err(e) => Err(e),
            };
            match step {
                Ok(Some(_)) => {
                    bytes += rec.values.iter().map(String::len).sum::<usize>();
                    batch.len += 1;
                }
                Ok(None) => batch.filtered += 1,
                Err(Bad::Skip(e, data)) if input.on_error == OnError::Skip => {
                    batch.bad.push((batch.len, e, data));
                }
                Err(Bad::Skip(e, _) | Bad::Fatal(e)) => return Err(e),
            }
            if batch.len >= BATCH_RECORDS || bytes >= BATCH_BYTES {
                let Some(mut next) = emit(std::mem::take(&mut batch)) else {
                    return Ok(false);
                };
                next.len = 0;
                // A big record's buffers are not kept for the next one: only the batches
                // in flight hold big records.
                for r in &mut next.recs {
                    if r.values.iter().any(|v| v.capacity() > BATCH_BYTES) {
                        *r = Record::default();
                    }
                }
                next.filtered = 0;
                next.bad.clear();
                next.end = None;
                batch = next;
                bytes = 0;
            }
        }
    })();
    batch.end = Some(match ended {
        Ok(false) => return,
        Ok(true) => hashing
            .finish()
            .map_err(|e| ParseError::new(format!("cannot read the file: {e}"))),
        Err(e) => Err(e),
    });
    emit(batch);
}

/// The writing side: the transform, every record output (or, with a split, one set per
/// group) and the rejects file.
struct Sink<'a, 'r, 's, 'e> {
    on_error: OnError,
    transformer: Transformer<'e>,
    writers: Vec<Writer<TempOutput>>,
    split: Option<Split<'s>>,
    groups: HashMap<String, usize>,
    group_writers: Vec<Vec<(u32, PathBuf, Writer<TempOutput>)>>,
    stats: Stats,
    rejects: &'r mut Rejects<'a>,
    meta: &'r BTreeMap<String, String>,
}

impl Sink<'_, '_, '_, '_> {
    /// Transforms and writes a batch: its records, and the records that could not be read
    /// among them, in file order.
    fn take(&mut self, b: &mut Batch) -> Result<(), ParseError> {
        // Records the filter dropped were read too.
        self.stats.read += b.filtered;
        self.stats.filtered += b.filtered;
        let mut bad = b.bad.drain(..).peekable();
        for i in 0..=b.len {
            while let Some((_, e, data)) = bad.next_if(|(at, ..)| *at == i) {
                self.stats.read += u64::from(data.is_some());
                self.reject(&e, data.as_deref())?;
            }
            if i == b.len {
                break;
            }
            self.stats.read += 1;
            let rec = &mut b.recs[i];
            match transform_record(rec, &mut self.transformer, self.on_error) {
                Ok(None) => self.stats.filtered += 1,
                Ok(Some(original)) => match self.write(rec) {
                    Ok(()) => self.stats.written += 1,
                    Err(e) => {
                        let original = original.or_else(|| {
                            (self.on_error == OnError::Skip && self.transformer.is_noop())
                                .then(|| Box::new(rec.clone()))
                        });
                        self.skip(e, original)?
                    }
                },
                Err(Bad::Skip(e, original)) => self.skip(e, original)?,
                Err(Bad::Fatal(e)) => return Err(e),
            }
        }
        Ok(())
    }

    fn write(&mut self, rec: &Record) -> Result<(), ParseError> {
        let targets: Vec<&mut Writer<TempOutput>> = match self.split.as_mut() {
            None => {
                // No split: straight to the outputs (no list of targets per record).
                for w in &mut self.writers {
                    w.write(rec)?;
                }
                return Ok(());
            }
            Some(sp) => {
                let g = group_of(
                    sp,
                    rec,
                    &mut self.groups,
                    &mut self.group_writers,
                    self.meta,
                )?;
                self.group_writers[g]
                    .iter_mut()
                    .map(|(_, _, w)| w)
                    .collect()
            }
        };
        for w in targets {
            w.write(rec)?;
        }
        Ok(())
    }

    /// A bad record: to the rejects file with `on_error = "skip"`, else the file's error.
    fn skip(&mut self, e: ParseError, original: Option<Box<Record>>) -> Result<(), ParseError> {
        if self.on_error != OnError::Skip {
            return Err(e);
        }
        self.reject(&e, original.as_deref())
    }

    fn reject(&mut self, e: &ParseError, rec: Option<&Record>) -> Result<(), ParseError> {
        self.stats.rejected += 1;
        reject(self.rejects, e, rec)
            .map_err(|io| ParseError::new(format!("cannot write the rejects file: {io}")))
    }
}

impl Fed {
    fn finish(self) -> Result<Converted, ParseError> {
        let finish = |w: Writer<TempOutput>| {
            w.finish()
                .map_err(|e| ParseError::new(format!("cannot write an output: {e}")))
        };
        let mut temps = Vec::new();
        for w in self.writers {
            temps.push(finish(w)?);
        }
        let mut split = Vec::new();
        for group in self.group_writers {
            for (idx, final_path, w) in group {
                split.push((idx, final_path, finish(w)?));
            }
        }
        Ok(Converted {
            temps,
            hash: self.hash,
            stats: self.stats,
            split,
        })
    }
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

/// What the job's `[input]` reads its records from, decoded to UTF-8 as its reader gets
/// it: a PDF's text (`format = "pdf"`), an embedded file (`attachment`), or the file
/// itself. For `ferry test --text`: the exact text capture patterns work on.
pub fn input_text(job: &Job, src: &Path) -> Result<String, ParseError> {
    let input = job
        .input
        .as_ref()
        .ok_or_else(|| ParseError::new("the job has no [input]"))?;
    let mut file = std::fs::File::open(src)
        .map_err(|e| ParseError::new(format!("cannot open the file: {e}")))?;
    let mut meta = BTreeMap::new();
    let raw: Box<dyn Read> = match pdf_source(job, input, &mut file, &mut meta)? {
        Some(bytes) => Box::new(io::Cursor::new(bytes)),
        None => Box::new(file),
    };
    let mut text = String::new();
    DecodeReader::new(raw, input.encoding, input.replace)
        .read_to_string(&mut text)
        .map_err(|e| ParseError::new(format!("cannot decode the text: {e}")))?;
    Ok(text)
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
    if transformer.is_noop() {
        // Nothing changes the record: no copy of the original either (a record that then
        // cannot be written is itself the original).
        return Ok(Some(None));
    }
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
        let max = input.max_record;
        Ok(match &input.format {
            InputFormat::Csv(o) => Reader::Csv(Box::new(CsvReader::with_max_record(
                decoded,
                o.clone(),
                max,
            )?)),
            InputFormat::Xml(o) => Reader::Xml(Box::new(
                XmlReader::new(decoded, XmlPaths::compile(o).map_err(ParseError::new)?)
                    .with_max_record(max),
            )),
            InputFormat::Fixed(l) => Reader::Fixed(Box::new(
                FixedReader::new(decoded, l.clone()).with_max_record(max),
            )),
            InputFormat::Json(o) => Reader::Json(Box::new(
                JsonReader::new(decoded, o.clone()).with_max_record(max),
            )),
            InputFormat::Text(rules) | InputFormat::Pdf(rules) => Reader::Text(Box::new(
                TextReader::new(decoded, rules.clone()).with_max_record(max),
            )),
        })
    }
}

impl<R: io::BufRead> Reader<R> {
    fn read_into(&mut self, rec: &mut Record) -> Result<bool, Bad> {
        // The record is reused: kinds a transform gave the last one do not carry over (a
        // reader that has kinds, JSON's, sets them).
        rec.kinds.clear();
        let (r, line_based) = match self {
            Reader::Csv(r) => (r.read_into(rec), true),
            Reader::Xml(r) => (r.read_into(rec), false),
            Reader::Fixed(r) => (r.read_into(rec), true),
            Reader::Json(r) => (r.read_into(rec), true),
            Reader::Text(r) => (r.read_into(rec), true),
        };
        // A CSV row with the wrong number of fields comes as it was read: the rejects file
        // shows it.
        let as_read = matches!(self, Reader::Csv(r) if r.bad_row());
        // In line-based formats a bad record (a wrong field count, a short line) can be
        // skipped and reading goes on; undecodable bytes, malformed XML and a record
        // beyond `max_record` end the file.
        r.map_err(|e| {
            if line_based
                && e.pos.is_some()
                && !e.message.contains("not valid")
                && !e.is_too_large()
            {
                Bad::Skip(e, as_read.then(|| Box::new(rec.clone())))
            } else {
                Bad::Fatal(e)
            }
        })
    }
}

/// Writes one line of the rejects file: the keys in a fixed order (README, "The rejects
/// file"), the record's fields in its order.
fn reject(rejects: &mut Rejects<'_>, e: &ParseError, rec: Option<&Record>) -> io::Result<()> {
    use std::io::Write;
    if rejects.file.is_none() {
        rejects.file = Some(TempOutput::create(rejects.path)?);
    }
    let f = rejects.file.as_mut().expect("just created");
    let pos = e.pos.or(rec.map(|r| r.pos)).unwrap_or_default();
    let mut line = Vec::with_capacity(256);
    if let Some(o) = &rejects.original {
        line.extend_from_slice(b"{\"file\":");
        serde_json::to_writer(&mut line, o)?;
        line.push(b',');
    } else {
        line.push(b'{');
    }
    write!(
        line,
        "\"record\":{},\"line\":{},\"byte\":{},\"field\":",
        pos.record, pos.line, pos.byte
    )?;
    serde_json::to_writer(&mut line, &e.field)?;
    line.extend_from_slice(b",\"value\":");
    serde_json::to_writer(&mut line, &e.value)?;
    line.extend_from_slice(b",\"reason\":");
    serde_json::to_writer(&mut line, &e.message)?;
    line.extend_from_slice(b",\"data\":{");
    for (i, (k, v)) in rec.iter().flat_map(|r| r.fields()).enumerate() {
        if i > 0 {
            line.push(b',');
        }
        serde_json::to_writer(&mut line, k)?;
        line.push(b':');
        serde_json::to_writer(&mut line, v)?;
    }
    line.extend_from_slice(b"}}\n");
    f.write_all(&line)
}

/// What a dry run shows of the first records of a file, and what it found reading all of
/// them.
#[derive(Default)]
pub struct Preview {
    pub parsed: Vec<Record>,
    pub transformed: Vec<Result<Option<Record>, ParseError>>,
    /// Each record output's text for those records (decoded for display): its index, and
    /// one text, or with `split` one per group among those records.
    pub outputs: Vec<(u32, Vec<OutputText>)>,
    /// Reading stopped at this error.
    pub error: Option<ParseError>,
    /// Records read in the whole file.
    pub read: u64,
    /// Records that would go to the rejects file (`on_error = "skip"`).
    pub rejected: u64,
    /// What would fail the file: a record that cannot be read, transformed, split or
    /// written (with `on_error = "fail"`), or broken input.
    pub failure: Option<ParseError>,
    /// With `split`: the first transformed record of each group, in the order met.
    pub groups: Vec<Record>,
}

/// One file of a record output, as a dry run shows it.
pub struct OutputText {
    /// With `split`: the group's value.
    pub group: Option<String>,
    pub text: Result<String, ParseError>,
}

/// Reads `src` as a run would and shows what the job makes of its first `limit` records,
/// writing nothing anywhere: every record is read, transformed, split and formatted (into
/// nothing) so that what would fail the file is found wherever it is.
pub fn preview(
    job: &Job,
    src: &Path,
    meta: BTreeMap<String, String>,
    limit: usize,
) -> Result<Preview, ParseError> {
    let file = std::fs::File::open(src)
        .map_err(|e| ParseError::new(format!("cannot open the file: {e}")))?;
    preview_file(job, file, meta, limit)
}

/// [`preview`] of a file already open (an original, read through its checked handle).
pub fn preview_file(
    job: &Job,
    mut file: std::fs::File,
    meta: BTreeMap<String, String>,
    limit: usize,
) -> Result<Preview, ParseError> {
    let input = job
        .input
        .as_ref()
        .ok_or_else(|| ParseError::new("the job has no [input]"))?;
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
    let record_outputs: Vec<(u32, &OutputData)> = job
        .outputs
        .iter()
        .enumerate()
        .filter(|(_, o)| !matches!(o.data.format, OutputFormat::Original) && o.extract.is_none())
        .map(|(i, o)| (i as u32, &o.data))
        .collect();
    let mut checks = record_outputs
        .iter()
        .map(|(_, d)| Writer::new(io::sink(), d, &meta))
        .collect::<Result<Vec<_>, _>>()?;
    let mut p = Preview::default();
    let skip = input.on_error == OnError::Skip;
    scan(
        &mut p,
        &mut reader,
        &mut transformer,
        (job, &mut checks),
        skip,
        limit,
    );
    for w in checks {
        if let Err(e) = w.finish()
            && p.failure.is_none()
        {
            p.failure = Some(ParseError::new(format!("cannot write: {e}")));
        }
    }
    let split = job.transform.split.as_deref();
    p.outputs = record_outputs
        .iter()
        .map(|(i, d)| (*i, render_output(d, split, &p.transformed, &meta)))
        .collect();
    Ok(p)
}

/// The distinct values of `fields` in a file's records, for two-way exchanges
/// (`crate::runtime::expect`), read through `file` from its start. With `transformed`: the records
/// the job writes (after its transform; a field the transform does not give is taken as
/// read; records its filter drops are left out); otherwise the records as read. Records
/// that cannot be read are passed over (the delivery reports them). At most `max`
/// distinct tuples; more is an error.
pub fn distinct_values(
    job: &Job,
    mut file: std::fs::File,
    meta: BTreeMap<String, String>,
    fields: &[String],
    transformed: bool,
    max: usize,
) -> Result<std::collections::BTreeSet<Vec<String>>, ParseError> {
    let input = job
        .input
        .as_ref()
        .ok_or_else(|| ParseError::new("the job has no [input]"))?;
    let mut meta = meta;
    let raw: Box<dyn Read> = match pdf_source(job, input, &mut file, &mut meta)? {
        Some(bytes) => Box::new(io::Cursor::new(bytes)),
        None => Box::new(file),
    };
    let decoded = BufReader::new(DecodeReader::new(raw, input.encoding, input.replace));
    let mut reader = Reader::open(input, decoded)?;
    let lookups = transform::load_lookups(&job.transform).map_err(ParseError::new)?;
    let env = transform::environment(&lookups);
    let mut transformer = Transformer::new(&env, &job.transform, meta).map_err(ParseError::new)?;
    let mut out = std::collections::BTreeSet::new();
    let mut rec = Record::default();
    loop {
        match reader.read_into(&mut rec) {
            Ok(false) => break,
            Ok(true) => {}
            Err(Bad::Skip(_, _)) => continue,
            Err(Bad::Fatal(e)) => return Err(e),
        }
        let mut t = rec.clone();
        if transformed && !transformer.is_noop() {
            match transformer.apply(&mut t) {
                Ok(true) => {}
                Ok(false) | Err(_) => continue,
            }
        }
        let values: Vec<String> = fields
            .iter()
            .map(|f| {
                t.get(f)
                    .or_else(|| rec.get(f))
                    .unwrap_or("")
                    .trim()
                    .to_string()
            })
            .collect();
        if out.contains(&values) {
            continue;
        }
        if out.len() >= max {
            return Err(ParseError::new(format!(
                "more than {max} distinct values of {}",
                fields.join(", ")
            )));
        }
        out.insert(values);
    }
    Ok(out)
}

/// The dry run's reading: every record read, transformed and checked as a run would,
/// until the end or what would fail the file; the first `limit` kept to show.
fn scan<R: io::BufRead>(
    p: &mut Preview,
    reader: &mut Reader<R>,
    transformer: &mut Transformer<'_>,
    (job, checks): (&Job, &mut [Writer<io::Sink>]),
    skip: bool,
    limit: usize,
) {
    let mut groups = std::collections::HashSet::new();
    let mut rec = Record::default();
    while p.failure.is_none() {
        match reader.read_into(&mut rec) {
            Ok(false) => break,
            Ok(true) => {}
            Err(Bad::Skip(_, _)) if skip => {
                p.rejected += 1;
                continue;
            }
            Err(Bad::Skip(e, _) | Bad::Fatal(e)) => {
                p.error = Some(e.clone());
                p.failure = Some(e);
                break;
            }
        }
        p.read += 1;
        let mut t = rec.clone();
        let result = transformer.apply(&mut t).map(|keep| keep.then_some(t));
        let checked = match &result {
            Ok(Some(t)) => check_record(job, t, checks, &mut groups, &mut p.groups),
            Ok(None) => Ok(()),
            Err(e) => Err(e.clone()),
        };
        match checked {
            Err(_) if skip => p.rejected += 1,
            Err(e) => p.failure = Some(e),
            Ok(()) => {}
        }
        if p.parsed.len() < limit {
            p.parsed.push(rec.clone());
            p.transformed.push(result);
        }
    }
}

/// One transformed record of a dry run: its split group, and each record output's writer.
fn check_record(
    job: &Job,
    rec: &Record,
    checks: &mut [Writer<io::Sink>],
    seen: &mut std::collections::HashSet<String>,
    groups: &mut Vec<Record>,
) -> Result<(), ParseError> {
    if let Some(field) = &job.transform.split {
        let key = rec.get(field).ok_or_else(|| ParseError {
            pos: Some(rec.pos),
            field: Some(field.clone()),
            ..ParseError::new("the record has no such field to split by")
        })?;
        if !seen.contains(key) {
            if seen.len() >= MAX_GROUPS {
                return Err(ParseError {
                    pos: Some(rec.pos),
                    field: Some(field.clone()),
                    value: Some(key.to_string()),
                    ..ParseError::new(format!(
                        "more than {MAX_GROUPS} different values to split by"
                    ))
                });
            }
            seen.insert(key.to_string());
            groups.push(rec.clone());
        }
    }
    checks.iter_mut().try_for_each(|w| w.write(rec))
}

/// A record output's text for the records shown (decoded for display): one, or with a
/// split one per group in the order met.
fn render_output(
    data: &OutputData,
    split: Option<&str>,
    records: &[Result<Option<Record>, ParseError>],
    meta: &BTreeMap<String, String>,
) -> Vec<OutputText> {
    let records: Vec<&Record> = records.iter().flatten().flatten().collect();
    let mut groups: Vec<Option<String>> = Vec::new();
    for r in &records {
        let g = split.map(|f| r.get(f).unwrap_or_default().to_string());
        if !groups.contains(&g) {
            groups.push(g);
        }
    }
    if groups.is_empty() {
        groups.push(None);
    }
    let render = |group: &Option<String>| -> Result<String, ParseError> {
        let mut w = Writer::new(Vec::new(), data, meta)?;
        for r in &records {
            if group.is_none() || r.get(split.unwrap_or_default()) == group.as_deref() {
                w.write(r)?;
            }
        }
        let bytes = w.finish().map_err(|e| ParseError::new(e.to_string()))?;
        Ok(data.encoding.decode(&bytes).0.into_owned())
    };
    groups
        .into_iter()
        .map(|group| OutputText {
            text: render(&group),
            group,
        })
        .collect()
}

/// Reads every record of `file` with `job`'s record reader (its `[input]`, decoding
/// included; no transform), one at a time into one reused [`Record`], and hands each to
/// `each` with its number (from 1). For the comparison of a reviewed file with the last
/// approved one (`review::diff`), which must not hold a whole file. A record that cannot
/// be read ends the reading with its error.
pub fn each_record(
    job: &Job,
    mut file: std::fs::File,
    mut each: impl FnMut(u64, &Record) -> Result<(), String>,
) -> Result<u64, ParseError> {
    let input = job
        .input
        .as_ref()
        .ok_or_else(|| ParseError::new("the job has no [input]"))?;
    let mut meta = BTreeMap::new();
    let raw: Box<dyn Read> = match pdf_source(job, input, &mut file, &mut meta)? {
        Some(bytes) => Box::new(io::Cursor::new(bytes)),
        None => Box::new(file),
    };
    let decoded = BufReader::new(DecodeReader::new(raw, input.encoding, input.replace));
    let mut reader = Reader::open(input, decoded)?;
    let mut rec = Record::default();
    let mut n = 0;
    loop {
        match reader.read_into(&mut rec) {
            Ok(true) => {
                n += 1;
                each(n, &rec).map_err(ParseError::new)?;
            }
            Ok(false) => return Ok(n),
            Err(Bad::Skip(e, _) | Bad::Fatal(e)) => return Err(e),
        }
    }
}
