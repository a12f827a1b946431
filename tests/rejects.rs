//! The rejects file (`on_error = "skip"`): every key of each line, exactly, for records
//! rejected by the reader (too many fields, too few) and by the transform (a value `num`
//! cannot read, a date `date` cannot read).

mod util;

use serde_json::json;
use util::*;

const JOB: &str = r#"
[source]
folder = "in"
settle = "0s"

[input]
format = "csv"
on_error = "skip"

[transform]
[transform.fields]
No = "No"
Qty = "Menge | num"
When = "Datum | date('%d.%m.%Y')"

[[output]]
folder = "out"
name = "{stem}.csv"
format = "csv"
"#;

fn rejects(d: &Deployment, name: &str) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(d.path(&format!("out/{name}.rejects.jsonl"))).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn every_key_of_the_rejects_file() {
    let d = Deployment::new("rejects-keys");
    d.job("orders", JOB);
    let rows = [
        "No,Menge,Datum\n",       // bytes 0..15, line 1 (the header: not a record)
        "1,3,02.11.2026\n",       // record 1, line 2, byte 15
        "2,viele,02.11.2026\n",   // record 2, line 3, byte 30
        "3,7,03.11.2026,extra\n", // record 3, line 4, byte 49
        "\n",                     // a blank line: no record (the csv parser starts record 4 here)
        "4,5\n",                  // record 4, line 5 (6), byte 70 (71)
        "5,2,31.02.2026\n",       // record 5, line 7, byte 75
        "6,1,04.11.2026\n",       // record 6, line 8, byte 90
    ];
    d.write("in/orders.csv", rows.concat());
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        String::from_utf8(read(&d.path("out/orders.csv"))).unwrap(),
        "No,Qty,When\n1,3,2026-11-02\n6,1,2026-11-04\n"
    );
    // The keys in a fixed order, the record's fields in the file's.
    let text = std::fs::read_to_string(d.path("out/orders.csv.rejects.jsonl")).unwrap();
    assert_eq!(
        text.lines().take(2).collect::<Vec<_>>(),
        [
            r#"{"record":2,"line":3,"byte":30,"field":"Qty","value":"viele","reason":"invalid operation: \"viele\" is not a number","data":{"No":"2","Menge":"viele","Datum":"02.11.2026"}}"#,
            r#"{"record":3,"line":4,"byte":49,"field":null,"value":null,"reason":"expected 3 fields (as in the header), found 4","data":{"No":"3","Menge":"7","Datum":"03.11.2026","field4":"extra"}}"#,
        ]
    );
    let got = rejects(&d, "orders.csv");
    let want = vec![
        json!({
            "record": 2, "line": 3, "byte": 30,
            "field": "Qty", "value": "viele",
            "reason": "invalid operation: \"viele\" is not a number",
            "data": {"No": "2", "Menge": "viele", "Datum": "02.11.2026"},
        }),
        json!({
            "record": 3, "line": 4, "byte": 49,
            "field": null, "value": null,
            "reason": "expected 3 fields (as in the header), found 4",
            "data": {"No": "3", "Menge": "7", "Datum": "03.11.2026", "field4": "extra"},
        }),
        json!({
            "record": 4, "line": 5, "byte": 70,
            "field": null, "value": null,
            "reason": "expected 3 fields (as in the header), found 2",
            "data": {"No": "4", "Menge": "5"},
        }),
        json!({
            "record": 5, "line": 7, "byte": 75,
            "field": "When", "value": "31.02.2026",
            "reason": "invalid operation: \"31.02.2026\" is not a date in the format \"%d.%m.%Y\": input is out of range",
            "data": {"No": "5", "Menge": "2", "Datum": "31.02.2026"},
        }),
    ];
    assert_eq!(got, want, "{got:#?}");
}

/// A header that already names a field `field3`: the extra field of a long row is named
/// by its position with `#`.
#[test]
fn extra_fields_never_hide_a_header_field() {
    let d = Deployment::new("rejects-extra");
    d.job("orders", &JOB.replace("[transform]\n[transform.fields]\nNo = \"No\"\nQty = \"Menge | num\"\nWhen = \"Datum | date('%d.%m.%Y')\"\n", ""));
    d.write("in/odd.csv", "No,field3\n1,a\n2,b,c\n");
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let got = rejects(&d, "odd.csv");
    assert_eq!(
        got,
        vec![json!({
            "record": 2, "line": 3, "byte": 14,
            "field": null, "value": null,
            "reason": "expected 2 fields (as in the header), found 3",
            "data": {"No": "2", "field3": "b", "#3": "c"},
        })]
    );
}
