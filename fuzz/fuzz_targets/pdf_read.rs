//! Everything ferry does with a PDF that comes from outside: load it, read its facts, its
//! text, its attachments, split it. Run unguarded, so a panic in the parser is a finding.
//!
//!     cargo +nightly fuzz run pdf_read fuzz/corpus/pdf_read -- -max_total_time=600
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ferry::formats::pdf::exercise(data);
});
