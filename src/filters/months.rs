//! Month names in other languages, for the `date` filter's `locale`: each name or usual
//! abbreviation a language writes is replaced by the English month name, which chrono's
//! `%B` and `%b` parse (either accepts the full name or its abbreviation). Only month
//! names: day names (`%A`) are not translated; a format rarely needs them to parse.

/// Per language: the names of each month, full names first, lower case. Spellings
/// without accents are listed too, for text that lost them.
const MONTHS: &[(&str, [&[&str]; 12])] = &[
    (
        "de",
        [
            &["januar", "jänner", "jan", "jän"],
            &["februar", "feber", "feb"],
            &["märz", "maerz", "mär", "mrz"],
            &["april", "apr"],
            &["mai"],
            &["juni", "jun"],
            &["juli", "jul"],
            &["august", "aug"],
            &["september", "sept", "sep"],
            &["oktober", "okt"],
            &["november", "nov"],
            &["dezember", "dez"],
        ],
    ),
    (
        "fr",
        [
            &["janvier", "janv", "jan"],
            &["février", "fevrier", "févr", "fevr", "fév", "fev"],
            &["mars", "mar"],
            &["avril", "avr"],
            &["mai"],
            &["juin"],
            &["juillet", "juil"],
            &["août", "aout"],
            &["septembre", "sept", "sep"],
            &["octobre", "oct"],
            &["novembre", "nov"],
            &["décembre", "decembre", "déc", "dec"],
        ],
    ),
    (
        "es",
        [
            &["enero", "ene"],
            &["febrero", "feb"],
            &["marzo", "mar"],
            &["abril", "abr"],
            &["mayo", "may"],
            &["junio", "jun"],
            &["julio", "jul"],
            &["agosto", "ago"],
            &["septiembre", "setiembre", "sept", "sep", "set"],
            &["octubre", "oct"],
            &["noviembre", "nov"],
            &["diciembre", "dic"],
        ],
    ),
    (
        "it",
        [
            &["gennaio", "gen"],
            &["febbraio", "feb"],
            &["marzo", "mar"],
            &["aprile", "apr"],
            &["maggio", "mag"],
            &["giugno", "giu"],
            &["luglio", "lug"],
            &["agosto", "ago"],
            &["settembre", "set"],
            &["ottobre", "ott"],
            &["novembre", "nov"],
            &["dicembre", "dic"],
        ],
    ),
    (
        "nl",
        [
            &["januari", "jan"],
            &["februari", "feb"],
            &["maart", "mrt", "mar"],
            &["april", "apr"],
            &["mei"],
            &["juni", "jun"],
            &["juli", "jul"],
            &["augustus", "aug"],
            &["september", "sept", "sep"],
            &["oktober", "okt"],
            &["november", "nov"],
            &["december", "dec"],
        ],
    ),
    (
        "pt",
        [
            &["janeiro", "jan"],
            &["fevereiro", "fev"],
            &["março", "marco", "mar"],
            &["abril", "abr"],
            &["maio", "mai"],
            &["junho", "jun"],
            &["julho", "jul"],
            &["agosto", "ago"],
            &["setembro", "set"],
            &["outubro", "out"],
            &["novembro", "nov"],
            &["dezembro", "dez"],
        ],
    ),
];

const ENGLISH: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// The languages `locale` may name.
pub fn languages() -> Vec<&'static str> {
    MONTHS.iter().map(|(l, _)| *l).collect()
}

/// `text` with every word that is a month name of `locale` (`"de"`, `"de_AT"`, `"fr-CH"`;
/// the language decides) replaced by the English name, in any case. `Err`: a language
/// without a table.
pub fn to_english(text: &str, locale: &str) -> Result<String, String> {
    let lang = locale
        .split(['_', '-', '.'])
        .next()
        .unwrap_or("")
        .to_lowercase();
    if lang == "en" {
        return Ok(text.to_string());
    }
    let Some((_, months)) = MONTHS.iter().find(|(l, _)| *l == lang) else {
        return Err(format!(
            "no month names for locale {locale:?}; expected one of en {}",
            languages().join(" ")
        ));
    };
    let month_of = |word: &str| {
        let w = word.to_lowercase();
        months.iter().position(|names| names.contains(&w.as_str()))
    };
    let mut out = String::with_capacity(text.len() + 8);
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        match month_of(word) {
            Some(m) => out.push_str(ENGLISH[m]),
            None => out.push_str(word),
        }
        word.clear();
    };
    for c in text.chars() {
        if c.is_alphabetic() {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    Ok(out)
}

/// `format` with `%b` and `%h` (an abbreviated month) read as `%B`, which parses full
/// names and abbreviations alike; `%%` stays a literal percent sign.
pub fn full_month_format(format: &str) -> String {
    let mut out = String::with_capacity(format.len());
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('b' | 'h') => out.push_str("%B"),
            Some(n) => {
                out.push('%');
                out.push(n);
            }
            None => out.push('%'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn month_names_become_english() {
        assert_eq!(to_english("12. März 2026", "de").unwrap(), "12. March 2026");
        assert_eq!(
            to_english("3 JANV. 2025", "fr_FR").unwrap(),
            "3 January. 2025"
        );
        assert_eq!(
            to_english("1 de août, 31 de décembre", "fr").unwrap(),
            "1 de August, 31 de December"
        );
        assert_eq!(to_english("7 maggio 2014", "it-IT").unwrap(), "7 May 2014");
        assert_eq!(
            to_english("Maidenhead 4 mai", "de").unwrap(),
            "Maidenhead 4 May"
        );
        assert!(
            to_english("1 x 2", "xx")
                .unwrap_err()
                .contains("expected one of")
        );
        assert_eq!(full_month_format("%d %b %Y %%b %h"), "%d %B %Y %%b %B");
    }
}
