fn main() {
    for p in std::env::args().skip(1) {
        let b = std::fs::read(&p).unwrap();
        let l = ferry::formats::pdf::PdfLimits::default();
        let r = ferry::formats::pdf::load(&b, &l).and_then(|d| {
            let m = ferry::formats::pdf::info(&d);
            ferry::formats::pdf::text(&d, &l).map(|t| (t.len(), m))
        });
        println!("==== {p}: {r:?}");
    }
}
