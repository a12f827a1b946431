//! Prints what ferry reads from PDFs: their facts (`meta`) and the text that `[input]
//! format = "pdf"` captures from, page by page. For writing capture patterns:
//!
//!     cargo run --example pdftext -- invoice.pdf
use ferry::formats::pdf;

fn main() {
    let limits = pdf::PdfLimits::default();
    for p in std::env::args().skip(1) {
        let read = std::fs::read(&p)
            .map_err(|e| e.to_string())
            .and_then(|b| pdf::load(&b, &limits))
            .and_then(|d| pdf::text(&d, &limits).map(|t| (pdf::info(&d), t)));
        match read {
            Ok((facts, text)) => println!("==== {p}\n{facts:?}\n{text}"),
            Err(e) => println!("==== {p}: {e}"),
        }
    }
}
