//! quick-xml's raw speed, as a yardstick for ferry's XML input (see benches/data.sh):
//! reads FILE with quick-xml's `NsReader` from a buffered reader (as ferry does), resolves
//! the namespace of every element, and counts the `cac:InvoiceLine` elements (UBL's
//! aggregate components namespace). Events only: no text is decoded or kept. This is the
//! upper bound of any record extractor built on quick-xml's streaming reader.
//!
//!     cargo run --release --example xml_raw -- FILE
//!     cargo run --release --example xml_raw -- --ferry FILE
//!
//! With `--ferry`, reads FILE the way ferry's pipeline does with the benchmark's job
//! (UTF-8 decoding, ferry's XML reader extracting the invoice lines' five fields into one
//! reused record), without writing, hashing or fsyncing: ferry's reading layer on its own.

use std::io::BufReader;
use std::time::Instant;

use ferry::formats::Record;
use ferry::formats::encoding::DecodeReader;
use ferry::formats::xml::{XmlOptions, XmlPaths, XmlReader};
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

const CAC: &str = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2";
const CBC: &str = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (ferry_mode, path) = match args.as_slice() {
        [flag, path] if flag == "--ferry" => (true, path),
        [path] => (false, path),
        _ => return Err("usage: xml_raw [--ferry] FILE".into()),
    };
    let size = std::fs::metadata(path)?.len();
    let start = Instant::now();
    let mut n = 0u64;
    let file = std::fs::File::open(path)?;
    if ferry_mode {
        let opts = XmlOptions {
            record: "//cac:InvoiceLine".into(),
            fields: [
                ("Line", "cbc:ID"),
                ("Quantity", "cbc:InvoicedQuantity"),
                ("Unit", "cbc:InvoicedQuantity/@unitCode"),
                ("Item", "cac:Item/cbc:Name"),
                ("Amount", "cbc:LineExtensionAmount"),
            ]
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect(),
            namespaces: vec![("cac".into(), CAC.into()), ("cbc".into(), CBC.into())],
        };
        let decoded = BufReader::with_capacity(
            256 * 1024,
            DecodeReader::new(file, encoding_rs::UTF_8, false),
        );
        let mut r = XmlReader::new(decoded, XmlPaths::compile(&opts)?);
        let mut rec = Record::default();
        while r.read_into(&mut rec)? {
            n += 1;
        }
    } else {
        let mut reader = NsReader::from_reader(BufReader::with_capacity(256 * 1024, file));
        reader.config_mut().expand_empty_elements = false;
        let mut buf = Vec::with_capacity(64 * 1024);
        loop {
            match reader.read_event_into(&mut buf)? {
                Event::Start(e) | Event::Empty(e) => {
                    let (ns, local) = reader.resolver().resolve_element(e.name());
                    if matches!(ns, ResolveResult::Bound(u) if u.as_ref() == CAC)
                        && local.as_ref() == "InvoiceLine"
                    {
                        n += 1;
                    }
                }
                Event::Eof => break,
                _ => {}
            }
            buf.clear();
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{n} records, {size} bytes in {secs:.3} s: {:.1} MB/s",
        size as f64 / 1e6 / secs
    );
    Ok(())
}
