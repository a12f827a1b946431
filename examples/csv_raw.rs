//! The csv crate's raw parsing speed, as a yardstick for ferry's CSV input (see
//! benches/data.sh): reads FILE with `csv::Reader` into one reused `ByteRecord` and counts
//! the records.
//!
//!     cargo run --release --example csv_raw -- FILE
//!     cargo run --release --example csv_raw -- --ferry FILE
//!
//! With `--ferry`, reads FILE the way ferry's pipeline does (UTF-8 decoding, ferry's CSV
//! reader filling one reused record), without transforming, writing, hashing or fsyncing:
//! ferry's reading layer on its own, for comparison with the raw figure.
//!
//!     cargo run --release --example csv_raw -- --sha256 FILE...
//!
//! With `--sha256`, computes the sha256 of each FILE with the crate ferry hashes with (on
//! one thread): the cost of ferry's integrity hashes on their own.

use std::io::BufReader;
use std::time::Instant;

use ferry::formats::Record;
use ferry::formats::csv::{CsvOptions, CsvReader};
use ferry::formats::encoding::DecodeReader;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == "--sha256") {
        return sha256(&args[1..]);
    }
    let (ferry_mode, path) = match args.as_slice() {
        [flag, path] if flag == "--ferry" => (true, path),
        [path] => (false, path),
        _ => return Err("usage: csv_raw [--ferry] FILE".into()),
    };
    let size = std::fs::metadata(path)?.len();
    let start = Instant::now();
    let mut n = 0u64;
    if ferry_mode {
        let file = std::fs::File::open(path)?;
        let decoded = BufReader::with_capacity(
            256 * 1024,
            DecodeReader::new(file, encoding_rs::UTF_8, false),
        );
        let mut r = CsvReader::new(decoded, CsvOptions::default())?;
        let mut rec = Record::default();
        while r.read_into(&mut rec)? {
            n += 1;
        }
    } else {
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_path(path)?;
        let mut rec = csv::ByteRecord::new();
        while rdr.read_byte_record(&mut rec)? {
            n += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{n} records, {size} bytes in {secs:.3} s: {:.1} MB/s",
        size as f64 / 1e6 / secs
    );
    Ok(())
}

fn sha256(files: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    use sha2::Digest;
    use std::io::Read;
    let start = Instant::now();
    let mut total = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    for f in files {
        let mut file = std::fs::File::open(f)?;
        let mut h = sha2::Sha256::new();
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            total += n as u64;
        }
        println!("{}  {f}", hex::encode(h.finalize()));
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{total} bytes hashed in {secs:.3} s: {:.1} MB/s",
        total as f64 / 1e6 / secs
    );
    Ok(())
}
