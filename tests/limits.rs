//! `[input] max_record`: in every input format a record just under the limit is read, one
//! just over it fails the file with a report naming the record, its line and byte offset;
//! a record that never ends fails without being held in memory.

mod util;

use util::*;

/// The limit the tests configure: small, so that the files stay small.
const MAX: usize = 4096;

fn job(input: &str) -> String {
    format!(
        r#"
[source]
folder = "in"
settle = "0s"

[input]
max_record = {MAX}
{input}

[[output]]
folder = "out"
name = "{{stem}}.csv"
format = "csv"
"#
    )
}

fn xs(n: usize) -> String {
    "x".repeat(n)
}

/// Runs a job over `under.EXT` and `over.EXT`: the first is converted (its output holds
/// the long value), the second fails with a report that says `report`.
fn under_passes_over_fails(
    name: &str,
    input: &str,
    ext: &str,
    under: String,
    over: String,
    report: &str,
) {
    let d = Deployment::new(&format!("limits-{name}"));
    d.job(name, &job(input));
    d.write(&format!("in/under.{ext}"), under);
    d.write(&format!("in/over.{ext}"), over);
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(1), "one file failed: {}", stderr(&o));
    assert_eq!(d.files("out"), vec!["under.csv"], "{}", stderr(&o));
    let out = String::from_utf8(read(&d.path("out/under.csv"))).unwrap();
    assert!(
        out.contains(&xs(MAX - 100)),
        "the long value is written whole"
    );
    let text =
        std::fs::read_to_string(d.path(&format!("var/error/{name}/over.{ext}.error.txt"))).unwrap();
    let want = format!(
        "{report}: the record is larger than max_record ({MAX} bytes); the file is not read further (raise `[input] max_record` if records this large are expected)"
    );
    assert!(text.contains(&want), "want {want:?} in:\n{text}");
}

#[test]
fn csv_records_under_and_over_the_limit() {
    under_passes_over_fails(
        "csv",
        r#"format = "csv""#,
        "csv",
        format!("id,text\n1,{}\n2,short\n", xs(MAX - 100)),
        // The header and the first row are 8 bytes each.
        format!("id,text\n1,short\n2,{}\n3,short\n", xs(MAX + 100)),
        "record 2 (line 3, byte 16)",
    );
}

#[test]
fn json_lines_records_under_and_over_the_limit() {
    under_passes_over_fails(
        "jsonl",
        r#"format = "jsonl""#,
        "jsonl",
        format!("{{\"a\":\"{}\"}}\n{{\"a\":\"b\"}}\n", xs(MAX - 100)),
        format!(
            "{{\"a\":\"1\"}}\n{{\"a\":\"{}\"}}\n{{\"a\":\"3\"}}\n",
            xs(MAX + 100)
        ),
        "record 2 (line 2, byte 10)",
    );
}

#[test]
fn json_array_records_under_and_over_the_limit() {
    under_passes_over_fails(
        "json",
        r#"format = "json""#,
        "json",
        format!("[{{\"a\":\"{}\"}},\n{{\"a\":\"b\"}}]\n", xs(MAX - 100)),
        format!(
            "[{{\"a\":\"1\"}},\n{{\"a\":\"{}\"}},\n{{\"a\":\"3\"}}]\n",
            xs(MAX + 100)
        ),
        "record 2 (line 2, byte 12)",
    );
}

#[test]
fn xml_records_under_and_over_the_limit() {
    under_passes_over_fails(
        "xml",
        "format = \"xml\"\nrecord = \"/r/rec\"\n[input.fields]\nA = \"a\"",
        "xml",
        format!(
            "<r>\n<rec><a>{}</a></rec>\n<rec><a>b</a></rec>\n</r>\n",
            xs(MAX - 100)
        ),
        // A record's byte offset is where its content starts, after `<rec>`.
        format!(
            "<r>\n<rec><a>1</a></rec>\n<rec><a>{}</a></rec>\n<rec><a>3</a></rec>\n</r>\n",
            xs(MAX + 100)
        ),
        "record 2 (line 3, byte 29)",
    );
}

#[test]
fn fixed_width_records_under_and_over_the_limit() {
    under_passes_over_fails(
        "fixed",
        "format = \"fixed\"\n[[input.column]]\nname = \"A\"\nstart = 1\nlength = 5000",
        "txt",
        format!("{}\nshort\n", xs(MAX - 100)),
        format!("short\n{}\nshort\n", xs(MAX + 100)),
        "record 2 (line 2, byte 6)",
    );
}

#[test]
fn text_lines_under_and_over_the_limit() {
    under_passes_over_fails(
        "text",
        r#"format = "text""#,
        "txt",
        format!("{}\nshort\n", xs(MAX - 100)),
        format!("short\n\n{}\nshort\n", xs(MAX + 100)),
        "record 2 (line 3, byte 7)",
    );
}

#[test]
fn text_capture_reads_at_most_the_limit() {
    under_passes_over_fails(
        "capture",
        "format = \"text\"\nmode = \"capture\"\n[input.capture]\nA = ['(x+)']",
        "txt",
        format!("{}\n", xs(MAX - 100)),
        format!("{}\n", xs(MAX + 100)),
        "record 1 (line 1, byte 0)",
    );
}

/// The old name of the text limit is refused with the new one.
#[test]
fn max_bytes_is_now_max_record() {
    let d = Deployment::new("limits-old-key");
    d.job(
        "old",
        "[source]\nfolder = \"in\"\n[input]\nformat = \"text\"\nmax_bytes = 10\n[[output]]\nfolder = \"out\"\nformat = \"csv\"\n",
    );
    let o = d.run(&["check"]);
    assert_ne!(o.status.code(), Some(0));
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert!(
        all.contains(
            "`max_bytes` is now `max_record` (bytes), the record size limit of every input format"
        ),
        "{all}"
    );
}

/// A CSV whose row never ends (no line break at all after the header) fails once the row
/// passes the limit, not at the end of the file: the reader does not hold it, and the
/// peak memory of ferry stays far below the file's size.
#[test]
fn a_row_without_end_fails_without_being_held() {
    const MIB: usize = 1024 * 1024;
    let d = Deployment::new("limits-endless");
    d.job(
        "endless",
        r#"
[source]
folder = "in"
settle = "0s"

[input]
format = "csv"
max_record = 1048576

[[output]]
folder = "out"
name = "{stem}.csv"
format = "csv"
"#,
    );
    // Written in pieces: a child's peak RSS counts its parent's at the time it was
    // started, so this process stays small.
    {
        use std::io::Write;
        let mut f = std::fs::File::create(d.mkdir("in").join("endless.csv")).unwrap();
        f.write_all(b"a\n").unwrap();
        let chunk = vec![b'x'; MIB];
        for _ in 0..96 {
            f.write_all(&chunk).unwrap();
        }
    }
    let child = d
        .cmd(&["run", "--once"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (code, peak) = wait_measured(child);
    assert_eq!(code, 1);
    assert!(d.files("out").is_empty());
    let text = std::fs::read_to_string(d.path("var/error/endless/endless.csv.error.txt")).unwrap();
    assert!(
        text.contains(
            "record 1 (line 2, byte 2): the record is larger than max_record (1048576 bytes)"
        ),
        "{text}"
    );
    // Before the limit a 96 MiB row took about five times its size; a run over a small
    // file takes about 15 MiB (release) to 30 MiB (debug).
    assert!(peak < 64 * MIB as u64, "peak RSS {} MiB", peak / MIB as u64);
}

/// Waits for `child`; returns its exit code and peak RSS in bytes.
fn wait_measured(child: std::process::Child) -> (i32, u64) {
    let mut status = 0;
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: the pid is our child's, not yet waited for; `status` and `ru` are valid,
    // writable memory for wait4 to fill.
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut ru) };
    assert_eq!(pid, child.id() as libc::pid_t);
    assert!(libc::WIFEXITED(status), "status {status}");
    (libc::WEXITSTATUS(status), ru.ru_maxrss as u64 * 1024)
}
