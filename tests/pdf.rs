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
    assert!(reason("garbage.pdf").contains("truncated or damaged"));
    assert!(reason("truncated.pdf").contains("truncated or damaged"));
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
fn a_truncated_pdf_is_reported_as_truncated_not_as_a_scan() {
    // Real invoices cut off as an interrupted upload leaves them. lopdf rebuilds what it
    // can of such a file: cut at 60% it read no text at all (once reported as "a scanned
    // image"), cut at 90% a part of the text that passed for the whole invoice.
    let d = Deployment::new("pdf-truncated");
    d.job("text", TEXT_JOB);
    for (src, cut) in [
        ("factur-x/XRECHNUNG_Einfach.pdf", 60),
        ("factur-x/XRECHNUNG_Einfach.pdf", 90),
        ("pdf-invoices/QualityHosting.pdf", 95),
    ] {
        let bytes = std::fs::read(data(src)).unwrap();
        let stem = Path::new(src).file_stem().unwrap().to_string_lossy();
        d.write(
            &format!("in/{stem}-{cut}.pdf"),
            &bytes[..bytes.len() * cut / 100],
        );
    }
    copy_in(&d, &data("factur-x/XRECHNUNG_Einfach.pdf"), "in/whole.pdf");
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    for f in [
        "XRECHNUNG_Einfach-60.pdf",
        "XRECHNUNG_Einfach-90.pdf",
        "QualityHosting-95.pdf",
    ] {
        let report =
            String::from_utf8(read(&d.path(&format!("var/error/text/{f}.error.txt")))).unwrap();
        assert!(
            report.contains("the PDF is truncated or damaged") && !report.contains("scanned"),
            "{f}: {report}"
        );
    }
    assert_eq!(
        d.files("out"),
        vec!["whole.json"],
        "only the whole file is read"
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

#[test]
fn the_factur_x_example_reads_zugferd_1_and_2() {
    // The shipped job over its samples plus a ZUGFeRD 1.0 invoice (ZUGFeRD/corpus,
    // Intarsys): attachment `ZUGFeRD-invoice.xml`, root `CrossIndustryDocument`.
    let d = Deployment::new("pdf-zugferd1");
    d.write(
        "jobs/factur-x.toml",
        std::fs::read(repo("jobs/factur-x.toml")).unwrap(),
    );
    for f in ["EN16931_Einfach.pdf", "XRECHNUNG_Einfach.pdf"] {
        copy_in(
            &d,
            &repo(&format!("samples/factur-x/{f}")),
            &format!("samples/factur-x/{f}"),
        );
    }
    copy_in(
        &d,
        &data("zugferd-1/ZUGFeRD_1p0_BASIC_Einfach.pdf"),
        "samples/factur-x/v1.pdf",
    );
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let summary = |stem: &str| {
        String::from_utf8(read(
            &d.path(&format!("var/out/factur-x/summary/{stem}.csv")),
        ))
        .unwrap()
    };
    assert_eq!(
        summary("v1"),
        "File,Invoice,Kind,Date,Seller,Buyer,Currency,Net,Gross,Due,PdfA\n\
         v1.pdf,471102,invoice,2013-03-05,Lieferant GmbH,Kunden AG Mitte,EUR,198.00,235.62,235.62,3B\n"
    );
    assert!(
        summary("EN16931_Einfach").ends_with(
            "EN16931_Einfach.pdf,471102,invoice,2018-03-05,Lieferant GmbH,Kunden AG Mitte,EUR,473.00,529.87,529.87,3B\n"
        ),
        "{}",
        summary("EN16931_Einfach")
    );
    // The embedded XML, extracted although its name differs in case from the job's globs.
    let xml = String::from_utf8(read(&d.path("var/out/factur-x/xml/v1.xml"))).unwrap();
    assert!(xml.contains("<rsm:CrossIndustryDocument"), "{xml}");
    assert_eq!(
        d.files("var/out/factur-x/xml"),
        vec!["EN16931_Einfach.xml", "XRECHNUNG_Einfach.xml", "v1.xml"]
    );
    assert!(d.files("var/error").is_empty());
}

const ROUTE_JOB: &str = r#"
[source]
folder = "in"
include = "*.pdf"
settle = "0s"

[input]
format = "pdf"
mode = "capture"
[input.capture]
InvoiceNo = ['Kundennr\.\s*\n\s*(\d{8})\s*\n']
Total = ['Total EUR\s*\n\s*([0-9.]*[0-9]+,[0-9]{2})']

[[output]]
folder = "var/out/invoices/{InvoiceNo}"
name = "{InvoiceNo}.pdf"

[[output]]
folder = "var/out/summary"
name = "{InvoiceNo}.csv"
format = "csv"
"#;

#[test]
fn a_pdf_is_routed_by_the_fields_it_captures() {
    let d = Deployment::new("pdf-route");
    d.job("route", ROUTE_JOB);
    copy_in(
        &d,
        &data("pdf-invoices/QualityHosting.pdf"),
        "in/QualityHosting.pdf",
    );
    // The AWS invoice has no `Kundennr.`: its InvoiceNo is empty and it cannot be named.
    copy_in(
        &d,
        &data("pdf-invoices/AmazonWebServices.pdf"),
        "in/aws.pdf",
    );

    let t = d.run(&["test", "route", "in/QualityHosting.pdf"]);
    let shown = String::from_utf8_lossy(&t.stdout);
    assert!(
        shown.contains("var/out/invoices/30064443/30064443.pdf"),
        "{shown}"
    );
    let t = d.run(&["test", "route", "in/aws.pdf"]);
    let shown = String::from_utf8_lossy(&t.stdout);
    assert!(shown.contains("needs `InvoiceNo`"), "{shown}");

    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(
        read(&d.path("var/out/invoices/30064443/30064443.pdf")),
        read(&data("pdf-invoices/QualityHosting.pdf")),
        "the original, byte for byte, in the folder its number names"
    );
    assert_eq!(
        String::from_utf8(read(&d.path("var/out/summary/30064443.csv"))).unwrap(),
        "InvoiceNo,Total\n30064443,\"34,73\"\n"
    );
    assert_eq!(d.files("var/out/invoices"), vec!["30064443/30064443.pdf"]);
    let report = String::from_utf8(read(&d.path("var/error/route/aws.pdf.error.txt"))).unwrap();
    assert!(
        report.contains("output 1: its folder")
            && report
                .contains("needs `InvoiceNo`, but the file's first record has no value for it"),
        "{report}"
    );
    assert_eq!(
        read(&d.path("var/error/route/aws.pdf")),
        read(&data("pdf-invoices/AmazonWebServices.pdf"))
    );
}

#[test]
fn an_extract_output_is_named_by_the_invoice_it_carries() {
    let d = Deployment::new("pdf-route-extract");
    d.job(
        "xml",
        r#"
[source]
folder = "in"
include = "*.pdf"
settle = "0s"

[input]
format = "xml"
attachment = "factur-x.xml"
record = "/"
[input.fields]
InvoiceNo = "/CrossIndustryInvoice/ExchangedDocument/ID"
Seller = "/CrossIndustryInvoice/SupplyChainTradeTransaction/ApplicableHeaderTradeAgreement/SellerTradeParty/Name"

[[output]]
folder = "out/{Seller}"
name = "{InvoiceNo}-{attachment}"
extract = "attachments"
attachments = ["factur-x.xml"]
"#,
    );
    copy_in(&d, &data("factur-x/EN16931_Einfach.pdf"), "in/a.pdf");
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        read(&d.path("out/Lieferant GmbH/471102-factur-x.xml")),
        read(&data("factur-x/expected/EN16931_Einfach/factur-x.xml"))
    );
}

#[test]
fn check_refuses_a_placeholder_no_field_can_fill() {
    let d = Deployment::new("pdf-route-check");
    d.job(
        "route",
        &ROUTE_JOB.replace("invoices/{InvoiceNo}\"", "invoices/{InvoiceNumber}\""),
    );
    let o = d.run(&["check"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("route.toml:15:28: output[1].folder: unknown placeholder `{InvoiceNumber}`: no field of the job's records has this name; they have {InvoiceNo} {Total}"),
        "{err}"
    );
}

#[test]
fn test_text_prints_exactly_what_captures_work_on() {
    let d = Deployment::new("pdf-test-text");
    d.job("route", ROUTE_JOB);
    copy_in(&d, &data("pdf-invoices/QualityHosting.pdf"), "in/q.pdf");
    let o = d.run(&["test", "route", "in/q.pdf", "--text"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = String::from_utf8(o.stdout).unwrap();
    // Only the text: the job's own pattern finds its value in it, pages are joined by a
    // form-feed line.
    let re = regex::RegexBuilder::new(r"Kundennr\.\s*\n\s*(\d{8})\s*\n")
        .multi_line(true)
        .build()
        .unwrap();
    assert_eq!(&re.captures(&text).expect(&text)[1], "30064443");
    assert_eq!(text.matches("\n\u{c}\n").count(), 1, "two pages");
    assert!(!text.contains("job:"), "nothing but the text");
    // A file that cannot be read says why, and exits 1.
    let bytes = read(&data("pdf-invoices/QualityHosting.pdf"));
    d.write("in/cut.pdf", &bytes[..bytes.len() / 2]);
    let o = d.run(&["test", "route", "in/cut.pdf", "--text"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("truncated or damaged"),
        "{}",
        stderr(&o)
    );
}
