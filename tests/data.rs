//! Reading, transforming and writing records, driven through the binary: encodings, bad
//! records (fail or skip to a rejects file), round trips, real PEPPOL invoices.

mod util;

use util::*;

const ORDERS_JOB: &str = r#"
[source]
folder = "in"
settle = "0s"

[input]
format = "csv"
encoding = "windows-1252"
delimiter = ";"

[transform]
filter = "(Menge | num(',')) > 0"
[transform.fields]
OrderNo = "Auftrag"
Item = "Artikel"
Qty = "Menge | num(',')"
Total = "((Menge | num(',')) * (Preis | num(','))) | decimal(2, ',')"
Date = "Datum | date('%d.%m.%Y')"

[[output]]
folder = "out/json"
name = "{stem}.json"
format = "json"

[[output]]
folder = "out/csv"
name = "{stem}.csv"
format = "csv"
encoding = "windows-1252"
delimiter = ";"
line_ending = "crlf"
"#;

/// Windows-1252 bytes of an ERP order export: `ä` is 0xE4, `ü` 0xFC, `€` 0x80.
fn erp_export(extra: &[u8]) -> Vec<u8> {
    let mut v = b"Auftrag;Artikel;Menge;Preis;Datum\r\n1001;Schraube M6;1.000;0,12;02.11.2026\r\n1002;Mutter \xe4;0;0,05;02.11.2026\r\n1003;D\xfcbel \x80;7;1,50;03.11.2026\r\n".to_vec();
    v.extend_from_slice(extra);
    v
}

#[test]
fn windows_1252_csv_is_filtered_transformed_and_written_as_json_and_csv() {
    let d = Deployment::new("data-orders");
    d.job("orders", ORDERS_JOB);
    d.write("in/orders.csv", erp_export(b""));
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let json: serde_json::Value =
        serde_json::from_slice(&read(&d.path("out/json/orders.json"))).unwrap();
    assert_eq!(
        json,
        serde_json::json!([
            {"OrderNo": "1001", "Item": "Schraube M6", "Qty": 1000, "Total": "120,00", "Date": "2026-11-02"},
            {"OrderNo": "1003", "Item": "Dübel €", "Qty": 7, "Total": "10,50", "Date": "2026-11-03"}
        ])
    );
    assert_eq!(
        read(&d.path("out/csv/orders.csv")),
        b"OrderNo;Item;Qty;Total;Date\r\n1001;Schraube M6;1000;120,00;2026-11-02\r\n1003;D\xfcbel \x80;7;10,50;2026-11-03\r\n"
    );
    assert_eq!(d.files("var/archive/orders"), vec!["orders.csv"]);
}

#[test]
fn a_bad_record_fails_the_file_with_its_position_and_nothing_is_written() {
    let d = Deployment::new("data-bad");
    d.job("orders", ORDERS_JOB);
    d.write(
        "in/orders.csv",
        erp_export(b"1004;Scheibe;viele;0,02;03.11.2026\r\n"),
    );
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        d.files("out").is_empty(),
        "nothing half-written: {:?}",
        d.files("out")
    );
    let report = std::fs::read_to_string(d.path("var/error/orders/orders.csv.error.txt")).unwrap();
    // The fourth data record is on line 5. Record offsets count the decoded (UTF-8) text:
    // 35 + 40 + 34 (`ä` is two bytes) + 35 (`ü` two, `€` three) = 144.
    assert!(report.contains("record 4 (line 5, byte 144)"), "{report}");
    assert!(report.contains("field `filter`"), "{report}");
    assert!(report.contains("\"viele\" is not a number"), "{report}");
    assert_eq!(
        read(&d.path("var/error/orders/orders.csv")),
        erp_export(b"1004;Scheibe;viele;0,02;03.11.2026\r\n")
    );
}

/// The order numbers of the JSON output, in order.
fn order_nos(d: &Deployment) -> Vec<String> {
    let json: serde_json::Value =
        serde_json::from_slice(&read(&d.path("out/json/orders.json"))).unwrap();
    json.as_array()
        .unwrap()
        .iter()
        .map(|r| r["OrderNo"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn bad_records_can_be_skipped_into_a_rejects_file() {
    let d = Deployment::new("data-skip");
    d.job(
        "orders",
        &ORDERS_JOB.replace(
            "delimiter = \";\"\n\n[transform]",
            "delimiter = \";\"\non_error = \"skip\"\n\n[transform]",
        ),
    );
    d.write("in/orders.csv", erp_export(b"1004;Scheibe;viele;0,02;03.11.2026\r\n1005;zu;kurz\r\n1006;Nagel;3;0,01;04.11.2026\r\n"));
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let nos = order_nos(&d);
    assert_eq!(nos, vec!["1001", "1003", "1006"]);
    let rejects = std::fs::read_to_string(d.path("out/json/orders.csv.rejects.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = rejects
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{rejects}");
    assert_eq!(
        (lines[0]["record"].as_u64(), lines[0]["line"].as_u64()),
        (Some(4), Some(5))
    );
    assert_eq!(lines[0]["data"]["Menge"], "viele");
    assert_eq!(lines[1]["line"].as_u64(), Some(6));
    assert!(
        lines[1]["reason"]
            .as_str()
            .unwrap()
            .contains("expected 5 fields"),
        "{rejects}"
    );
    let h = d.history();
    assert_eq!(
        h[0]["outputs"].as_array().unwrap().len(),
        3,
        "json, csv and the rejects file"
    );
}

/// A file big enough to be read on a thread of its own while another writes: every kind of
/// bad record (unreadable, failing the filter, failing a computed field) lands in the
/// rejects file once, in file order, and the good records are written in order.
#[test]
fn a_big_file_keeps_record_order_and_rejects_every_bad_record_once() {
    let d = Deployment::new("data-big-skip");
    d.job(
        "orders",
        &ORDERS_JOB.replace(
            "delimiter = \";\"\n\n[transform]",
            "delimiter = \";\"\non_error = \"skip\"\n\n[transform]",
        ),
    );
    let mut csv = b"Auftrag;Artikel;Menge;Preis;Datum\r\n".to_vec();
    let (mut kept, mut bad_lines) = (Vec::new(), Vec::new());
    for i in 1..=60_000u64 {
        let line = i + 1;
        let row: Vec<u8> = if i % 997 == 0 {
            bad_lines.push(line); // the filter fails: not a number
            format!("{i};Schraube;viele;0,12;02.11.2026\r\n").into_bytes()
        } else if i % 1499 == 0 {
            bad_lines.push(line); // unreadable: too few fields
            format!("{i};kurz\r\n").into_bytes()
        } else if i % 2003 == 0 {
            bad_lines.push(line); // a computed field fails: not a number
            format!("{i};Mutter;2;teuer;02.11.2026\r\n").into_bytes()
        } else if i % 5 == 0 {
            format!("{i};Scheibe;0;0,05;02.11.2026\r\n").into_bytes() // filtered out
        } else {
            kept.push(i.to_string());
            // `ü` in Windows-1252.
            [
                format!("{i};D").as_bytes(),
                b"\xfc",
                format!("bel;{};1,50;03.11.2026\r\n", i % 7 + 1).as_bytes(),
            ]
            .concat()
        };
        csv.extend_from_slice(&row);
    }
    assert!(
        csv.len() > 1 << 20,
        "big enough for the two-thread path (1 MiB)"
    );
    d.write("in/orders.csv", &csv);
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let nos = order_nos(&d);
    assert_eq!(nos, kept);
    let rejects = std::fs::read_to_string(d.path("out/json/orders.csv.rejects.jsonl")).unwrap();
    let lines: Vec<u64> = rejects
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["line"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(lines, bad_lines);
    // The hashes (computed on threads of their own for big streams) are the files' own.
    let h = d.history();
    assert_eq!(h[0]["sha256"].as_str(), Some(sha256_hex(&csv).as_str()));
    let outputs = h[0]["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), 3, "json, csv and rejects");
    for o in outputs {
        let written = read(std::path::Path::new(o["path"].as_str().unwrap()));
        assert_eq!(
            o["sha256"].as_str(),
            Some(sha256_hex(&written).as_str()),
            "{o}"
        );
    }
}

/// The same file with `on_error = "fail"`: one bad record near the end fails it, and no
/// output appears.
#[test]
fn a_big_file_with_a_bad_record_near_the_end_writes_nothing() {
    let d = Deployment::new("data-big-fail");
    d.job("orders", ORDERS_JOB);
    let mut csv = b"Auftrag;Artikel;Menge;Preis;Datum\r\n".to_vec();
    for i in 1..=60_000u64 {
        let qty = if i == 59_000 {
            "viele".to_string()
        } else {
            (i % 7 + 1).to_string()
        };
        csv.extend_from_slice(format!("{i};Schraube;{qty};0,12;02.11.2026\r\n").as_bytes());
    }
    d.write("in/orders.csv", &csv);
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(d.files("out/json").is_empty() && d.files("out/csv").is_empty());
    let report = std::fs::read_to_string(d.path("var/error/orders/orders.csv.error.txt")).unwrap();
    assert!(
        report.contains("record 59000") || report.contains("line 59001"),
        "{report}"
    );
}

#[test]
fn undecodable_bytes_fail_with_their_byte_offset() {
    let d = Deployment::new("data-utf8");
    d.job(
        "j",
        "[source]\nfolder = \"in\"\nsettle = \"0s\"\n[input]\nformat = \"csv\"\n[[output]]\nfolder = \"out\"\nname = \"{stem}.json\"\nformat = \"json\"\n",
    );
    d.write("in/a.csv", b"a,b\n1,M\xe4rz\n");
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(1));
    let report = std::fs::read_to_string(d.path("var/error/j/a.csv.error.txt")).unwrap();
    assert!(
        report.contains("bytes e4 at byte offset 7 are not valid UTF-8"),
        "{report}"
    );
    assert!(d.files("out").is_empty());
}

#[test]
fn csv_to_fixed_width_to_csv_gives_back_the_same_data() {
    for enc in ["utf-8", "windows-1252"] {
        let d = Deployment::new("data-fixed");
        let layout = "[[output.column]]\nname = \"no\"\nstart = 1\nlength = 6\nalign = \"right\"\npad = \"0\"\n[[output.column]]\nname = \"name\"\nstart = 7\nlength = 12\n[[output.column]]\nname = \"city\"\nstart = 19\nlength = 10\n";
        d.job("to-fixed", &format!(
            "[source]\nfolder = \"a\"\nsettle = \"0s\"\n[input]\nformat = \"csv\"\nencoding = \"{enc}\"\n[[output]]\nfolder = \"b\"\nname = \"{{stem}}.txt\"\nformat = \"fixed\"\nencoding = \"{enc}\"\nline_ending = \"crlf\"\n{layout}"
        ));
        d.job("to-csv", &format!(
            "[source]\nfolder = \"b\"\nsettle = \"0s\"\n[input]\nformat = \"fixed\"\nencoding = \"{enc}\"\n{}[[output]]\nfolder = \"c\"\nname = \"{{stem}}.csv\"\nformat = \"csv\"\nencoding = \"{enc}\"\n",
            layout.replace("output.column", "input.column")
        ));
        let text = "no,name,city\n42,Müller,Köln\n7,Ann Lee,Bonn\n";
        let bytes: Vec<u8> = if enc == "utf-8" {
            text.as_bytes().to_vec()
        } else {
            encoding_rs::WINDOWS_1252.encode(text).0.into_owned()
        };
        d.write("a/people.csv", &bytes);
        let o = d.run(&["run", "--once"]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let fixed = read(&d.path("b/people.txt"));
        let o = d.run(&["run", "--once"]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert_eq!(
            read(&d.path("c/people.csv")),
            bytes,
            "{enc}: fixed was {:?}",
            String::from_utf8_lossy(&fixed)
        );
    }
}

#[test]
fn peppol_invoices_become_one_csv_line_per_invoice_line() {
    let d = Deployment::new("data-peppol");
    d.job(
        "peppol",
        r#"
[source]
folder = "in"
settle = "0s"

[input]
format = "xml"
record = "/Invoice/cac:InvoiceLine"
[input.namespaces]
cac = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
cbc = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
[input.fields]
Invoice = "/Invoice/cbc:ID"
Issued = "/Invoice/cbc:IssueDate"
Seller = "/Invoice/cac:AccountingSupplierParty/cac:Party/cac:PartyName/cbc:Name"
Payable = "/Invoice/cac:LegalMonetaryTotal/cbc:PayableAmount"
Line = "cbc:ID"
Qty = "cbc:InvoicedQuantity"
Unit = "cbc:InvoicedQuantity/@unitCode"
Amount = "cbc:LineExtensionAmount"
Item = "cac:Item/cbc:Name"

[[output]]
folder = "out"
name = "{stem}.csv"
format = "csv"
"#,
    );
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::create_dir_all(d.path("in")).unwrap();
    std::fs::copy(
        repo.join("tests/data/ubl-peppol/base-example.xml"),
        d.path("in/base-example.xml"),
    )
    .unwrap();
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(d.path("out/base-example.csv")).unwrap(),
        "Invoice,Issued,Seller,Payable,Line,Qty,Unit,Amount,Item\n\
         Snippet1,2017-11-13,SupplierTradingName Ltd.,1656.25,1,7,DAY,2800,item name\n\
         Snippet1,2017-11-13,SupplierTradingName Ltd.,1656.25,2,-3,DAY,-1500,item name 2\n"
    );
}

#[test]
fn malformed_xml_goes_to_the_error_folder_with_its_line() {
    let d = Deployment::new("data-badxml");
    d.job(
        "x",
        "[source]\nfolder = \"in\"\nsettle = \"0s\"\n[input]\nformat = \"xml\"\nrecord = \"/a/b\"\n[input.fields]\nc = \"c\"\n[[output]]\nfolder = \"out\"\nname = \"{stem}.json\"\nformat = \"json\"\n",
    );
    d.write("in/t.xml", "<a>\n<b><c>1</c></b>\n<b><c>2</d></b>\n</a>\n");
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(1));
    let report = std::fs::read_to_string(d.path("var/error/x/t.xml.error.txt")).unwrap();
    assert!(report.contains("malformed XML"), "{report}");
    assert!(report.contains("line 3"), "{report}");
    assert!(d.files("out").is_empty());
}

#[test]
fn data_keys_are_checked_with_positions() {
    let d = Deployment::new("data-check");
    d.job(
        "j",
        "[source]\nfolder = \"in\"\n[input]\nformat = \"csv\"\nencoding = \"klingon\"\ndelimiter = \";;\"\n[transform]\nfilter = \"Qty >\"\n[[output]]\nfolder = \"out\"\nformat = \"yaml\"\n",
    );
    d.job(
        "k",
        "[source]\nfolder = \"in2\"\n[[output]]\nfolder = \"out2\"\nformat = \"csv\"\n",
    );
    let o = d.run(&["check"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("jobs/j.toml:5:12: input.encoding: unknown encoding \"klingon\""),
        "{err}"
    );
    assert!(
        err.contains("jobs/j.toml:6:13: input.delimiter: expected one ASCII character"),
        "{err}"
    );
    assert!(
        err.contains("jobs/j.toml:8:10: transform.filter: expected a minijinja expression"),
        "{err}"
    );
    assert!(
        err.contains("jobs/j.toml:11:10: output[1].format: expected one of"),
        "{err}"
    );
    assert!(err.contains("jobs/k.toml:5:10: output[1].format: an output format other than \"original\" needs an `[input]`"), "{err}");
}

#[test]
fn ferry_test_shows_records_as_parsed_transformed_and_written() {
    let d = Deployment::new("data-dry");
    d.job("orders", ORDERS_JOB);
    // A sample may be anywhere: it is matched by its name.
    let sample = d.write("samples/orders.csv", erp_export(b""));
    let o = d.run(&["test", "orders", sample.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("#1 (line 2): Auftrag=\"1001\""), "{out}");
    assert!(
        out.contains("-> OrderNo=\"1001\" Item=\"Schraube M6\" Qty=\"1000\""),
        "{out}"
    );
    assert!(out.contains("-> dropped by the filter"), "{out}");
    assert!(out.contains("output 2 as it would be written"), "{out}");
    assert!(out.contains("| 1003;Dübel €;7;10,50;2026-11-03"), "{out}");
    assert!(
        d.files("out").is_empty() && !d.path("var").exists(),
        "a dry run writes nothing"
    );
}

/// Issue 11: JSON and JSON Lines outputs wrote every value as a string.
#[test]
fn json_outputs_write_numbers_booleans_and_null_with_their_type_issue_11() {
    let d = Deployment::new("data-json-types");
    let job = |style: &str| {
        format!(
            r#"
[source]
folder = "in"
settle = "0s"
[input]
format = "csv"
[transform.fields]
A = "a | num"
B = "1 + 1"
C = "c | decimal"
D = "(a | num) > 1"
E = "none"
F = "a | num | string"
G = "a"
[[output]]
folder = "out"
name = "{{stem}}.{style}"
format = "{style}"
"#
        )
    };
    d.job("json", &job("json"));
    d.write(
        "in/t.csv",
        "a,c
1.5,1.5
0,7
",
    );
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let fields = [
        r#"{"A":1.5,"B":2,"C":1.50,"D":true,"E":null,"F":"1.5","G":"1.5"}"#,
        r#"{"A":0,"B":2,"C":7.00,"D":false,"E":null,"F":"0","G":"0"}"#,
    ];
    assert_eq!(
        std::fs::read_to_string(d.path("out/t.json")).unwrap(),
        format!("[\n{},\n{}\n]\n", fields[0], fields[1])
    );
    std::fs::remove_file(d.path("jobs/json.toml")).unwrap();
    d.job("jsonl", &job("jsonl"));
    d.write(
        "in/t.csv",
        "a,c
1.5,1.5
0,7
",
    );
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(d.path("out/t.jsonl")).unwrap(),
        format!("{}\n{}\n", fields[0], fields[1])
    );
}

/// Issue 11: a JSON input's numbers, booleans and null pass through to a JSON output as
/// they were written; CSV input values stay strings.
#[test]
fn json_input_types_pass_through_to_json_output_issue_11() {
    let d = Deployment::new("data-json-pass");
    d.job(
        "j",
        "[source]\nfolder = \"in\"\nsettle = \"0s\"\n[input]\nformat = \"json\"\n[[output]]\nfolder = \"out\"\nname = \"{stem}.jsonl\"\nformat = \"jsonl\"\n",
    );
    d.write(
        "in/o.json",
        r#"[{"no": "1", "price": 12.50, "paid": false, "vat": null, "c": {"n": -1e3}, "tags": [1]}]"#,
    );
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(d.path("out/o.jsonl")).unwrap(),
        "{\"no\":\"1\",\"price\":12.50,\"paid\":false,\"vat\":null,\"c.n\":-1e3,\"tags\":\"[1]\"}\n"
    );
}

/// Issue 11: with `format = "csv"` and no `name`, `orders.json` was written holding CSV.
#[test]
fn a_record_format_without_a_name_writes_its_extension_issue_11() {
    let d = Deployment::new("data-default-name");
    d.job(
        "j",
        "[source]\nfolder = \"in\"\nsettle = \"0s\"\n[input]\nformat = \"json\"\n[[output]]\nfolder = \"out\"\nformat = \"csv\"\n[[output]]\nfolder = \"copy\"\n",
    );
    d.write("in/orders.json", r#"[{"no": 1}]"#);
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(d.files("out"), vec!["orders.csv"]);
    assert_eq!(read(&d.path("out/orders.csv")), b"no\n1\n");
    assert_eq!(
        d.files("copy"),
        vec!["orders.json"],
        "an original keeps its name"
    );
}

/// Issue 11: `ferry check` passed `Itme | uper`, and every file then failed at run time.
#[test]
fn check_reports_unknown_filters_functions_and_syntax_errors_issue_11() {
    let d = Deployment::new("data-check-names");
    d.job(
        "j",
        r#"[source]
folder = "in"
[input]
format = "csv"
[transform]
filter = "Qty | num > 0 and Itme is definedd"
[transform.fields]
Item = "Itme | uper"
Total = "summ(Qty)"
Bad = "(Qty | num"
Fine = "lookup('t', Item, 'name') | default('?') | upper"
[[output]]
folder = "out"
format = "text"
template = "{{ Item | lowr }}"
"#,
    );
    let o = d.run(&["check"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    for want in [
        "jobs/j.toml:6:37: transform.filter: unknown test `definedd` (did you mean `defined`?)",
        "jobs/j.toml:8:16: transform.fields.Item: unknown filter `uper` (did you mean `upper`?)",
        "jobs/j.toml:9:10: transform.fields.Total: unknown function `summ`",
        "jobs/j.toml:10:7: transform.fields.Bad: expected a minijinja expression",
        "jobs/j.toml:15:23: output[1].template: unknown filter `lowr` (did you mean `lower`?)",
    ] {
        assert!(err.contains(want), "{want}\nin:\n{err}");
    }
    assert_eq!(err.matches("error: ").count(), 5, "{err}");
    // The daemon's loader refuses the job the same way.
    let o = d.run(&["run", "--once"]);
    assert!(
        stderr(&o).contains("unknown filter `uper`"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn json_records_at_a_path_become_csv() {
    let d = Deployment::new("data-json");
    d.job(
        "j",
        "[source]\nfolder = \"in\"\nsettle = \"0s\"\n[input]\nformat = \"json\"\nrecords = \"data.orders\"\n[[output]]\nfolder = \"out\"\nname = \"{stem}.csv\"\nformat = \"csv\"\n",
    );
    d.write(
        "in/o.json",
        r#"{"meta": {"n": 2}, "data": {"orders": [
            {"no": 1, "price": 12.50, "customer": {"name": "Acme", "vat": null}, "tags": ["a", "b"]},
            {"no": 2, "price": 3, "customer": {"name": "Bo \"B\""}, "tags": []}
        ]}}"#,
    );
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(d.path("out/o.csv")).unwrap(),
        "no,price,customer.name,customer.vat,tags\n1,12.50,Acme,,\"[\"\"a\"\",\"\"b\"\"]\"\n2,3,\"Bo \"\"B\"\"\",,[]\n"
    );
}

#[test]
fn fields_are_captured_from_text_with_line_items() {
    let d = Deployment::new("data-text");
    d.job(
        "t",
        r#"
[source]
folder = "in"
settle = "0s"

[input]
format = "text"
mode = "capture"
required = ["invoice", "total"]
[input.capture]
invoice = ['Invoice number\s*(?P<invoice>[A-Z0-9-]+)']
date = ['Date:\s*(\d{2}\.\d{2}\.\d{4})', 'Dated (\S+)']
total = ['Total\s+EUR\s+(?P<total>[0-9.,]+)']
[input.items]
start = 'Pos\s+Description'
end = 'Total'
line = '^\s*(?P<pos>\d+)\s+(?P<item>.+?)\s+(?P<amount>[0-9]+,[0-9]{2})\s*$'

[transform]
keep = true
[transform.fields]
amount = "amount | num | decimal(2)"

[[output]]
folder = "out"
name = "{stem}.jsonl"
format = "jsonl"
"#,
    );
    d.write(
        "in/inv.txt",
        "ACME GmbH\nInvoice number\nRE-2026-0042\nDate: 02.11.2026\n\nPos  Description        Amount\n1    Hosting basic      12,50\n2    Domain .de          1,20\nTotal EUR 13,70\n",
    );
    d.write("in/broken.txt", "Some letter without an invoice number\n");
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(d.path("out/inv.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["invoice"], "RE-2026-0042");
    assert_eq!(lines[0]["date"], "02.11.2026");
    assert_eq!(lines[1]["item"], "Domain .de");
    assert!(
        std::fs::read_to_string(d.path("out/inv.jsonl"))
            .unwrap()
            .contains(r#""amount":1.20}"#),
        "`decimal` digits as written"
    );
    let report = std::fs::read_to_string(d.path("var/error/t/broken.txt.error.txt")).unwrap();
    assert!(report.contains("invoice"), "{report}");
}

#[test]
fn records_are_split_into_one_file_per_order() {
    let d = Deployment::new("data-split");
    d.job(
        "split",
        r#"
[source]
folder = "in"
settle = "0s"

[input]
format = "csv"
delimiter = ";"

[transform]
split = "Order"

[[output]]
folder = "out"
name = "order_{Order}.xml"
format = "xml"
root = "Order"
record = "Line"
exists = "unique"

[[output]]
folder = "all"
name = "{name}"
"#,
    );
    d.write("out/order_A-2.xml", "an older file of the same name\n");
    d.write(
        "in/lines.csv",
        "Order;Item;Qty\nA-1;Bolt;5\nA-2;Nut;7\nA-1;Washer;9\n../x;Evil;1\n",
    );
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        d.files("out"),
        vec![
            "order_.._x.xml",
            "order_A-1.xml",
            "order_A-2.xml",
            "order_A-2_1.xml"
        ]
    );
    let a1 = std::fs::read_to_string(d.path("out/order_A-1.xml")).unwrap();
    assert!(
        a1.contains("<Item>Bolt</Item>")
            && a1.contains("<Item>Washer</Item>")
            && !a1.contains("Nut"),
        "{a1}"
    );
    assert_eq!(
        read(&d.path("out/order_A-2.xml")),
        b"an older file of the same name\n"
    );
    assert!(
        std::fs::read_to_string(d.path("out/order_A-2_1.xml"))
            .unwrap()
            .contains("<Item>Nut</Item>")
    );
    assert_eq!(
        read(&d.path("all/lines.csv")),
        read(&d.path("var/archive/split/lines.csv")),
        "the original output too"
    );
    let h = d.history();
    assert_eq!(
        h[0]["outputs"].as_array().unwrap().len(),
        4,
        "{:?}",
        h[0]["outputs"]
    );
    assert!(
        !d.files("").iter().any(|f| f.contains(".ferry-")),
        "no temporary file left"
    );
}

/// Issue 11: `ferry test` on a split job said "outputs: none", previewed one combined file,
/// numbered a second output wrong, and exited 0 for a file that would fail.
#[test]
fn ferry_test_lists_split_files_and_gives_a_verdict_issue_11() {
    let d = Deployment::new("data-split-test");
    d.job(
        "split",
        r#"
[source]
folder = "in"
settle = "0s"
[input]
format = "csv"
delimiter = ";"
[transform]
split = "Order"
[transform.fields]
Order = "Order"
Qty = "Qty | num"
[[output]]
folder = "out"
name = "order_{Order}.csv"
format = "csv"
[[output]]
folder = "all"
[[output]]
folder = "json"
name = "{Order}.jsonl"
format = "jsonl"
"#,
    );
    let sample = d.write(
        "samples/lines.csv",
        "Order;Qty
A-1;5
A-2;7
A-1;9
",
    );
    let o = d.run(&["test", "split", sample.to_str().unwrap()]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{}", stderr(&o));
    let p = |rel: &str| d.path(rel).display().to_string();
    let want = format!(
        "outputs:\n  1. one file per value of `Order` in {}: 2 files\n     {}\n     {}\n  2. {}\n  3. one file per value of `Order` in {}: 2 files\n     {}\n     {}\n",
        p("out"),
        p("out/order_A-1.csv"),
        p("out/order_A-2.csv"),
        p("all/lines.csv"),
        p("json"),
        p("json/A-1.jsonl"),
        p("json/A-2.jsonl"),
    );
    assert!(out.contains(&want), "{out}");
    assert!(
        out.contains("output 1, the file for Order = \"A-1\", as it would be written (these records only):\n  | Order,Qty\n  | A-1,5\n  | A-1,9\n"),
        "{out}"
    );
    assert!(
        out.contains("output 3, the file for Order = \"A-2\", as it would be written (these records only):\n  | {\"Order\":\"A-2\",\"Qty\":7}\n"),
        "{out}"
    );
    assert!(
        out.contains("\nverdict:   would deliver (3 records read)\n"),
        "{out}"
    );
    assert!(
        d.files("out").is_empty() && d.files("json").is_empty(),
        "a dry run writes nothing"
    );

    // What a run would write is what the dry run listed.
    d.write("in/lines.csv", "Order;Qty\nA-1;5\nA-2;7\nA-1;9\n");
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(d.files("out"), vec!["order_A-1.csv", "order_A-2.csv"]);
    assert_eq!(d.files("json"), vec!["A-1.jsonl", "A-2.jsonl"]);

    // A file that would fail: a record past the ones shown is not a number.
    let mut bad = String::from("Order;Qty\n");
    for i in 0..20 {
        bad.push_str(&format!("B-{i};{i}\n"));
    }
    bad.push_str("B-9;lots\n");
    let sample = d.write("samples/bad.csv", bad);
    let o = d.run(&["test", "split", sample.to_str().unwrap()]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("\nverdict:   would fail: record 21 (line 22, byte "),
        "{out}"
    );
    assert!(out.contains("\"lots\" is not a number"), "{out}");
    // An output that exists already with `exists = "fail"`.
    let sample = d.write("samples/lines.csv", "Order;Qty\nA-1;5\n");
    let o = d.run(&["test", "split", sample.to_str().unwrap()]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains(&format!(
            "\nverdict:   would fail: output 1: {} exists already, or two groups of records have this name (exists = \"fail\")\n",
            p("out/order_A-1.csv")
        )),
        "{out}"
    );
}

/// Issue 11: with `on_error = "skip"` bad records do not fail the file: the verdict says
/// how many would go to the rejects file.
#[test]
fn ferry_test_counts_rejected_records_with_skip_issue_11() {
    let d = Deployment::new("data-test-skip");
    d.job(
        "s",
        "[source]\nfolder = \"in\"\n[input]\nformat = \"csv\"\non_error = \"skip\"\n[transform.fields]\nQty = \"Qty | num\"\n[[output]]\nfolder = \"out\"\nformat = \"jsonl\"\n",
    );
    let sample = d.write("samples/q.csv", "Qty\n1\nx\n\"2,5\"\n3,4\n");
    let o = d.run(&["test", "s", sample.to_str().unwrap()]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(
        out.contains("\nverdict:   would deliver (3 records read, 2 to the rejects file)\n"),
        "{out}"
    );
    assert!(
        out.contains("  | {\"Qty\":1}\n  | {\"Qty\":2.5}\n"),
        "{out}"
    );
}

#[test]
fn field_placeholders_without_split_take_the_first_record() {
    // Without `split`, `{Order}` is the first record's field (the whole file is one
    // output). A CSV header is known only from the file; `columns` are known at load.
    let d = Deployment::new("data-split-check");
    let job = "[source]\nfolder = \"in\"\nsettle = \"0s\"\n[input]\nformat = \"csv\"\n[[output]]\nfolder = \"out\"\nname = \"o_{Order}.csv\"\nformat = \"csv\"\n";
    d.job("j", job);
    d.write("in/a.csv", "Order,Qty\nA1,2\nA2,3\n");
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(read(&d.path("out/o_A1.csv")), b"Order,Qty\nA1,2\nA2,3\n");
    d.job(
        "j",
        &job.replace(
            "format = \"csv\"\n[[",
            "format = \"csv\"\ncolumns = [\"Ord\", \"Qty\"]\n[[",
        ),
    );
    let o = d.run(&["check"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("jobs/j.toml:9:11: output[1].name: unknown placeholder `{Order}`: no field of the job's records has this name; they have {Ord} {Qty}"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn csv_to_xml_to_csv_gives_back_the_same_data() {
    for enc in ["utf-8", "windows-1252"] {
        let d = Deployment::new("data-xml-trip");
        d.job("to-xml", &format!(
            "[source]\nfolder = \"a\"\nsettle = \"0s\"\n[input]\nformat = \"csv\"\nencoding = \"{enc}\"\ndelimiter = \";\"\n\
             [[output]]\nfolder = \"b\"\nname = \"{{stem}}.xml\"\nformat = \"xml\"\nencoding = \"{enc}\"\nroot = \"Customers\"\nrecord = \"Customer\"\n\
             [output.fields]\nno = \"@no\"\nname = \"Name\"\nstreet = \"Address/Street\"\ncity = \"Address/City\"\nnote = \"Note\"\n"
        ));
        d.job("to-csv", &format!(
            "[source]\nfolder = \"b\"\nsettle = \"0s\"\n[input]\nformat = \"xml\"\nencoding = \"{enc}\"\nrecord = \"/Customers/Customer\"\n\
             [input.fields]\nno = \"@no\"\nname = \"Name\"\nstreet = \"Address/Street\"\ncity = \"Address/City\"\nnote = \"Note\"\n\
             [[output]]\nfolder = \"c\"\nname = \"{{stem}}.csv\"\nformat = \"csv\"\nencoding = \"{enc}\"\ndelimiter = \";\"\n"
        ));
        let text = "no;name;street;city;note\n1;Müller & Söhne <GmbH>;Hauptstr. 5;Köln;\"quote \"\"x\"\"; semi\"\n2;Ann;;Bonn;a€b\n";
        let bytes: Vec<u8> = if enc == "utf-8" {
            text.as_bytes().to_vec()
        } else {
            encoding_rs::WINDOWS_1252.encode(text).0.into_owned()
        };
        d.write("a/people.csv", &bytes);
        for _ in 0..2 {
            let o = d.run(&["run", "--once"]);
            assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        }
        let xml = read(&d.path("var/archive/to-csv/people.xml"));
        assert!(
            xml.starts_with(
                format!(
                    "<?xml version=\"1.0\" encoding=\"{}\"?>",
                    if enc == "utf-8" {
                        "UTF-8"
                    } else {
                        "windows-1252"
                    }
                )
                .as_bytes()
            ),
            "{}",
            String::from_utf8_lossy(&xml)
        );
        assert_eq!(read(&d.path("c/people.csv")), bytes, "{enc}");
    }
}

/// Without a transform nothing is copied per record for the rejects file; a record that
/// then cannot be written (a character the output encoding lacks) still lands there whole,
/// and leaves nothing of itself in the output, on the small-file path and on the two-thread
/// path for big files.
#[test]
fn without_a_transform_an_unwritable_record_is_rejected_with_its_fields() {
    for rows in [3usize, 40_000] {
        let d = Deployment::new("data-skip-notransform");
        d.job(
            "plain",
            "[source]\nfolder = \"in\"\nsettle = \"0s\"\n[input]\nformat = \"csv\"\non_error = \"skip\"\n\
             [[output]]\nfolder = \"out\"\nname = \"{stem}.json\"\nformat = \"json\"\nencoding = \"windows-1252\"\n",
        );
        let mut csv = String::from("No,Name\n");
        for i in 1..=rows {
            if i == 2 {
                csv.push_str("2,Tōkyō 東京\n");
            } else {
                csv.push_str(&format!("{i},Müller\n"));
            }
        }
        d.write("in/plain.csv", csv.as_bytes());
        let o = d.run(&["run", "--once"]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let bytes = read(&d.path("out/plain.json"));
        let (text, _, _) = encoding_rs::WINDOWS_1252.decode(&bytes);
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json.as_array().unwrap().len(), rows - 1, "all but one");
        assert_eq!(json[1]["No"], "3");
        let rejects = std::fs::read_to_string(d.path("out/plain.csv.rejects.jsonl")).unwrap();
        let lines: Vec<serde_json::Value> = rejects
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 1, "{rejects}");
        assert_eq!(lines[0]["data"]["No"], "2", "{rejects}");
        assert_eq!(lines[0]["data"]["Name"], "Tōkyō 東京", "{rejects}");
    }
}
