//! PDF documents, driven through the binary: embedded files of real Factur-X invoices,
//! fields of real invoice PDFs, bad PDFs to the error folder, page splits, the example jobs.

mod util;

use std::path::{Path, PathBuf};

use util::*;

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/pdf")
        .join(rel)
}

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn copy_in(d: &Deployment, from: &Path, to: &str) {
    d.write(to, std::fs::read(from).unwrap());
}

fn pages(p: &Path) -> usize {
    lopdf::Document::load(p).unwrap().get_pages().len()
}

#[test]
fn factur_x_attachments_are_byte_identical_to_pdfdetach() {
    let d = Deployment::new("pdf-facturx");
    d.job(
        "detach",
        r#"
[source]
folder = "in"
include = "*.pdf"
settle = "0s"

[[output]]
folder = "out"
name = "{stem}/{attachment}"
extract = "attachments"
"#,
    );
    let dir = data("factur-x");
    let mut stems = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "pdf") {
            copy_in(
                &d,
                &p,
                &format!("in/{}", p.file_name().unwrap().to_string_lossy()),
            );
            stems.push(p.file_stem().unwrap().to_string_lossy().into_owned());
        }
    }
    assert_eq!(stems.len(), 6);
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let mut expected = Vec::new();
    for stem in &stems {
        for e in std::fs::read_dir(dir.join("expected").join(stem)).unwrap() {
            let p = e.unwrap().path();
            let name = format!("{stem}/{}", p.file_name().unwrap().to_string_lossy());
            assert_eq!(
                read(&d.path(&format!("out/{name}"))),
                read(&p),
                "{name} differs from pdfdetach's"
            );
            expected.push(name);
        }
    }
    expected.sort();
    assert_eq!(
        d.files("out"),
        expected,
        "exactly the attachments, nothing else"
    );
    // The PDFs were archived after their attachments were delivered.
    assert_eq!(d.files("var/archive/detach").len(), 6);
}

#[test]
fn the_factur_x_example_job_writes_the_xml_and_a_csv_summary() {
    let d = Deployment::new("pdf-facturx-example");
    copy_in(&d, &repo("jobs/factur-x.toml"), "jobs/factur-x.toml");
    for f in ["EN16931_Einfach.pdf", "XRECHNUNG_Einfach.pdf"] {
        copy_in(
            &d,
            &repo(&format!("samples/factur-x/{f}")),
            &format!("samples/factur-x/{f}"),
        );
    }
    // A self-billed invoice ("Gutschrift") from the corpus too: its type code is the kind.
    copy_in(
        &d,
        &data("factur-x/EN16931_Gutschrift.pdf"),
        "samples/factur-x/EN16931_Gutschrift.pdf",
    );
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        read(&d.path("var/out/factur-x/xml/XRECHNUNG_Einfach.xml")),
        read(&data("factur-x/expected/XRECHNUNG_Einfach/xrechnung.xml"))
    );
    assert_eq!(
        read(&d.path("var/out/factur-x/xml/EN16931_Einfach.xml")),
        read(&data("factur-x/expected/EN16931_Einfach/factur-x.xml"))
    );
    let csv = String::from_utf8(read(
        &d.path("var/out/factur-x/summary/EN16931_Einfach.csv"),
    ))
    .unwrap();
    assert_eq!(
        csv,
        "File,Invoice,Kind,Date,Seller,Buyer,Currency,Net,Gross,Due,PdfA\nEN16931_Einfach.pdf,471102,invoice,2018-03-05,Lieferant GmbH,Kunden AG Mitte,EUR,473.00,529.87,529.87,3B\n"
    );
    let credit = String::from_utf8(read(
        &d.path("var/out/factur-x/summary/EN16931_Gutschrift.csv"),
    ))
    .unwrap();
    assert!(credit.contains(",self-billed invoice,"), "{credit}");
    // Samples are kept.
    assert_eq!(d.files("samples/factur-x").len(), 3);
}

/// invoice2data's expected values, compared as numbers where they are numbers.
fn same(expected: &serde_json::Value, got: &str) -> bool {
    match expected {
        serde_json::Value::Number(n) => got
            .parse::<f64>()
            .is_ok_and(|g| (g - n.as_f64().unwrap()).abs() < 1e-9),
        serde_json::Value::String(s) => s == got,
        _ => false,
    }
}

/// A field of a JSON output as text: amounts the jobs make numbers (`num | decimal(2)`) are
/// JSON numbers.
fn text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Number(n) => Some(n.to_string()),
        v => v.as_str().map(str::to_string),
    }
}

#[test]
fn invoice_fields_from_real_pdfs_match_invoice2data() {
    let d = Deployment::new("pdf-invoices");
    for job in ["aws", "flipkart", "qualityhosting"] {
        let f = format!("jobs/pdf-invoices-{job}.toml");
        copy_in(&d, &repo(&f), &f);
    }
    let stems = ["AmazonWebServices", "FlipkartInvoice", "QualityHosting"];
    for s in stems {
        copy_in(
            &d,
            &repo(&format!("samples/pdf-invoices/{s}.pdf")),
            &format!("samples/pdf-invoices/{s}.pdf"),
        );
    }
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    for s in stems {
        let want: serde_json::Value =
            serde_json::from_slice(&read(&data(&format!("pdf-invoices/{s}.json")))).unwrap();
        let want = &want[0];
        let got: Vec<serde_json::Value> =
            String::from_utf8(read(&d.path(&format!("var/out/pdf-invoices/{s}.jsonl"))))
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
        let first = &got[0];
        let mut checked = 0;
        for (k, v) in want.as_object().unwrap() {
            if k == "lines" || k == "desc" {
                continue;
            }
            let g = text(&first[k]).unwrap_or_else(|| panic!("{s}: no field {k}: {first}"));
            let g = g.as_str();
            assert!(same(v, g), "{s}: {k}: expected {v}, got {g:?}");
            checked += 1;
        }
        assert!(checked >= 5, "{s}: {checked}");
        // Every record carries the same header fields.
        assert!(
            got.iter()
                .all(|r| r["invoice_number"] == first["invoice_number"])
        );
        if let Some(lines) = want.get("lines").and_then(|l| l.as_array()) {
            assert_eq!(got.len(), lines.len(), "{s}: one record per line item");
            if s == "AmazonWebServices" {
                for (w, g) in lines.iter().zip(&got) {
                    assert!(
                        same(&w["name"], g["line_name"].as_str().unwrap()),
                        "{w} {g}"
                    );
                    assert!(same(
                        &w["price_unit"],
                        &text(&g["line_price_unit"]).unwrap()
                    ));
                }
            } else {
                // In the PDF's text the items come in another order than printed.
                let mut got = got.clone();
                got.sort_by_key(|g| g["pos"].as_str().unwrap().parse::<u32>().unwrap());
                for (w, g) in lines.iter().zip(&got) {
                    for k in ["pos", "qty", "desc", "price"] {
                        assert!(same(&w[k], &text(&g[k]).unwrap()), "{k}: {w} {g}");
                    }
                }
            }
        }
    }
}

const TEXT_JOB: &str = r#"
[source]
folder = "in"
include = "*.pdf"
settle = "0s"

[pdf]
timeout = "20s"
max_size = 1000000

[input]
format = "pdf"
mode = "capture"
[input.capture]
anything = ['(\S+)']

[transform.fields]
first_word = "anything"
pages = "meta.pages"
encrypted = "meta.encrypted"
producer = "meta.producer"

[[output]]
folder = "out"
name = "{stem}.json"
format = "json"
"#;

#[test]
fn bad_pdfs_go_to_the_error_folder_with_a_reason() {
    let d = Deployment::new("pdf-bad");
    d.job("text", TEXT_JOB);
    for f in [
        "empty.pdf",
        "garbage.pdf",
        "truncated.pdf",
        "password.pdf",
        "no-text.pdf",
        "encrypted-no-password.pdf",
        "broken-xref.pdf",
    ] {
        copy_in(&d, &data(&format!("bad/{f}")), &format!("in/{f}"));
    }
    // Bigger than the job's max_size.
    let mut big = b"%PDF-1.4\n".to_vec();
    big.resize(1_000_001, b' ');
    d.write("in/huge.pdf", big);
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let reason = |f: &str| {
        String::from_utf8(read(&d.path(&format!("var/error/text/{f}.error.txt")))).unwrap()
    };
    assert!(
        reason("empty.pdf").contains("the file is empty"),
        "{}",
        reason("empty.pdf")
    );
    assert!(reason("garbage.pdf").contains("corrupt or truncated"));
    assert!(reason("truncated.pdf").contains("corrupt or truncated"));
    assert!(reason("password.pdf").contains("protected by a password"));
    assert!(reason("no-text.pdf").contains("no text at all"));
    assert!(
        reason("huge.pdf").contains("pdf.max_size"),
        "{}",
        reason("huge.pdf")
    );
    // Encrypted with an empty user password: readable, and says it was encrypted. A
    // broken cross-reference table is rebuilt by scanning the file.
    let enc: serde_json::Value =
        serde_json::from_slice(&read(&d.path("out/encrypted-no-password.json"))).unwrap();
    assert_eq!(enc[0]["encrypted"], "true");
    assert_eq!(enc[0]["pages"], "1");
    let xref: serde_json::Value =
        serde_json::from_slice(&read(&d.path("out/broken-xref.json"))).unwrap();
    assert_eq!(xref[0]["pages"], "2");
    assert_eq!(
        d.files("var/error/text").len(),
        12,
        "six failed files and their reports: {:?}",
        d.files("var/error/text")
    );
    assert!(
        d.files("out").iter().all(|f| !f.starts_with('.')),
        "no temporary files left"
    );
}

#[test]
fn pages_are_split_per_page_and_per_range() {
    let d = Deployment::new("pdf-split");
    d.job(
        "split",
        r#"
[source]
folder = "in"
include = "*.pdf"
settle = "0s"

[[output]]
folder = "out/pages"
extract = "pages"

[[output]]
folder = "out/ranges"
name = "{stem}_part{part}_{page}-{last_page}.pdf"
extract = "pages"
ranges = ["1", "2-"]
"#,
    );
    copy_in(&d, &data("factur-x/EN16931_Miete.pdf"), "in/miete.pdf");
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        d.files("out/pages"),
        ["miete_1.pdf", "miete_2.pdf", "miete_3.pdf", "miete_4.pdf"]
    );
    for f in d.files("out/pages") {
        assert_eq!(pages(&d.path(&format!("out/pages/{f}"))), 1);
    }
    assert_eq!(
        d.files("out/ranges"),
        ["miete_part1_1-1.pdf", "miete_part2_2-4.pdf"]
    );
    assert_eq!(pages(&d.path("out/ranges/miete_part2_2-4.pdf")), 3);
}

#[test]
fn a_missing_attachment_is_an_error_unless_optional() {
    let d = Deployment::new("pdf-no-attachment");
    d.job(
        "detach",
        r#"
[source]
folder = "in"
include = "*.pdf"
settle = "0s"

[[output]]
folder = "out"
extract = "attachments"
attachments = "factur-x.xml"
"#,
    );
    copy_in(
        &d,
        &data("pdf-invoices/FlipkartInvoice.pdf"),
        "in/plain.pdf",
    );
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let r = String::from_utf8(read(&d.path("var/error/detach/plain.pdf.error.txt"))).unwrap();
    assert!(r.contains("no embedded file matching factur-x.xml"), "{r}");
    assert!(d.files("out").is_empty());
}

/// `(path, size)` of every "output N: PATH (SIZE bytes)" line of `ferry test`.
fn listed_pieces(out: &str) -> Vec<(String, u64)> {
    out.lines()
        .filter_map(|l| l.trim().strip_prefix("output "))
        .filter_map(|l| {
            let (_, rest) = l.split_once(": ")?;
            let (path, size) = rest.rsplit_once(" (")?;
            Some((
                path.to_string(),
                size.strip_suffix(" bytes)")?.parse().ok()?,
            ))
        })
        .collect()
}

#[test]
fn test_shows_the_files_an_extract_output_would_write() {
    let d = Deployment::new("pdf-test-pieces");
    d.job(
        "pages",
        r#"
[source]
folder = "in"
include = "*.pdf"
settle = "0s"

[[output]]
folder = "out"
name = "{stem}-p{page}.pdf"
extract = "pages"

[[output]]
folder = "xml"
extract = "attachments"
required = false
"#,
    );
    copy_in(&d, &data("pdf-invoices/QualityHosting.pdf"), "in/q.pdf");
    let o = d.run(&["test", "pages", &d.path("in/q.pdf").to_string_lossy()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let shown = listed_pieces(&stdout(&o));
    assert_eq!(shown.len(), 2, "{}", stdout(&o));
    assert!(
        stdout(&o).contains("extracted: 2 file(s)"),
        "{}",
        stdout(&o)
    );
    // Nothing was written by the dry run; the real run writes exactly what it showed.
    assert!(d.files("out").is_empty());
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(d.files("out"), ["q-p1.pdf", "q-p2.pdf"]);
    for (path, size) in shown {
        assert_eq!(std::fs::metadata(&path).unwrap().len(), size, "{path}");
    }
    // The same PDF again: its pieces' names are taken and `exists = "fail"` (issue 11).
    copy_in(&d, &data("pdf-invoices/QualityHosting.pdf"), "in/q.pdf");
    let o = d.run(&["test", "pages", &d.path("in/q.pdf").to_string_lossy()]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stdout(&o).contains(&format!(
            "\nverdict:   would fail: output 1: {} exists already (exists = \"fail\")\n",
            d.path("out/q-p1.pdf").display()
        )),
        "{}",
        stdout(&o)
    );
}

#[test]
fn test_shows_a_manifest_sets_merged_file_and_refuses_a_bad_manifest() {
    let d = Deployment::new("pdf-test-merge");
    d.job(
        "batches",
        r#"
[source]
folder = "in"
settle = "0s"

[source.set]
manifest = "*.lst"

[[output]]
folder = "out"
name = "{stem}.pdf"
extract = "merge"
"#,
    );
    copy_in(&d, &data("pdf-invoices/QualityHosting.pdf"), "in/q.pdf");
    copy_in(&d, &data("pdf-invoices/FlipkartInvoice.pdf"), "in/f.pdf");
    d.write("in/B.lst", "f.pdf\nq.pdf\n");
    let o = d.run(&["test", "batches", &d.path("in/B.lst").to_string_lossy()]);
    let text = stdout(&o);
    assert!(
        text.contains("set:       the lead, with f.pdf, q.pdf"),
        "{text}"
    );
    let shown = listed_pieces(&text);
    assert_eq!(shown.len(), 1, "{text}");
    let o = d.run(&["test", "batches", &d.path("in/q.pdf").to_string_lossy()]);
    assert!(
        stdout(&o).contains("taken along with its lead B.lst"),
        "{}",
        stdout(&o)
    );
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(d.files("out"), ["B.pdf"]);
    assert_eq!(std::fs::metadata(&shown[0].0).unwrap().len(), shown[0].1);
    assert_eq!(
        pages(&d.path("out/B.pdf")),
        pages(&data("pdf-invoices/QualityHosting.pdf"))
            + pages(&data("pdf-invoices/FlipkartInvoice.pdf"))
    );
    d.write("in/C.lst", "../q.pdf\n");
    let o = d.run(&["test", "batches", &d.path("in/C.lst").to_string_lossy()]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("\nverdict:   would fail: "),
        "{}",
        stdout(&o)
    );
    assert!(
        stdout(&o).contains("\"../q.pdf\" climbs out") && stdout(&o).contains("would FAIL"),
        "{}",
        stdout(&o)
    );
}
