//! Every key a job file may have, declared once.
//!
//! [`KEYS`] is the one list of job keys: where each is written (its table), its type, its
//! default, its allowed values and a line for the admin. It drives the reader's "unknown key;
//! did you mean" errors ([`known`], used by `TableReader::finish_as`), the JSON Schema that
//! `ferry schema` prints (editors complete and explain job files with it), and the README's
//! key tables, which a test compares with it. A key the readers take that is not here, or a
//! key here that no reader takes, fails `every_declared_key_is_read_and_every_read_key_declared`.
//!
//! To add a key: declare it here (its table, the kind of table that takes it, type, default
//! as the README writes it, a line of help), read it in its table's reader, and give it a
//! row in the README's key table (or name it where the README describes that table in
//! prose). The tests in this module name whatever of the three is missing.

use serde_json::{Map, Value, json};

/// What a key's value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    Str,
    /// A whole number of 0 or more.
    Uint,
    Bool,
    /// A duration as text: `"2s"`, `"500ms"`, `"1m30s"`, `"1h"`, `"7d"`, `"0"`.
    Duration,
    /// One of a closed set of words.
    Enum(&'static [&'static str]),
    /// A list of strings; a single string is taken as a list of one.
    StrList,
    /// A table of its own keys (`[source.set]`, `[pdf]`): those declared with this table.
    Table,
    /// An array of tables (`[[output]]`, `[[input.column]]`).
    Tables,
    /// A table whose keys the admin names, each with a string (`[transform.fields]`).
    StrMap,
    /// A table whose keys the admin names, each with a string or a list of strings.
    StrListMap,
}

/// One job key.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    /// The table it is written in: `""` (the top), `source`, `source.set`, `input`,
    /// `input.items`, `transform`, `output`, `after`, `pdf`, `alert`, or `column` (an entry
    /// of `[[input.column]]` and `[[output.column]]`).
    pub table: &'static str,
    /// Which kind of its table takes it: `""` every one; `ftp`, `mailbox`, `email`,
    /// `extract`, or an input or output format (`csv`, `xml`, `json`, `text`, `fixed`,
    /// `format` for every output format).
    pub when: &'static str,
    pub name: &'static str,
    pub ty: Type,
    /// The default as the README writes it (without backticks): `"2s"`, `false`, `4`,
    /// `none`, `required`, or words (`every file`).
    pub default: &'static str,
    pub doc: &'static str,
}

/// Kinds whose keys are known to the reader only in a table of that kind (elsewhere they
/// are unknown keys): a mailbox source, an email output, an HTTP output, a database.
pub const OPT_IN: &[&str] = &["mailbox", "email", "http", "database", "webdav"];

/// Keys a reader still takes only to say what replaced them; never declared.
pub const RETIRED: &[(&str, &str)] = &[("input", "max_bytes")];

pub(crate) const fn k(
    table: &'static str,
    when: &'static str,
    name: &'static str,
    ty: Type,
    default: &'static str,
    doc: &'static str,
) -> Key {
    Key {
        table,
        when,
        name,
        ty,
        default,
        doc,
    }
}

use Type::*;

const WATCH: &[&str] = &["auto", "poll"];
const READY: &[&str] = &["settle", "done-file"];
const FTP_SUCCESS: &[&str] = &["delete", "move", "keep"];
const MAIL_SUCCESS: &[&str] = &["seen", "move", "delete"];
const NO_MATCH: &[&str] = &["leave", "move"];
const LIST: &[&str] = &["lines", "csv", "xml"];
const EXISTS: &[&str] = &["fail", "overwrite", "unique", "skip"];
const EXTRACT: &[&str] = &["attachments", "pages", "merge"];
const AFTER_SUCCESS: &[&str] = &["archive", "delete", "keep"];
const INPUT_FORMAT: &[&str] = &["csv", "xml", "json", "jsonl", "text", "fixed", "pdf"];
const UNDECODABLE: &[&str] = &["error", "replace"];
const ON_ERROR: &[&str] = &["fail", "skip"];
const RAGGED: &[&str] = &["error", "pad"];
const MODE: &[&str] = &["lines", "capture"];
const ALIGN: &[&str] = &["left", "right"];
const OUTPUT_FORMAT: &[&str] = &["original", "csv", "json", "jsonl", "xml", "fixed", "text"];
const UNMAPPABLE: &[&str] = &["error", "replace"];
const LINE_ENDING: &[&str] = &["lf", "crlf"];
const QUOTING: &[&str] = &["necessary", "always", "non-numeric", "never"];
const PER: &[&str] = &["file", "batch"];
const HTTP_METHOD: &[&str] = &["POST", "PUT"];
const HTTP_BODY: &[&str] = &["file", "record"];
const DB_EMPTY: &[&str] = &["skip", "process"];
const DB_MODE: &[&str] = &["insert", "upsert"];

/// Every job key. Within a table, in the order the "expected one of" lists name them.
#[rustfmt::skip]
pub static KEYS: &[Key] = &[
    // The top level.
    k("", "", "description", Str, "none", "Free text, shown by `ferry test`."),
    k("", "", "source", Table, "required", "Where files are taken from: a folder, an FTP server or a mailbox."),
    k("", "", "input", Table, "none", "Read the file as records (without it, files move as bytes)."),
    k("", "", "transform", Table, "none", "Filter and compute the records' fields."),
    k("", "", "output", Tables, "none", "Where each file (or what it is made into) is delivered; repeat for several outputs."),
    k("", "", "after", Table, "none", "What happens to the original after delivery or failure."),
    k("", "", "alert", Table, "none", "Mail an error report for every failed file, and a daily summary."),
    k("", "", "pdf", Table, "none", "Limits of the PDF work on one file."),
    k("", "", "retry", Table, "none", "How often and how long a file whose delivery failed for a reason that may pass is tried again."),
    k("", "", "expect", Table, "none", "Every file delivered expects an answer through another job, within a time (two-way exchanges)."),
    k("", "", "review", Table, "none", "Hold each file's outputs until an admin approves them (`ferry pending`, `approve`, `reject`)."),
    // [source]
    k("source", "", "folder", Str, "required", "The folder to take files from (relative to the deployment root, or absolute)."),
    k("source", "ftp", "ftp", Str, "none", "Take files from an FTP server instead of a folder: \"ftp://user@host:port/folder\" or \"ftps://...\"."),
    k("source", "ftp", "staging", Str, "\"var/staging/{job}\"", "With `ftp`: the local folder files are downloaded to before they are processed."),
    k("source", "ftp", "success", Enum(FTP_SUCCESS), "\"delete\"", "With `ftp`: what happens to the remote original once its local copy is done."),
    k("source", "ftp", "move_to", Str, "none", "With `success = \"move\"`: the remote folder taken files are moved into."),
    k("source", "ftp", "connections", Uint, "4", "With `ftp`: connections to the server (1 to 16)."),
    k("source", "ftp", "password", Str, "none", "With `ftp`: \"${env:NAME}\" or \"${file:/path}\". Never logged."),
    k("source", "ftp", "ca_file", Str, "none", "With `ftps://`: a PEM CA certificate trusted besides the public roots."),
    k("source", "ftp", "tls_verify", Bool, "true", "With `ftps://`: `false` accepts any certificate (a warning is logged at every start)."),
    k("source", "ftp", "passive", Bool, "true", "With `ftp`: `false` for active mode (PORT)."),
    // [source] webdav = ... (issue 17, src/job/webdav.rs)
    k("source", "webdav", "webdav", Str, "none", "Take files from a WebDAV folder instead of a local one: \"https://cloud.example/remote.php/dav/files/USER/outgoing\"."),
    k("source", "webdav", "staging", Str, "\"var/staging/{job}\"", "With `webdav`: the local folder files are downloaded to before they are processed."),
    k("source", "webdav", "success", Enum(FTP_SUCCESS), "\"delete\"", "With `webdav`: what happens to the remote original once its local copy is done."),
    k("source", "webdav", "move_to", Str, "none", "With `success = \"move\"`: the remote folder taken files are moved into (relative, or from the server's root with /)."),
    k("source", "webdav", "connections", Uint, "4", "With `webdav`: connections to the server (1 to 16)."),
    k("source", "webdav", "user", Str, "none", "With `webdav`: the user of basic authentication (or in the URL: https://USER@host/...)."),
    k("source", "webdav", "password", Str, "none", "With `webdav`: \"${env:NAME}\" or \"${file:/path}\". Never logged."),
    k("source", "webdav", "ca_file", Str, "none", "With `https://`: a PEM CA certificate trusted instead of the public roots."),
    k("source", "webdav", "timeout", Duration, "\"60s\"", "With `webdav`: the longest a connection, an answer or a stalled transfer may take."),
    k("source", "", "include", StrList, "every file", "Globs on the file name (\"*.csv\"); case-sensitive."),
    k("source", "", "exclude", StrList, "none", "Globs on the file name that are never taken; case-sensitive."),
    k("source", "", "settle", Duration, "\"2s\"", "How long size and mtime must stay unchanged before a file is taken (ms, s, m, h, d: \"1m30s\")."),
    k("source", "", "poll", Duration, "\"5s\"", "How often the folder is rescanned in full (at least \"100ms\")."),
    k("source", "", "watch", Enum(WATCH), "\"auto\"", "\"auto\": file-system events plus rescans; \"poll\": rescans only (SMB/NFS/FUSE shares; the default on a UNC path or a Windows network drive)."),
    k("source", "", "ready", Enum(READY), "\"settle\"", "\"done-file\": a file is taken when one of its trigger files exists."),
    k("source", "", "done", StrList, "[\"{name}.done\", \"{stem}.done\"]", "Trigger file names, with {name} {stem} {ext}."),
    k("source", "", "recursive", Bool, "false", "Take files from subfolders too; their relative folder is {dir}."),
    k("source", "", "allow_cycle", Bool, "false", "`true` says this job's source may be fed by its own outputs (a loop of jobs)."),
    k("source", "", "contains", StrList, "none", "PDFs only: take a file only when its text contains every one of these strings."),
    k("source", "", "matches", Str, "none", "PDFs only: take a file only when this regex matches its text."),
    k("source", "", "set", Table, "none", "A document set: files taken, processed and archived together."),
    k("source", "", "schedule", Str, "none", "Run at these times instead of on events, taking what is ready as one batch: cron, 5 fields (\"0 23 * * *\")."),
    k("source", "", "every", Duration, "none", "Instead of `schedule`: run at this interval (\"3h\"), taking what is ready as one batch."),
    k("source", "", "timezone", Str, "the machine's zone", "The IANA time zone of `schedule` and `active` (\"Europe/Athens\")."),
    k("source", "", "active", StrList, "always", "Windows when the job takes files ([\"Mon-Fri 06:00-20:00\"]); files that arrive outside wait."),
    k("source", "mailbox", "mailbox", Str, "none", "Take attachments from an IMAP folder: \"imaps://USER@host[:993]/FOLDER\" or \"imap://...\" (STARTTLS)."),
    k("source", "mailbox", "password", Str, "required", "\"${env:NAME}\" or \"${file:/path}\"."),
    k("source", "mailbox", "ca_file", Str, "none", "Extra CA certificates (PEM) trusted besides the usual roots."),
    k("source", "mailbox", "include", StrList, "every attachment", "Globs on the attachment's (safe) name, case-sensitive."),
    k("source", "mailbox", "exclude", StrList, "none", "Globs on attachment names that are never taken, case-sensitive."),
    k("source", "mailbox", "from", StrList, "any", "Globs on the sender address (case-insensitive)."),
    k("source", "mailbox", "subject", StrList, "any", "Globs on the decoded subject (case-insensitive)."),
    k("source", "mailbox", "all", Bool, "false", "Also take seen messages (default: unseen only)."),
    k("source", "mailbox", "success", Enum(MAIL_SUCCESS), "\"seen\"", "After every file of the message is done: seen, move (to `move_to`) or delete."),
    k("source", "mailbox", "move_to", Str, "\"ferry-done\"", "The folder for `success = \"move\"` (created when missing)."),
    k("source", "mailbox", "error_folder", Str, "\"ferry-error\"", "Where a message goes when one of its files failed or it cannot be read."),
    k("source", "mailbox", "no_match", Enum(NO_MATCH), "\"leave\"", "A message with no matching attachment: leave it, or move it to `no_match_folder`."),
    k("source", "mailbox", "no_match_folder", Str, "\"ferry-unmatched\"", "The folder for `no_match = \"move\"`."),
    k("source", "mailbox", "max_message_size", Uint, "52428800", "Bytes; a bigger message is not fetched."),
    k("source", "mailbox", "poll", Duration, "\"1m\"", "How often the mailbox is read; IDLE wakes ferry sooner."),
    k("source", "mailbox", "staging", Str, "\"var/staging/{job}\"", "The local folder attachments are staged in."),
    // [source] database (issue 16, source half; docs/databases-source.md)
    k("source", "database", "database", Str, "none", "Take the rows of a query: \"postgres://USER@host:5432/DB\", \"mysql://...\", \"mariadb://...\" or \"sqlite://PATH\"; a password as ${env:NAME} or ${file:PATH} in the URL."),
    k("source", "database", "query", Str, "required", "The SELECT each run executes; `:since` is bound to the watermark (never pasted into the text)."),
    k("source", "database", "watermark", Str, "none", "The column whose highest value is kept in the journal and bound as `:since` next run (without it, every run reads the whole result)."),
    k("source", "database", "since", Str, "the lowest value", "The value of `:since` before the first run."),
    k("source", "database", "empty", Enum(DB_EMPTY), "\"skip\"", "A run without rows: skip does nothing; process sends a header-only file through the job."),
    k("source", "database", "ca_file", Str, "none", "A PEM CA certificate: the server's certificate is verified against it (TLS required)."),
    k("source", "database", "poll", Duration, "\"1m\"", "How often the query runs on a job without `schedule` or `every`."),
    k("source", "database", "staging", Str, "\"var/staging/{job}\"", "The local folder each run's rows are staged in (CSV) before the job processes them."),
    // [source.set]
    k("source.set", "", "members", StrList, "none", "File names with {stem}, the lead first: the set is taken when all are there."),
    k("source.set", "", "manifest", Str, "none", "A manifest set: files matching this pattern list the set's other files."),
    k("source.set", "", "list", Enum(LIST), "\"lines\"", "How a manifest lists its files: lines, csv (with `column`), xml (with `element`)."),
    k("source.set", "", "column", Str, "none", "With `list = \"csv\"`: the header of the column that names the files."),
    k("source.set", "", "element", Str, "none", "With `list = \"xml\"`: the element whose text is a file name."),
    k("source.set", "", "timeout", Duration, "\"1h\"", "An incomplete set this old goes to the error folder."),
    // [input]
    k("input", "", "format", Enum(INPUT_FORMAT), "required", "How the file is read as records."),
    k("input", "", "encoding", Str, "\"utf-8\"", "The file's encoding (a WHATWG label); a byte-order mark wins over it."),
    k("input", "", "on_undecodable", Enum(UNDECODABLE), "\"error\"", "error: undecodable bytes fail the file; replace: they become U+FFFD."),
    k("input", "", "on_error", Enum(ON_ERROR), "\"fail\"", "fail: a bad record fails the file; skip: it goes to NAME.rejects.jsonl."),
    k("input", "csv", "delimiter", Str, "\",\"", "One character (\"tab\" for a tab)."),
    k("input", "csv", "quote", Str, "\"\\\"\"", "One character."),
    k("input", "csv", "escape", Str, "none", "One character; quotes are escaped by it instead of doubled."),
    k("input", "csv", "header", Bool, "true", "Whether the first row names the fields."),
    k("input", "csv", "columns", StrList, "none", "Field names given by the job (replacing the header's, or for files without one)."),
    k("input", "csv", "comment", Str, "none", "One character: lines starting with it are skipped."),
    k("input", "csv", "skip_lines", Uint, "0", "Lines to skip before the header."),
    k("input", "csv", "ragged", Enum(RAGGED), "\"error\"", "pad: rows with fewer fields get empty ones."),
    k("input", "csv", "trim", Bool, "false", "Trim blanks around values."),
    k("input", "fixed", "trim", Bool, "true", "Trim blanks around values."),
    k("input", "xml", "record", Str, "required", "The repeating element: \"/Invoice/cac:InvoiceLine\", \"//Order\", or \"/\"."),
    k("input", "xml", "fields", StrMap, "required", "name = \"path\": paths relative to the record, or absolute."),
    k("input", "xml", "namespaces", StrMap, "none", "prefix = \"uri\" for the prefixes used in paths."),
    k("input", "fixed", "column", Tables, "required", "The columns: name, start (1-based), length, align, pad; in characters."),
    k("input", "json", "records", Str, "the top-level array", "A dotted path to the array (\"data.orders\")."),
    k("input", "text", "mode", Enum(MODE), "\"lines\"", "lines: one record per line; capture: fields captured from the whole text."),
    k("input", "text", "line_field", Str, "\"line\"", "The field of each line's text with `mode = \"lines\"`."),
    k("input", "", "max_record", Uint, "67108864", "The largest record, in bytes of the decoded text (64 MiB); a larger one fails the file."),
    k("input", "text", "capture", StrListMap, "none", "field = [\"regex\", ...]: the first pattern that matches gives the value."),
    k("input", "text", "required", StrList, "none", "Fields that must be found, or the file fails."),
    k("input", "text", "items", Table, "none", "One record per item line matching `line`, between `start` and `end`."),
    k("input", "", "attachment", Str, "none", "Read the records from the PDF's embedded file whose name matches this glob."),
    // [input.items]
    k("input.items", "", "start", Str, "none", "A regex: items begin after the line it matches."),
    k("input.items", "", "end", Str, "none", "A regex: items end at the line it matches."),
    k("input.items", "", "line", Str, "required", "A regex with named groups: each match is one item."),
    k("input.items", "", "across_lines", Bool, "false", "The pattern may span lines (\\n): each match is one item."),
    // [[input.column]] and [[output.column]]
    k("column", "", "name", Str, "required", "The field's name."),
    k("column", "", "start", Uint, "required", "Its first position, from 1, in characters."),
    k("column", "", "length", Uint, "required", "Its width in characters."),
    k("column", "", "align", Enum(ALIGN), "\"left\"", "Where the value sits when shorter (output) or what is trimmed."),
    k("column", "", "pad", Str, "\" \"", "The fill character (\" \", \"0\")."),
    // [transform]
    k("transform", "", "filter", Str, "none", "An expression: records where it is false are dropped."),
    k("transform", "", "fields", StrMap, "none", "Output field = minijinja expression, in order."),
    k("transform", "", "keep", Bool, "false", "Also keep the input fields not computed, in their places."),
    k("transform", "", "lookups", StrMap, "none", "name = CSV file (beside the job file; first column is the key)."),
    k("transform", "", "split", Str, "none", "A field: one output file per value (at most 1,000 per input)."),
    // [[output]]
    k("output", "", "folder", Str, "required", "Where to deliver; may use placeholders (\"var/out/{date:%Y/%m}\")."),
    k("output", "", "name", Str, "\"{name}\"; with a record format, \"{stem}.EXT\"", "The output's file name; may contain / to make subfolders."),
    k("output", "", "exists", Enum(EXISTS), "\"fail\"", "When the name is taken: fail, overwrite, unique (a_1.csv, ...), skip."),
    k("output", "ftp", "ftp", Str, "none", "Deliver to an FTP server instead of a folder: \"ftp://user@host/inbound\" or \"ftps://...\"."),
    k("output", "ftp", "outbox", Str, "\"var/outbox/{job}/N\"", "With `ftp`: the local folder files wait in until delivered."),
    k("output", "ftp", "done_file", Str, "none", "With `ftp`: an empty file written after each upload, e.g. \"{name}.ok\"."),
    k("output", "ftp", "connections", Uint, "4", "With `ftp`: parallel connections for this output (1 to 16)."),
    k("output", "ftp", "password", Str, "none", "With `ftp`: \"${env:NAME}\" or \"${file:/path}\". Never logged."),
    k("output", "ftp", "ca_file", Str, "none", "With `ftps://`: a PEM CA certificate trusted besides the public roots."),
    k("output", "ftp", "tls_verify", Bool, "true", "With `ftps://`: `false` accepts any certificate (a warning is logged at every start)."),
    k("output", "ftp", "passive", Bool, "true", "With `ftp`: `false` for active mode (PORT)."),
    k("output", "", "member", Str, "none", "In a document set: this output carries that member's bytes (\"{stem}.pdf\")."),
    k("output", "format", "format", Enum(OUTPUT_FORMAT), "\"original\"", "The records written in this shape; \"original\" writes the file's own bytes."),
    k("output", "format", "encoding", Str, "\"utf-8\"", "The encoding written."),
    k("output", "format", "on_unmappable", Enum(UNMAPPABLE), "\"error\"", "replace: characters the encoding lacks are written as ?."),
    k("output", "format", "line_ending", Enum(LINE_ENDING), "\"lf\"", "crlf for CR LF line ends."),
    k("output", "", "combine", Bool, "false", "On a scheduled job: a run's records all go into this one output (header once, trailer over the run)."),
    k("output", "csv", "delimiter", Str, "\",\"", "One character (\"tab\" for a tab)."),
    k("output", "csv", "quote", Str, "\"\\\"\"", "One character."),
    k("output", "csv", "quoting", Enum(QUOTING), "\"necessary\"", "Which values are quoted."),
    k("output", "csv", "header", Bool, "true", "Whether a header row is written."),
    k("output", "text", "header", Str, "none", "A minijinja template rendered once before the records."),
    k("output", "fixed", "column", Tables, "required", "The columns: name, start, length, align, pad; a longer value is an error."),
    k("output", "xml", "root", Str, "\"Records\"", "The root element."),
    k("output", "xml", "record", Str, "\"Record\"", "The element of one record."),
    k("output", "xml", "namespaces", StrMap, "none", "prefix = \"uri\" declared on the root."),
    k("output", "xml", "default_namespace", Str, "none", "The default namespace's URI."),
    k("output", "xml", "fields", StrMap, "none", "field = path below the record element (Name, Item/Name, @code)."),
    k("output", "xml", "indent", Bool, "true", "Indent the elements."),
    k("output", "xml", "declaration", Bool, "true", "Write the <?xml ...?> declaration."),
    k("output", "xml", "skip_empty", Bool, "false", "Leave out elements whose value is empty."),
    k("output", "text", "template", Str, "required", "A minijinja template rendered once per record."),
    k("output", "text", "footer", Str, "none", "A minijinja template rendered once after the records, with count and totals."),
    k("output", "extract", "extract", Enum(EXTRACT), "none", "PDFs: write each embedded file, page ranges, or a set's PDFs as one."),
    k("output", "extract", "attachments", StrList, "every file", "With `extract = \"attachments\"`: globs on the attachment's name, in either case."),
    k("output", "extract", "required", Bool, "true", "With `extract = \"attachments\"`: a PDF without a matching attachment fails."),
    k("output", "extract", "pages", Uint, "1", "With `extract = \"pages\"`: pages per file."),
    k("output", "extract", "ranges", StrList, "none", "With `extract = \"pages\"`: page ranges ([\"1\", \"2-3\", \"4-\"]), one file each."),
    k("output", "email", "email", Str, "none", "Send by mail instead of writing to a folder: \"mailto:a@x.example[,b@y.example]\"."),
    k("output", "email", "outbox", Str, "\"var/outbox/{job}/N\"", "The local folder the output is written to before sending."),
    k("output", "email", "smtp", Str, "required", "\"smtp://[USER@]host[:587]\" (STARTTLS) or \"smtps://[USER@]host[:465]\"."),
    k("output", "email", "password", Str, "none", "With a user in `smtp`: \"${env:NAME}\" or \"${file:/path}\"."),
    k("output", "email", "ca_file", Str, "none", "Extra CA certificates (PEM) trusted besides the usual roots."),
    k("output", "email", "from", Str, "required", "The sender address."),
    k("output", "email", "subject", Str, "names of the files", "A minijinja template with name, names, count, job, content."),
    k("output", "email", "body", Str, "names of the files", "A minijinja template with name, names, count, job, content."),
    k("output", "email", "per", Enum(PER), "\"file\"", "file: one mail per file; batch: one mail with every file waiting."),
    // [[output]] http = ... (issue 17, src/job/http.rs)
    k("output", "http", "http", Str, "none", "Send to a REST or SOAP service instead of a folder: \"https://erp.example/api/orders\"."),
    k("output", "http", "outbox", Str, "\"var/outbox/{job}/N\"", "With `http`: the local folder files wait in until sent."),
    k("output", "http", "connections", Uint, "4", "With `http`: files of this output sent in parallel (1 to 16)."),
    k("output", "http", "method", Enum(HTTP_METHOD), "\"POST\"", "With `http`: POST or PUT."),
    k("output", "http", "body", Enum(HTTP_BODY), "\"file\"", "With `http`: file: one request with the output file; record: one request per record."),
    k("output", "http", "template", Str, "none", "With `body = \"record\"`: a minijinja template of each request's body (a SOAP envelope); without it, JSON."),
    k("output", "http", "content_type", Str, "from the body", "With `http`: the Content-Type header."),
    k("output", "http", "headers", StrMap, "none", "With `http`: request headers; values may hold \"${env:NAME}\" or \"${file:/path}\". Never logged."),
    k("output", "http", "user", Str, "none", "With `http`: the user of basic authentication."),
    k("output", "http", "password", Str, "none", "With `http` and `user`: \"${env:NAME}\" or \"${file:/path}\". Never logged."),
    k("output", "http", "ca_file", Str, "none", "With `https://`: a PEM CA certificate trusted instead of the public roots."),
    k("output", "http", "client_cert", Str, "none", "With `https://`: a PEM client certificate (with its chain), for partners that require one."),
    k("output", "http", "client_key", Str, "none", "With `client_cert`: its PEM private key."),
    k("output", "http", "idempotency_header", Str, "\"Idempotency-Key\"", "With `http`: the header carrying each request's idempotency key; \"\" sends none."),
    k("output", "http", "response", Str, "none", "With `http`: save the answers as a file (\"var/out/responses/{stem}.json\")."),
    k("output", "http", "on_error", Enum(ON_ERROR), "\"fail\"", "With `http`: a refused record (4xx, SOAP fault) fails the file, or with skip is set aside."),
    k("output", "http", "soap_action", Str, "none", "With `http`: SOAP 1.1: the SOAPAction header; SOAP faults are errors with their fault string."),
    k("output", "http", "timeout", Duration, "\"60s\"", "With `http`: the longest one request may take."),
    // [[output]] webdav = ... (issue 17, src/job/webdav.rs)
    k("output", "webdav", "webdav", Str, "none", "Deliver to a WebDAV folder instead of a local one: \"https://cloud.example/remote.php/dav/files/USER/inbox\"."),
    k("output", "webdav", "outbox", Str, "\"var/outbox/{job}/N\"", "With `webdav`: the local folder files wait in until delivered."),
    k("output", "webdav", "connections", Uint, "4", "With `webdav`: parallel uploads for this output (1 to 16)."),
    k("output", "webdav", "user", Str, "none", "With `webdav`: the user of basic authentication (or in the URL: https://USER@host/...)."),
    k("output", "webdav", "password", Str, "none", "With `webdav`: \"${env:NAME}\" or \"${file:/path}\". Never logged."),
    k("output", "webdav", "ca_file", Str, "none", "With `https://`: a PEM CA certificate trusted instead of the public roots."),
    k("output", "webdav", "timeout", Duration, "\"60s\"", "With `webdav`: the longest a connection, an answer or a stalled transfer may take."),
    k("output", "database", "database", Str, "none", "Load the records into a table: \"postgres://USER@host:5432/db\", \"mysql://...\", \"mariadb://...\" or \"sqlite://PATH\"."),
    k("output", "database", "table", Str, "required", "The table the records go into (`schema.table` allowed)."),
    k("output", "database", "mode", Enum(DB_MODE), "\"insert\"", "insert: new rows; upsert: rows whose `key` exists are updated."),
    k("output", "database", "key", StrList, "none", "With `mode = \"upsert\"`: the columns that identify a row (a unique key of the table)."),
    k("output", "database", "columns", StrMap, "same names", "Record field = column; only these fields are loaded. Without it every field goes into the column of its name."),
    k("output", "database", "load_table", Str, "\"ferry_loads\"", "The table ferry records each load in (created on first use)."),
    k("output", "database", "create_table", Str, "none", "A statement that creates `table` when it does not exist (\"CREATE TABLE IF NOT EXISTS ...\"); without it a missing table fails the file."),
    k("output", "database", "password", Str, "none", "\"${env:NAME}\" or \"${file:/path}\". Never logged."),
    k("output", "database", "ca_file", Str, "none", "A PEM CA certificate: the server must offer TLS with a certificate it signed for the host."),
    k("output", "database", "outbox", Str, "\"var/outbox/{job}/N\"", "The local folder the records are spooled in before they are loaded."),
    // [after]
    k("after", "", "success", Enum(AFTER_SUCCESS), "\"archive\"", "After every output is committed: archive, delete or keep the original."),
    k("after", "", "archive", Str, "\"var/archive/{job}\"", "The archive folder; placeholders allowed."),
    k("after", "", "error", Str, "\"var/error/{job}\"", "The error folder; placeholders allowed."),
    k("after", "", "max_attempts", Uint, "3", "How many times a file may be taken before it is set aside in the error folder."),
    // [pdf]
    k("pdf", "", "timeout", Duration, "\"60s\"", "The longest the PDF work on one file may take (at least \"10ms\")."),
    k("pdf", "", "max_size", Uint, "268435456", "The largest PDF read at all, in bytes (256 MiB)."),
    k("pdf", "", "max_stream", Uint, "67108864", "The most one stream may decode to, in bytes."),
    // [retry] (the retry queue, issue 14)
    k("retry", "", "every", Duration, "\"1m\"", "The first retry comes about this long after a failure that may pass; then the wait doubles, with jitter."),
    k("retry", "", "max", Duration, "\"1h\"", "The longest wait between two tries."),
    k("retry", "", "for", Str, "\"7d\"", "How long a file is tried before it goes to the error folder: a duration, \"forever\", or \"0\" (no retries)."),
    // [expect] (two-way exchanges, issue 15)
    k("expect", "", "answer", Str, "none", "The answer's file name, a pattern of the request's: \"{stem}.ack\", \"ORDRSP_{OrderNo}.xml\" (one of answer, field)."),
    k("expect", "", "field", Str, "none", "A field the answer's records share with this file's records: \"OrderNo\" (one of answer, field)."),
    k("expect", "", "within", Duration, "required", "How long an answer may take: \"4h\"; later, it is reported overdue."),
    k("expect", "", "from", Str, "required", "The job whose files are the answers."),
    // [review] (review before release, issue 15)
    k("review", "", "key", Str, "none", "The field that identifies a record: a waiting file is compared with the last approved one by it."),
    k("review", "", "expires", Duration, "\"7d\"", "What waits longer for a decision is reported (log, `ferry status`, the admin alert); never dropped or released."),
    // [alert]
    k("alert", "", "email", Str, "required", "\"mailto:a@x.example[,b@y.example]\": who gets the alerts."),
    k("alert", "", "smtp", Str, "required", "\"smtp://[USER@]host[:587]\" (STARTTLS) or \"smtps://[USER@]host[:465]\"."),
    k("alert", "", "password", Str, "none", "With a user in `smtp`: \"${env:NAME}\" or \"${file:/path}\"."),
    k("alert", "", "ca_file", Str, "none", "Extra CA certificates (PEM) trusted besides the usual roots."),
    k("alert", "", "from", Str, "required", "The sender address."),
    k("alert", "", "subject", Str, "\"ferry {{ job }}: {{ name }}\"", "A minijinja template."),
    k("alert", "", "body", Str, "\"{{ content }}\"", "A minijinja template; content is the error report."),
    k("alert", "", "per", Enum(PER), "\"file\"", "file: one mail per failed file; batch: one mail for several."),
    k("alert", "", "daily", Str, "none", "\"HH:MM\": the local time of a daily summary."),
];

/// The key names a table of this kind takes, each once, in declaration order: every key of
/// `table` but those of a kind in [`OPT_IN`] other than `kind` (`"mailbox"` for a mailbox
/// source, `"email"` for an email output, `""` otherwise).
pub fn known(table: &str, kind: &str) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for key in KEYS.iter().filter(|k| k.table == table) {
        if OPT_IN.contains(&key.when) && key.when != kind {
            continue;
        }
        if !out.contains(&key.name) {
            out.push(key.name);
        }
    }
    out
}

/// The JSON Schema (draft-07, which taplo and VS Code's "Even Better TOML" read) of a job
/// file: every table closed (`additionalProperties: false`), each key with its description,
/// default and allowed values. `ferry schema` prints it.
pub fn json_schema() -> Value {
    let mut definitions = Map::new();
    let tables: Vec<&str> = KEYS.iter().fold(Vec::new(), |mut v, k| {
        if !k.table.is_empty() && !v.contains(&k.table) {
            v.push(k.table);
        }
        v
    });
    for table in tables {
        definitions.insert(table.to_string(), table_schema(table));
    }
    let mut top = table_schema("");
    let top = top.as_object_mut().expect("an object");
    let mut root = Map::new();
    root.insert(
        "$schema".into(),
        json!("http://json-schema.org/draft-07/schema#"),
    );
    root.insert("title".into(), json!("ferry job file"));
    root.insert(
        "description".into(),
        json!("One ferry job: where files come from, what is made of them, where they go."),
    );
    root.append(top);
    root.insert("required".into(), json!(["source"]));
    root.insert("definitions".into(), Value::Object(definitions));
    Value::Object(root)
}

/// The schema of one table: its keys, each once (a key several kinds take has their
/// descriptions together, and a default only when they agree).
fn table_schema(table: &str) -> Value {
    let keys: Vec<&Key> = KEYS.iter().filter(|k| k.table == table).collect();
    keys_schema(&keys)
}

/// The schema of a table of these keys (ferry.toml's tables are made of them too).
pub(crate) fn keys_schema(keys: &[&Key]) -> Value {
    let mut properties = Map::new();
    for key in keys {
        if properties.contains_key(key.name) {
            continue;
        }
        let same: Vec<&&Key> = keys.iter().filter(|k| k.name == key.name).collect();
        let mut types: Vec<Value> = Vec::new();
        for k in &same {
            let t = type_schema(k);
            if !types.contains(&t) {
                types.push(t);
            }
        }
        let mut p = if types.len() == 1 {
            types.pop().expect("one")
        } else {
            json!({ "anyOf": types })
        };
        let p = p.as_object_mut().expect("an object");
        let description = if same.len() == 1 {
            key.doc.to_string()
        } else {
            same.iter()
                .map(|k| match k.when {
                    "" => k.doc.to_string(),
                    w => format!("With {w}: {}", k.doc),
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        p.insert("description".into(), json!(description));
        let defaults: Vec<Option<Value>> = same.iter().map(|k| default_value(k)).collect();
        if let Some(Some(d)) = defaults.first()
            && defaults.iter().all(|x| x.as_ref() == Some(d))
        {
            p.insert("default".into(), d.clone());
        }
        properties.insert(key.name.to_string(), Value::Object(p.clone()));
    }
    json!({
        "type": "object",
        "properties": properties,
        "additionalProperties": false,
    })
}

/// The definition a `Table` or `Tables` key refers to.
fn child_table(key: &Key) -> String {
    if key.name == "column" {
        "column".into()
    } else if key.table.is_empty() {
        key.name.into()
    } else {
        format!("{}.{}", key.table, key.name)
    }
}

fn type_schema(key: &Key) -> Value {
    let strings = json!({ "type": "array", "items": { "type": "string" } });
    match key.ty {
        Str => json!({ "type": "string" }),
        Uint => json!({ "type": "integer", "minimum": 0 }),
        Bool => json!({ "type": "boolean" }),
        Duration => json!({
            "type": "string",
            "pattern": r"^\s*(0|([0-9]+\s*(ms|s|sec|m|min|h|d)\s*)+)$",
        }),
        Enum(values) => json!({ "type": "string", "enum": values }),
        StrList => json!({ "anyOf": [{ "type": "string" }, strings] }),
        Table => json!({ "$ref": format!("#/definitions/{}", child_table(key)) }),
        Tables => {
            let one = json!({ "$ref": format!("#/definitions/{}", child_table(key)) });
            json!({ "anyOf": [{ "type": "array", "items": one }, one] })
        }
        StrMap => json!({ "type": "object", "additionalProperties": { "type": "string" } }),
        StrListMap => json!({
            "type": "object",
            "additionalProperties": { "anyOf": [{ "type": "string" }, strings] },
        }),
    }
}

/// The default as a JSON value, when it is one (`"2s"`, `false`, `4`, a list); `none`,
/// `required` and words are not.
pub fn default_value(key: &Key) -> Option<Value> {
    serde_json::from_str(key.default).ok()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    thread_local! {
        /// (table, kind, the keys its reader asked for) of every table finished on this
        /// thread.
        static READS: RefCell<Vec<(String, String, BTreeSet<String>)>> =
            const { RefCell::new(Vec::new()) };
    }

    /// Called by `TableReader::finish_as`: what a reader asked for (present or not).
    pub(crate) fn record_read(table: &str, kind: &str, read: &BTreeSet<String>) {
        READS.with(|r| {
            r.borrow_mut()
                .push((table.to_string(), kind.to_string(), read.clone()))
        });
    }

    /// Job files that between them take every kind of every table: each reader asks for
    /// every key its kind may have, set or not.
    const JOBS: &[&str] = &[
        r#"
[source]
folder = "in"
[input]
format = "csv"
[[output]]
database = "postgres://u@h/db"
table = "t"
mode = "upsert"
key = ["a"]
columns = { a = "a" }
load_table = "l"
create_table = "CREATE TABLE t (a text)"
password = "${env:X}"
ca_file = "ca.pem"
outbox = "ob"
"#,
        r#"
description = "folder in, csv to xml, text and fixed out"
[source]
folder = "in"
contains = ["x"]
[source.set]
manifest = "*.manifest"
[input]
format = "csv"
[transform]
filter = "true"
[[output]]
folder = "out"
format = "xml"
[[output]]
folder = "out"
format = "text"
template = "{{ x }}"
[[output]]
folder = "out"
format = "fixed"
[[output.column]]
name = "a"
start = 1
length = 2
[[output]]
folder = "out"
format = "csv"
[[output]]
folder = "out"
format = "json"
[after]
success = "archive"
[pdf]
timeout = "5s"
[retry]
every = "1m"
[expect]
field = "x"
within = "1h"
from = "other"
[review]
key = "x"
expires = "7d"
[alert]
email = "mailto:a@x.example"
smtp = "smtp://host"
from = "f@x.example"
"#,
        r#"
[source]
ftp = "ftp://u@127.0.0.1/in"
[input]
format = "xml"
record = "/a"
[input.fields]
x = "b"
[[output]]
ftp = "ftp://u@127.0.0.1/out"
"#,
        r#"
[source]
mailbox = "imaps://u@127.0.0.1/INBOX"
password = "x"
[input]
format = "text"
[input.items]
line = '(?P<x>\d+)'
[[output]]
email = "mailto:a@x.example"
smtp = "smtp://127.0.0.1"
from = "f@x.example"
"#,
        r#"
[source]
folder = "in"
[input]
format = "fixed"
[[input.column]]
name = "a"
start = 1
length = 2
[[output]]
folder = "out"
extract = "pages"
"#,
        r#"
[source]
folder = "in"
[input]
format = "json"
"#,
        r#"
[source]
folder = "in"
[input]
format = "csv"
[[output]]
http = "https://127.0.0.1/x"
outbox = "var/o"
connections = 2
method = "PUT"
body = "record"
template = "{{ a }}"
content_type = "text/xml"
user = "u"
password = "${env:P}"
ca_file = "ca.pem"
client_cert = "c.pem"
client_key = "k.pem"
idempotency_header = "X-Key"
response = "var/r/{stem}.json"
on_error = "skip"
soap_action = "urn:x"
timeout = "5s"
[output.headers]
Authorization = "Bearer ${env:T}"
"#,
        r#"
[source]
webdav = "https://127.0.0.1/out"
staging = "var/s"
success = "move"
move_to = "done"
connections = 2
user = "u"
password = "${env:P}"
ca_file = "ca.pem"
timeout = "5s"
[[output]]
webdav = "https://127.0.0.1/in"
outbox = "var/o"
connections = 2
user = "u"
password = "${env:P}"
ca_file = "ca.pem"
timeout = "5s"
"#,
        r#"
[source]
database = "sqlite://x.db"
query = "SELECT a FROM t WHERE a > :since"
watermark = "a"
since = "0"
empty = "process"
ca_file = "ca.pem"
poll = "1m"
staging = "var/s"
"#,
    ];

    fn declared(table: &str) -> BTreeSet<String> {
        KEYS.iter()
            .filter(|k| k.table == table)
            .map(|k| k.name.to_string())
            .collect()
    }

    #[test]
    fn every_declared_key_is_read_and_every_read_key_declared() {
        READS.with(|r| r.borrow_mut().clear());
        let root = Path::new("/tmp/ferry-keys-test");
        for (i, src) in JOBS.iter().enumerate() {
            let _ = crate::job::compile(&root.join(format!("jobs/k{i}.toml")), root, src);
        }
        let reads = READS.with(|r| r.borrow().clone());
        let mut read_by_table: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (table, kind, read) in &reads {
            let known = known(table, kind);
            for key in read {
                assert!(
                    known.contains(&key.as_str())
                        || RETIRED.contains(&(table.as_str(), key.as_str())),
                    "[{table}] ({kind:?}): the reader takes `{key}`, not declared in keys::KEYS"
                );
            }
            read_by_table
                .entry(table.clone())
                .or_default()
                .extend(read.iter().cloned());
        }
        let tables: BTreeSet<&str> = KEYS.iter().map(|k| k.table).collect();
        for table in tables {
            let read: BTreeSet<String> = read_by_table
                .get(table)
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|k| !RETIRED.contains(&(table, k.as_str())))
                .collect();
            assert_eq!(
                declared(table),
                read,
                "[{table}]: declared keys (left) and keys the readers take (right) differ"
            );
        }
    }

    #[test]
    fn known_lists_follow_the_kind() {
        assert!(known("source", "").contains(&"ftp"));
        assert!(!known("source", "").contains(&"mailbox"));
        assert!(known("source", "mailbox").contains(&"mailbox"));
        assert!(!known("output", "").contains(&"smtp"));
        assert!(known("output", "email").contains(&"smtp"));
        let names = known("source", "mailbox");
        let unique: BTreeSet<_> = names.iter().collect();
        assert_eq!(unique.len(), names.len(), "each name once");
    }

    /// A key as a row of a README key table says it: where, which kind, its default.
    #[derive(Debug)]
    struct Row {
        line: usize,
        table: String,
        when: String,
        name: String,
        default: String,
    }

    /// A default as text to compare: a JSON string's content (`"2s"` is `2s`), else as
    /// written, without backticks.
    fn normal(default: &str) -> String {
        let d = default.replace('`', "");
        let d = d.trim();
        match serde_json::from_str::<Value>(d) {
            Ok(Value::String(s)) => s,
            _ => d.to_string(),
        }
    }

    fn spans(cell: &str) -> Vec<String> {
        cell.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    }

    /// Splits a default cell among `n` keys: `1`, none / `,` `"` none none.
    fn split_defaults(cell: &str, n: usize) -> Vec<String> {
        if n > 1 {
            let by_comma: Vec<&str> = cell.split(", ").collect();
            if by_comma.len() == n {
                return by_comma.iter().map(|d| normal(d)).collect();
            }
            let words: Vec<&str> = cell.split_whitespace().collect();
            if words.len() == n
                && words
                    .iter()
                    .all(|w| *w == "none" || (w.starts_with('`') && w.ends_with('`')))
            {
                return words.iter().map(|d| normal(d)).collect();
            }
        }
        vec![normal(cell); n]
    }

    /// The rows of README.md's key tables (those with a `default` column). A key written
    /// `[table] name` sets the table of the rows below it (and the kind, for `ftp`,
    /// `mailbox` and `email`); `[table]` beside a plain key names its tables for that row
    /// and the rows below; `[input.fields]` alone is the key `fields` of `[input]`. A
    /// table's first table comes from a `**`[input]` keys**` line above it.
    fn readme_rows(readme: &str) -> Vec<Row> {
        let lines: Vec<&str> = readme.lines().collect();
        let mut rows = Vec::new();
        let mut i = 0;
        while i < lines.len() {
            let header: Vec<&str> = lines[i].split('|').map(str::trim).collect();
            if !(lines[i].starts_with("| key |") && header.contains(&"default")) {
                i += 1;
                continue;
            }
            let default_col = header.iter().position(|c| *c == "default").unwrap();
            let formats_col = header.iter().position(|c| *c == "formats");
            let above = lines[..i]
                .iter()
                .rev()
                .find(|l| !l.trim().is_empty())
                .copied()
                .unwrap_or("");
            let mut tables = match above.strip_prefix("**`[") {
                Some(rest) => vec![rest.split(']').next().unwrap().to_string()],
                None => vec![String::new()],
            };
            let mut when = String::new();
            i += 2;
            while i < lines.len() && lines[i].starts_with('|') {
                let cells: Vec<&str> = lines[i].split('|').map(str::trim).collect();
                let items = spans(cells[1]);
                let plain: Vec<&String> = items.iter().filter(|s| !s.starts_with('[')).collect();
                let mut names: Vec<(Vec<String>, String)> = Vec::new();
                let mut row_tables: Vec<String> = Vec::new();
                for item in &items {
                    let Some(rest) = item.strip_prefix('[') else {
                        continue;
                    };
                    let rest = rest.trim_start_matches('[');
                    let (table, name) = rest.split_once(']').unwrap();
                    let name = name.trim_start_matches(']').trim();
                    if !name.is_empty() {
                        if !tables.iter().any(|t| t == table) || tables.len() > 1 {
                            when.clear();
                        }
                        if ["ftp", "mailbox", "email", "http", "database", "webdav"].contains(&name) {
                            when = name.to_string();
                        }
                        tables = vec![table.to_string()];
                        names.push((tables.clone(), name.to_string()));
                    } else if !plain.is_empty() {
                        row_tables.push(table.to_string());
                    } else {
                        let (parent, name) = table.rsplit_once('.').unwrap_or(("", table));
                        names.push((vec![parent.to_string()], name.to_string()));
                    }
                }
                if !row_tables.is_empty() {
                    tables = row_tables;
                }
                for p in plain {
                    names.push((tables.clone(), p.clone()));
                }
                let kinds: Vec<String> = match formats_col.map(|c| cells[c]) {
                    None | Some("all") | Some("all but pdf") => vec![when.clone()],
                    Some(f) => f.split(", ").map(str::to_string).collect(),
                };
                let defaults = split_defaults(cells[default_col], names.len().max(kinds.len()));
                for (n, (tables, name)) in names.iter().enumerate() {
                    for (k, kind) in kinds.iter().enumerate() {
                        for table in tables {
                            rows.push(Row {
                                line: i + 1,
                                table: table.clone(),
                                when: kind.clone(),
                                name: name.clone(),
                                default: defaults[n.max(k)].clone(),
                            });
                        }
                    }
                }
                i += 1;
            }
        }
        rows
    }

    /// Tables (and kinds of a table) the README describes in a paragraph instead of a key
    /// table: each key must be named there, as `` `key` `` or `[table.key]`.
    const PROSE: &[(&str, &[&str], &str)] = &[
        ("transform", &[""], "**`[transform]` keys**"),
        (
            "output",
            &["format", "csv", "xml", "text", "fixed"],
            "**Output formats**",
        ),
        ("input.items", &[""], "| `[input.items]` |"),
        ("column", &[""], "| `[[input.column]]` |"),
        ("alert", &[""], "| `[alert]` |"),
    ];

    #[test]
    fn readme_key_tables_agree_with_the_declaration() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
            .expect("README.md");
        let rows = readme_rows(&readme);
        assert!(
            rows.len() > 80,
            "the README's key tables were read ({})",
            rows.len()
        );
        let mut problems = Vec::new();
        for row in &rows {
            let same: Vec<&Key> = KEYS
                .iter()
                .filter(|k| k.table == row.table && k.name == row.name)
                .collect();
            let key = same
                .iter()
                .find(|k| k.when == row.when)
                .or_else(|| same.iter().find(|k| k.when.is_empty()))
                .or(same.first());
            match key {
                None => problems.push(format!(
                    "README.md:{}: `{}` of [{}] is not declared in src/job/keys.rs",
                    row.line, row.name, row.table
                )),
                Some(k) if normal(k.default) != row.default => problems.push(format!(
                    "README.md:{}: [{}] {} ({}): the README's default is {:?}, the declaration's {:?}",
                    row.line, row.table, row.name, k.when, row.default, k.default
                )),
                Some(_) => {}
            }
        }
        for key in KEYS {
            let prose = PROSE
                .iter()
                .find(|(t, kinds, _)| *t == key.table && kinds.contains(&key.when));
            match prose {
                Some((_, _, anchor)) => {
                    let at = readme.find(anchor).expect("the README part");
                    let end = readme[at..].find("\n\n").map_or(readme.len(), |e| at + e);
                    let text = &readme[at..end];
                    let named = [
                        format!("`{}`", key.name),
                        format!("`{} ", key.name),
                        format!(" {}`", key.name),
                        format!(".{}]", key.name),
                    ];
                    if !named.iter().any(|n| text.contains(n)) {
                        problems.push(format!(
                            "README.md: `{}` of [{}] is not named in the part {anchor}",
                            key.name, key.table
                        ));
                    }
                }
                None => {
                    let path = match key.table {
                        "" => format!("[{}]", key.name),
                        t => format!("[{t}.{}]", key.name),
                    };
                    let a_table = matches!(key.ty, Table | Tables) && readme.contains(&path);
                    if !a_table
                        && !rows
                            .iter()
                            .any(|r| r.table == key.table && r.name == key.name)
                    {
                        problems.push(format!(
                            "README.md: `{}` of [{}] ({}) has no row in the key tables",
                            key.name, key.table, key.when
                        ));
                    }
                }
            }
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    /// A job that reaches the reader of `table` for keys of kind `when`, with `kv` in that
    /// table.
    fn job_with(table: &str, when: &str, name: &str, kv: &str) -> String {
        let src = "[source]\nfolder = \"in\"\n";
        let csv = "[input]\nformat = \"csv\"\n";
        let format = if name == "format" {
            ""
        } else {
            "format = \"csv\"\n"
        };
        match (table, when) {
            ("source", "ftp") => format!("[source]\nftp = \"ftp://u@127.0.0.1/in\"\n{kv}"),
            ("source", "webdav") => format!("[source]\nwebdav = \"http://127.0.0.1/in\"\n{kv}"),
            ("output", "webdav") => {
                format!("{src}{csv}[[output]]\nwebdav = \"http://127.0.0.1:1/x\"\n{kv}")
            }
            ("source", "mailbox") => {
                format!("[source]\nmailbox = \"imaps://u@127.0.0.1/INBOX\"\npassword = \"x\"\n{kv}")
            }
            ("source", "database") => {
                format!("[source]\ndatabase = \"sqlite://x.db\"\nquery = \"SELECT 1\"\n{kv}")
            }
            ("source", _) => format!("{src}{kv}"),
            ("source.set", _) => format!("{src}[source.set]\nmanifest = \"*.m\"\n{kv}"),
            ("input", "text") => format!("{src}[input]\nformat = \"text\"\n{kv}"),
            ("input", _) => format!("{src}[input]\n{format}{kv}"),
            ("column", _) => format!(
                "{src}[input]\nformat = \"fixed\"\n[[input.column]]\nname = \"a\"\nstart = 1\nlength = 1\n{kv}"
            ),
            ("output", "http") => {
                format!("{src}{csv}[[output]]\nhttp = \"http://127.0.0.1:1/x\"\n{kv}")
            }
            ("output", "database") => {
                format!("{src}{csv}[[output]]\ndatabase = \"sqlite://x.db\"\ntable = \"t\"\n{kv}")
            }
            ("output", "email") => format!(
                "{src}[[output]]\nemail = \"mailto:a@x.example\"\nsmtp = \"smtp://127.0.0.1\"\nfrom = \"f@x.example\"\n{kv}"
            ),
            ("output", "csv") => {
                format!("{src}{csv}[[output]]\nfolder = \"out\"\nformat = \"csv\"\n{kv}")
            }
            ("output", _) => format!("{src}{csv}[[output]]\nfolder = \"out\"\n{kv}"),
            ("alert", _) => format!(
                "{src}[alert]\nemail = \"mailto:a@x.example\"\nsmtp = \"smtp://127.0.0.1\"\nfrom = \"f@x.example\"\n{kv}"
            ),
            (t, _) => format!("{src}[{t}]\n{kv}"),
        }
    }

    /// The readers' lists of allowed words are the declared ones, in the same order: a
    /// wrong word's error names exactly the declared values.
    #[test]
    fn allowed_values_are_the_readers() {
        let root = Path::new("/tmp/ferry-keys-test");
        for key in KEYS {
            let Enum(values) = key.ty else { continue };
            let src = job_with(
                key.table,
                key.when,
                key.name,
                &format!("{} = \"zzz\"\n", key.name),
            );
            let diags = crate::job::compile(&root.join("jobs/e.toml"), root, &src)
                .err()
                .unwrap_or_default();
            let diag = diags
                .iter()
                .find(|d| d.key.ends_with(&format!(".{}", key.name)) && d.message.contains("found"))
                .unwrap_or_else(|| {
                    panic!(
                        "[{}] {}: no error for \"zzz\" in {diags:#?}",
                        key.table, key.name
                    )
                });
            let listed: Vec<&str> = diag
                .message
                .split(", found")
                .next()
                .unwrap()
                .split('"')
                .skip(1)
                .step_by(2)
                .collect();
            assert_eq!(
                listed, values,
                "[{}] {} ({}): {}",
                key.table, key.name, key.when, diag.message
            );
        }
    }
}
