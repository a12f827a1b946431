//! Document sets (`[source.set]`) and content routing (`[source] contains`), driven
//! through the binary: complete, late, incomplete and timed-out sets, a set failing as
//! one, kills at random moments, and PDFs routed to jobs by their text.

mod util;

use std::path::{Path, PathBuf};
use std::time::Duration;

use util::*;

const WAIT: Duration = Duration::from_secs(60);

fn pdf(name: &str) -> Vec<u8> {
    let p: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/pdf/pdf-invoices")
        .join(name);
    read(&p)
}

fn index(number: &str) -> String {
    format!(
        "<?xml version=\"1.0\"?>\n<Index><Document type=\"invoice\"><Number>{number}</Number><Supplier>ACME</Supplier></Document></Index>\n"
    )
}

fn set_job(timeout: &str) -> String {
    format!(
        r#"
[source]
folder = "in"
settle = "200ms"
poll = "200ms"

[source.set]
members = ["{{stem}}.xml", "{{stem}}.pdf"]
timeout = "{timeout}"

[input]
format = "xml"
record = "/"
[input.fields]
Number = "/Index/Document/Number"
Supplier = "/Index/Document/Supplier"

[[output]]
folder = "out"
member = "{{stem}}.pdf"
name = "{{Supplier}}_{{Number}}.pdf"

[after]
archive = "archive"
error = "error"
"#
    )
}

#[test]
fn a_complete_set_is_renamed_by_its_index_and_archived_as_one() {
    let d = Deployment::new("set-complete");
    d.job("scans", &set_job("1h"));
    d.write("in/S1.xml", index("INV-1"));
    d.write("in/S1.pdf", pdf("FlipkartInvoice.pdf"));
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(d.files("out"), ["ACME_INV-1.pdf"]);
    assert_eq!(
        read(&d.path("out/ACME_INV-1.pdf")),
        pdf("FlipkartInvoice.pdf")
    );
    assert_eq!(d.files("archive"), ["S1.pdf", "S1.xml"]);
    assert!(d.files("in").is_empty());
    // Both members are in the journal, done.
    let h = d.history();
    assert_eq!(h.len(), 2, "{h:?}");
}

#[test]
fn a_set_waits_for_its_late_member_then_goes_as_one() {
    let d = Deployment::new("set-late");
    d.job("scans", &set_job("1h"));
    let mut daemon = Daemon::start(&d, &[]);
    d.write("in/S2.xml", index("INV-2"));
    // The index alone is not taken: give the daemon several polls and settles.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(d.files("out").is_empty());
    assert_eq!(d.files("in"), ["S2.xml"]);
    d.write("in/S2.pdf", pdf("FlipkartInvoice.pdf"));
    wait_for("the set to be archived", WAIT, || {
        d.files("archive") == ["S2.pdf", "S2.xml"]
    });
    assert_eq!(d.files("out"), ["ACME_INV-2.pdf"]);
    daemon.stop();
}

#[test]
fn once_leaves_an_incomplete_set_alone() {
    let d = Deployment::new("set-once");
    d.job("scans", &set_job("1h"));
    d.write("in/S3.xml", index("INV-3"));
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(d.files("in"), ["S3.xml"]);
    assert!(d.files("out").is_empty() && d.files("error").is_empty());
}

#[test]
fn an_incomplete_set_times_out_to_the_error_folder_naming_what_is_missing() {
    let d = Deployment::new("set-timeout");
    d.job("scans", &set_job("1s"));
    let mut daemon = Daemon::start(&d, &[]);
    d.write("in/S4.xml", index("INV-4"));
    d.write("in/S5.pdf", pdf("FlipkartInvoice.pdf"));
    wait_for("both to be in the error folder", WAIT, || {
        d.files("error").len() == 4
    });
    daemon.stop();
    let r4 = String::from_utf8(read(&d.path("error/S4.xml.error.txt"))).unwrap();
    assert!(
        r4.contains("incomplete") && r4.contains("missing: S4.pdf"),
        "{r4}"
    );
    let r5 = String::from_utf8(read(&d.path("error/S5.pdf.error.txt"))).unwrap();
    assert!(r5.contains("S5.xml is missing"), "{r5}");
    assert!(d.files("out").is_empty() && d.files("in").is_empty());
}

#[test]
fn a_set_whose_index_is_bad_fails_as_one() {
    let d = Deployment::new("set-bad-index");
    d.job("scans", &set_job("1h"));
    d.write("in/S6.xml", "<Index><Document>");
    d.write("in/S6.pdf", pdf("FlipkartInvoice.pdf"));
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(
        d.files("error"),
        ["S6.pdf", "S6.pdf.error.txt", "S6.xml", "S6.xml.error.txt"]
    );
    let r = String::from_utf8(read(&d.path("error/S6.pdf.error.txt"))).unwrap();
    assert!(r.contains("document set of S6.xml"), "{r}");
    assert!(d.files("out").is_empty() && d.files("in").is_empty());
}

/// Kills ferry at moments spread over the processing of many sets; after a clean run at
/// the end every set is delivered exactly once and both its members are archived.
#[test]
fn sets_survive_kills_at_any_moment() {
    let d = Deployment::new("set-crash");
    d.job("scans", &set_job("1h"));
    let n = 24;
    for i in 0..n {
        d.write(&format!("in/C{i:02}.xml"), index(&format!("N{i:02}")));
        d.write(&format!("in/C{i:02}.pdf"), pdf("FlipkartInvoice.pdf"));
    }
    for round in 0..8u64 {
        let mut daemon = Daemon::start(&d, &["--workers", "4"]);
        // Pseudo-random pauses from 150 to 650 ms: some land before taking, some mid-way.
        std::thread::sleep(Duration::from_millis(150 + (round * 7919) % 500));
        daemon.stop_with(libc::SIGKILL);
    }
    let o = d.run(&["run", "--once"]);
    assert!(o.status.code().is_some(), "{}", stderr(&o));
    let out = d.files("out");
    let want: Vec<String> = (0..n).map(|i| format!("ACME_N{i:02}.pdf")).collect();
    assert_eq!(out, want, "every set delivered exactly once");
    let archived = d.files("archive");
    assert_eq!(archived.len(), 2 * n, "{archived:?}");
    assert!(d.files("in").is_empty());
    assert!(d.files("error").is_empty(), "{:?}", d.files("error"));
}

#[test]
fn pdfs_are_routed_by_their_text() {
    let d = Deployment::new("route");
    let job = |needle: &str, out: &str| {
        format!(
            r#"
[source]
folder = "in"
include = "*.pdf"
settle = "0s"
contains = ["{needle}"]

[[output]]
folder = "{out}"
"#
        )
    };
    d.job("aws", &job("Amazon Web Services", "out/aws"));
    d.job("flipkart", &job("Flipkart", "out/flipkart"));
    d.job(
        "german",
        r#"
[source]
folder = "in"
include = "*.pdf"
settle = "0s"
matches = 'UStId DE \d{3}'

[[output]]
folder = "out/german"
"#,
    );
    let o = d.run(&["check"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    d.write("in/a.pdf", pdf("AmazonWebServices.pdf"));
    d.write("in/b.pdf", pdf("FlipkartInvoice.pdf"));
    d.write("in/c.pdf", pdf("QualityHosting.pdf"));
    d.write(
        "in/d.pdf",
        read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/pdf/bad/no-text.pdf")),
    );
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(d.files("out/aws"), ["a.pdf"]);
    assert_eq!(d.files("out/flipkart"), ["b.pdf"]);
    assert_eq!(d.files("out/german"), ["c.pdf"]);
    // A PDF without text cannot be routed: it fails with the reason (in the first job
    // that looked at it), never silently.
    let errors: Vec<String> = ["aws", "flipkart", "german"]
        .iter()
        .flat_map(|j| d.files(&format!("var/error/{j}")))
        .collect();
    assert_eq!(errors, ["d.pdf", "d.pdf.error.txt"], "{errors:?}");
    assert!(d.files("in").is_empty());
}

#[test]
fn a_pdf_matching_no_rule_is_left_alone() {
    let d = Deployment::new("route-none");
    d.job(
        "aws",
        r#"
[source]
folder = "in"
include = "*.pdf"
settle = "0s"
contains = ["Amazon Web Services", "42183017"]

[[output]]
folder = "out"
"#,
    );
    d.write("in/b.pdf", pdf("FlipkartInvoice.pdf"));
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(d.files("in"), ["b.pdf"]);
    assert!(d.files("out").is_empty());
    // Still left alone on the next run (it has not changed).
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(d.files("in"), ["b.pdf"]);
}

#[test]
fn a_set_of_pdfs_is_merged_into_one() {
    let d = Deployment::new("set-merge");
    d.job(
        "merge",
        r#"
[source]
folder = "in"
settle = "0s"

[source.set]
members = ["{stem}.pdf", "annex-{stem}.pdf"]

[[output]]
folder = "out"
name = "{stem}-complete.pdf"
extract = "merge"

[after]
archive = "archive"
"#,
    );
    d.write("in/7.pdf", pdf("QualityHosting.pdf"));
    d.write("in/annex-7.pdf", pdf("FlipkartInvoice.pdf"));
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(d.files("out"), ["7-complete.pdf"]);
    let merged = lopdf::Document::load(d.path("out/7-complete.pdf")).unwrap();
    assert_eq!(merged.get_pages().len(), 3, "2 pages + 1 page");
    let text = merged.extract_text(&[1, 2, 3]).unwrap();
    let (q, f) = (
        text.find("QualityHosting").unwrap(),
        text.find("Flipkart").unwrap(),
    );
    assert!(q < f, "the lead's pages first");
    assert_eq!(d.files("archive"), ["7.pdf", "annex-7.pdf"]);
}

#[test]
fn the_document_set_example_job_renames_the_pdf_by_its_index() {
    let d = Deployment::new("set-example");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    d.write(
        "jobs/document-sets.toml",
        read(&repo.join("jobs/document-sets.toml")),
    );
    for f in ["SCAN-000815.xml", "SCAN-000815.pdf"] {
        d.write(
            &format!("samples/document-sets/{f}"),
            read(&repo.join("samples/document-sets").join(f)),
        );
    }
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        d.files("var/out/document-sets"),
        [
            "WS Retail_invoice_BLR-982590_2015-10-20.json",
            "WS Retail_invoice_BLR-982590_2015-10-20.pdf"
        ]
    );
    assert_eq!(
        read(&d.path("var/out/document-sets/WS Retail_invoice_BLR-982590_2015-10-20.pdf")),
        read(&repo.join("samples/document-sets/SCAN-000815.pdf"))
    );
    // Samples are kept, and a second run takes nothing again.
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(d.files("var/out/document-sets").len(), 2);
    assert_eq!(d.files("samples/document-sets").len(), 2);
}

fn manifest_job(timeout: &str) -> String {
    format!(
        r#"
[source]
folder = "in"
settle = "200ms"
poll = "200ms"

[source.set]
manifest = "*.manifest"
timeout = "{timeout}"

[[output]]
folder = "out"
name = "{{stem}}.pdf"
extract = "merge"

[after]
archive = "archive"
error = "error"
"#
    )
}

fn page_count(p: &Path) -> usize {
    lopdf::Document::load(p).unwrap().get_pages().len()
}

fn pages_of(name: &str) -> usize {
    page_count(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/pdf/pdf-invoices")
            .join(name),
    )
}

#[test]
fn a_manifest_set_is_merged_in_manifest_order_and_archived_as_one() {
    let d = Deployment::new("manifest-complete");
    d.job("batches", &manifest_job("1h"));
    d.write("in/b-flip.pdf", pdf("FlipkartInvoice.pdf"));
    d.write("in/a-quality.pdf", pdf("QualityHosting.pdf"));
    d.write("in/c-aws.pdf", pdf("AmazonWebServices.pdf"));
    // Not alphabetical: the manifest's order is the merge order.
    d.write(
        "in/B1.manifest",
        "# batch 1\nb-flip.pdf\nc-aws.pdf\na-quality.pdf\n",
    );
    // Listed by no manifest: left alone (it waits for one, until the timeout).
    d.write("in/later.pdf", pdf("FlipkartInvoice.pdf"));
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(d.files("out"), ["B1.pdf"]);
    let want = pages_of("FlipkartInvoice.pdf")
        + pages_of("AmazonWebServices.pdf")
        + pages_of("QualityHosting.pdf");
    let merged = lopdf::Document::load(d.path("out/B1.pdf")).unwrap();
    let n = merged.get_pages().len();
    assert_eq!(n, want);
    let text = merged
        .extract_text(&(1..=n as u32).collect::<Vec<_>>())
        .unwrap();
    let at = |s: &str| text.find(s).unwrap_or_else(|| panic!("{s} in {text}"));
    assert!(at("Flipkart") < at("Amazon Web Services"), "manifest order");
    assert!(
        at("Amazon Web Services") < at("QualityHosting"),
        "manifest order"
    );
    assert_eq!(
        d.files("archive"),
        ["B1.manifest", "a-quality.pdf", "b-flip.pdf", "c-aws.pdf"]
    );
    assert_eq!(d.files("in"), ["later.pdf"]);
    assert!(d.files("error").is_empty());
    assert_eq!(d.history().len(), 4, "{:?}", d.history());
}

#[test]
fn a_manifest_set_waits_for_its_manifest_and_its_last_file() {
    let d = Deployment::new("manifest-late");
    d.job("batches", &manifest_job("1h"));
    let mut daemon = Daemon::start(&d, &[]);
    // The batch comes first; its files wait for a manifest.
    d.write("in/a.pdf", pdf("FlipkartInvoice.pdf"));
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(d.files("in"), ["a.pdf"]);
    // The manifest names a file still to come: the set waits for it.
    d.write("in/L.manifest", "a.pdf\nb.pdf\n");
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(d.files("in"), ["L.manifest", "a.pdf"]);
    assert!(d.files("out").is_empty() && d.files("error").is_empty());
    d.write("in/b.pdf", pdf("QualityHosting.pdf"));
    wait_for("the batch to be archived", WAIT, || {
        d.files("archive") == ["L.manifest", "a.pdf", "b.pdf"]
    });
    daemon.stop();
    assert_eq!(d.files("out"), ["L.pdf"]);
    assert_eq!(
        page_count(&d.path("out/L.pdf")),
        pages_of("FlipkartInvoice.pdf") + pages_of("QualityHosting.pdf")
    );
    assert!(d.files("in").is_empty() && d.files("error").is_empty());
}

#[test]
fn a_manifest_naming_a_missing_file_times_out_naming_it() {
    let d = Deployment::new("manifest-timeout");
    d.job("batches", &manifest_job("1s"));
    let mut daemon = Daemon::start(&d, &[]);
    d.write("in/a.pdf", pdf("FlipkartInvoice.pdf"));
    d.write("in/B2.manifest", "a.pdf\nb.pdf\n");
    d.write("in/stray.pdf", pdf("FlipkartInvoice.pdf"));
    wait_for(
        "the set and the stray file in the error folder",
        WAIT,
        || d.files("error").len() == 6,
    );
    daemon.stop();
    assert_eq!(
        d.files("error"),
        [
            "B2.manifest",
            "B2.manifest.error.txt",
            "a.pdf",
            "a.pdf.error.txt",
            "stray.pdf",
            "stray.pdf.error.txt"
        ]
    );
    let r = String::from_utf8(read(&d.path("error/B2.manifest.error.txt"))).unwrap();
    assert!(
        r.contains("incomplete") && r.contains("missing: b.pdf") && !r.contains("a.pdf"),
        "{r}"
    );
    let r = String::from_utf8(read(&d.path("error/a.pdf.error.txt"))).unwrap();
    assert!(
        r.contains("document set of B2.manifest") && r.contains("missing: b.pdf"),
        "{r}"
    );
    let r = String::from_utf8(read(&d.path("error/stray.pdf.error.txt"))).unwrap();
    assert!(
        r.contains("no manifest (*.manifest) lists this file"),
        "{r}"
    );
    assert!(d.files("out").is_empty() && d.files("in").is_empty());
}

#[test]
fn a_manifest_with_hostile_entries_fails_alone_and_touches_nothing_else() {
    let d = Deployment::new("manifest-hostile");
    d.job("batches", &manifest_job("1h"));
    d.write("x.pdf", pdf("FlipkartInvoice.pdf"));
    d.write("in/ok.pdf", pdf("FlipkartInvoice.pdf"));
    d.write("in/H.manifest", "ok.pdf\n../x.pdf\n/etc/passwd\nCON.pdf\n");
    let passwd = std::fs::metadata("/etc/passwd").unwrap();
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(d.files("error"), ["H.manifest", "H.manifest.error.txt"]);
    let r = String::from_utf8(read(&d.path("error/H.manifest.error.txt"))).unwrap();
    for s in [
        "bad manifest H.manifest",
        "\"../x.pdf\" climbs out",
        "\"/etc/passwd\" is an absolute path",
        "\"CON.pdf\" is a reserved device name",
    ] {
        assert!(r.contains(s), "{s} in {r}");
    }
    // Nothing the manifest named was touched: not the good entry either (the list as a
    // whole is not trusted), not the file outside, not /etc/passwd.
    assert_eq!(d.files("in"), ["ok.pdf"]);
    assert_eq!(read(&d.path("x.pdf")), pdf("FlipkartInvoice.pdf"));
    let now = std::fs::metadata("/etc/passwd").unwrap();
    assert_eq!(
        (now.len(), now.modified().unwrap()),
        (passwd.len(), passwd.modified().unwrap())
    );
    assert!(d.files("out").is_empty() && d.files("archive").is_empty());
}

/// Kills ferry at moments spread over the processing of many manifest sets; after a
/// clean run every batch is merged exactly once and every file archived.
#[test]
fn manifest_sets_survive_kills_at_any_moment() {
    let d = Deployment::new("manifest-crash");
    // Eight kills may interrupt one batch eight times: not a poison file here.
    d.job(
        "batches",
        &manifest_job("1h").replace("[after]\n", "[after]\nmax_attempts = 20\n"),
    );
    // About a second of work for one run: the first kills land in the middle of it.
    let n = 24;
    for i in 0..n {
        d.write(&format!("in/M{i:02}-1.pdf"), pdf("QualityHosting.pdf"));
        d.write(&format!("in/M{i:02}-2.pdf"), pdf("FlipkartInvoice.pdf"));
        d.write(&format!("in/M{i:02}-3.pdf"), pdf("AmazonWebServices.pdf"));
        d.write(
            &format!("in/M{i:02}.manifest"),
            format!("M{i:02}-3.pdf\nM{i:02}-2.pdf\nM{i:02}-1.pdf\n"),
        );
    }
    for round in 0..8u64 {
        let mut daemon = Daemon::start(&d, &["--workers", "4"]);
        std::thread::sleep(Duration::from_millis(150 + (round * 7919) % 500));
        daemon.stop_with(libc::SIGKILL);
    }
    let o = d.run(&["run", "--once"]);
    assert!(o.status.code().is_some(), "{}", stderr(&o));
    let want: Vec<String> = (0..n).map(|i| format!("M{i:02}.pdf")).collect();
    assert_eq!(d.files("out"), want, "every batch merged exactly once");
    let pages = pages_of("QualityHosting.pdf")
        + pages_of("FlipkartInvoice.pdf")
        + pages_of("AmazonWebServices.pdf");
    for f in &want {
        assert_eq!(page_count(&d.path(&format!("out/{f}"))), pages, "{f}");
    }
    assert_eq!(d.files("archive").len(), 4 * n, "{:?}", d.files("archive"));
    assert!(d.files("in").is_empty(), "{:?}", d.files("in"));
    assert!(d.files("error").is_empty(), "{:?}", d.files("error"));
}

#[test]
fn the_manifest_set_example_job_merges_the_batch_in_order() {
    let d = Deployment::new("manifest-example");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    d.write(
        "jobs/manifest-sets.toml",
        read(&repo.join("jobs/manifest-sets.toml")),
    );
    let files = [
        "BATCH-0042.manifest",
        "batch-0042-001.pdf",
        "batch-0042-002.pdf",
        "batch-0042-003.pdf",
    ];
    for f in files {
        d.write(
            &format!("samples/manifest-sets/{f}"),
            read(&repo.join("samples/manifest-sets").join(f)),
        );
    }
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(d.files("var/out/manifest-sets"), ["BATCH-0042.pdf"]);
    let merged = d.path("var/out/manifest-sets/BATCH-0042.pdf");
    let parts: usize = files[1..]
        .iter()
        .map(|f| page_count(&repo.join("samples/manifest-sets").join(f)))
        .sum();
    let doc = lopdf::Document::load(&merged).unwrap();
    let n = doc.get_pages().len();
    assert_eq!(n, parts);
    let text = doc
        .extract_text(&(1..=n as u32).collect::<Vec<_>>())
        .unwrap();
    let at = |s: &str| text.find(s).unwrap_or_else(|| panic!("{s}"));
    assert!(at("Flipkart") < at("Amazon Web Services"));
    assert!(at("Amazon Web Services") < at("QualityHosting"));
    // Samples are kept, and a second run takes nothing again.
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(d.files("var/out/manifest-sets"), ["BATCH-0042.pdf"]);
    assert_eq!(d.files("samples/manifest-sets").len(), 4);
    assert!(d.files("var/error/manifest-sets").is_empty());
}

#[test]
fn check_explains_bad_manifest_set_keys() {
    let d = Deployment::new("manifest-check");
    d.job(
        "both",
        "[source]\nfolder = \"in1\"\n[source.set]\nmanifest = \"*.lst\"\nmembers = [\"{stem}.pdf\", \"{stem}.xml\"]\n",
    );
    d.job(
        "csv",
        "[source]\nfolder = \"in2\"\n[source.set]\nmanifest = \"*.csv\"\nlist = \"csv\"\n",
    );
    d.job(
        "member",
        "[source]\nfolder = \"in3\"\n[source.set]\nmanifest = \"*.lst\"\n[[output]]\nfolder = \"o\"\nmember = \"{stem}.pdf\"\n",
    );
    d.job(
        "list",
        "[source]\nfolder = \"in4\"\n[source.set]\nmanifest = \"*.lst\"\nlist = \"json\"\n",
    );
    let o = d.run(&["check"]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    let all = format!("{}{}", stdout(&o), stderr(&o));
    for s in [
        "both.toml:4:12: source.set.manifest: a set has either `members`",
        "csv.toml:3:1: source.set.column: `list = \"csv\"` needs `column`",
        "member.toml:7:10: output[1].member: `member` names a file of a document set by its `{stem}`",
        "list.toml:5:8: source.set.list: expected \"lines\", \"csv\" or \"xml\"",
    ] {
        assert!(all.contains(s), "{s} in {all}");
    }
}

#[test]
fn a_manifest_set_without_pdfs_fails_its_merge_as_one() {
    let d = Deployment::new("manifest-no-pdf");
    d.job("batches", &manifest_job("1h"));
    d.write("in/a.txt", "not a PDF\n");
    d.write("in/N.manifest", "a.txt\n");
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(
        d.files("error"),
        [
            "N.manifest",
            "N.manifest.error.txt",
            "a.txt",
            "a.txt.error.txt"
        ]
    );
    let r = String::from_utf8(read(&d.path("error/N.manifest.error.txt"))).unwrap();
    assert!(r.contains("nothing to merge: the set has no PDF"), "{r}");
    let r = String::from_utf8(read(&d.path("error/a.txt.error.txt"))).unwrap();
    assert!(r.contains("document set of N.manifest"), "{r}");
}

#[test]
fn csv_and_xml_manifests_list_their_files_in_order() {
    let d = Deployment::new("manifest-csv-xml");
    let job = |folder: &str, pattern: &str, list: &str| {
        format!(
            r#"
[source]
folder = "{folder}"
settle = "0s"

[source.set]
manifest = "{pattern}"
{list}

[[output]]
folder = "out"
name = "{{stem}}.pdf"
extract = "merge"

[after]
archive = "archive"
"#
        )
    };
    d.job(
        "csv",
        &job("in-csv", "*.csv", "list = \"csv\"\ncolumn = \"file\""),
    );
    d.job(
        "xml",
        &job("in-xml", "*.xml", "list = \"xml\"\nelement = \"File\""),
    );
    d.write("in-csv/q.pdf", pdf("QualityHosting.pdf"));
    d.write("in-csv/f.pdf", pdf("FlipkartInvoice.pdf"));
    d.write("in-csv/C.csv", "seq,file\n1,f.pdf\n2,q.pdf\n");
    d.write("in-xml/q.pdf", pdf("QualityHosting.pdf"));
    d.write("in-xml/f.pdf", pdf("FlipkartInvoice.pdf"));
    d.write(
        "in-xml/X.xml",
        "<?xml version=\"1.0\"?>\n<Batch><File>q.pdf</File><File>f.pdf</File></Batch>\n",
    );
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(d.files("out"), ["C.pdf", "X.pdf"]);
    let first_text = |f: &str| {
        let doc = lopdf::Document::load(d.path(f)).unwrap();
        assert_eq!(
            doc.get_pages().len(),
            pages_of("QualityHosting.pdf") + pages_of("FlipkartInvoice.pdf")
        );
        doc.extract_text(&[1]).unwrap()
    };
    assert!(
        first_text("out/C.pdf").contains("Flipkart"),
        "CSV order: f.pdf first"
    );
    assert!(
        first_text("out/X.pdf").contains("QualityHosting"),
        "XML order: q.pdf first"
    );
    assert_eq!(d.files("archive").len(), 6);
}

#[test]
fn a_merge_larger_than_max_size_together_fails_with_the_reason() {
    let d = Deployment::new("manifest-too-big");
    // Each part is below the limit; together they are not.
    d.job(
        "batches",
        &format!(
            "{}\n[pdf]\nmax_size = {}\n",
            manifest_job("1h"),
            pdf("QualityHosting.pdf").len() + 1000
        ),
    );
    d.write("in/q.pdf", pdf("QualityHosting.pdf"));
    d.write("in/f.pdf", pdf("FlipkartInvoice.pdf"));
    d.write("in/T.manifest", "q.pdf\nf.pdf\n");
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let r = String::from_utf8(read(&d.path("error/T.manifest.error.txt"))).unwrap();
    assert!(
        r.contains("the set's PDFs together are larger than [pdf] max_size"),
        "{r}"
    );
    assert_eq!(d.files("error").len(), 6);
    assert!(d.files("out").is_empty());
}
