//! What a waiting file would change: its records compared with those of the job's last
//! approved file by the job's `[review] key`: records added, removed, and changed with
//! each changed field's old and new value.
//!
//! Memory: the last approved file is read once into a map from key to its fields, then the
//! waiting file is streamed against it, one reused record at a time; what is left in the
//! map at the end was removed. So one file (the approved one) is held, never both, and
//! that one within [`Limits`]: a base of more than `max_records` records or `max_bytes`
//! of keys and values is not compared (the comparison says so; the decision can still be
//! made). Only the first `max_details` differences are kept to show; the counts are
//! always exact.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde::Serialize;

use crate::formats::Record;
use crate::job::Job;

/// Bounds of one comparison.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_records: u64,
    pub max_bytes: u64,
    pub max_details: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_records: 1_000_000,
            max_bytes: 256 << 20,
            max_details: 1000,
        }
    }
}

/// One difference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Change {
    Added { key: String },
    Removed { key: String },
    Changed { key: String, fields: Vec<Field> },
}

/// A changed field: its value in the last approved file and in the waiting one (`None`:
/// the field is not in that file's record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Field {
    pub field: String,
    pub old: Option<String>,
    pub new: Option<String>,
}

/// The comparison of a waiting file with the last approved one.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Diff {
    /// Whether there was an approved file to compare with (without one every record is
    /// added).
    pub compared_with_approved: bool,
    pub records: u64,
    pub added: u64,
    pub removed: u64,
    pub changed: u64,
    pub unchanged: u64,
    /// Keys that appear more than once in the waiting file (each after the first counts
    /// as added).
    pub duplicate_keys: u64,
    /// The first differences, in the waiting file's order, then the removed keys sorted.
    pub details: Vec<Change>,
    /// More differences than `details` holds.
    pub truncated: bool,
}

impl Diff {
    /// "+3 added, -1 removed, ~2 changed" as `ferry pending` shows it.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} added, {} removed, {} changed",
            self.added, self.removed, self.changed
        );
        if !self.compared_with_approved {
            s.push_str(" (no approved file yet)");
        }
        s
    }
}

/// A record of the approved file, kept compact: its field names shared with the other
/// records of the file, its values in one string.
struct Fields {
    names: std::sync::Arc<[String]>,
    text: String,
    ends: Box<[u32]>,
}

impl Fields {
    fn of(rec: &Record) -> Fields {
        let mut text = String::with_capacity(rec.values.iter().map(String::len).sum());
        let mut ends = Vec::with_capacity(rec.values.len());
        for v in &rec.values {
            text.push_str(v);
            ends.push(text.len() as u32);
        }
        Fields {
            names: rec.names.clone(),
            text,
            ends: ends.into(),
        }
    }

    fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        let mut start = 0usize;
        self.names.iter().zip(self.ends.iter()).map(move |(n, &e)| {
            let v = &self.text[start..e as usize];
            start = e as usize;
            (n.as_str(), v)
        })
    }
}

fn key_of(rec: &Record, key: &str, n: u64, which: &str) -> Result<String, String> {
    rec.get(key).map(str::to_string).ok_or_else(|| {
        let names: Vec<&str> = rec.names.iter().map(String::as_str).collect();
        format!(
            "record {n} of {which} has no field `{key}` (the `[review] key`); its fields are: {}",
            names.join(", ")
        )
    })
}

/// Compares the records of `waiting` with those of `approved` (the job's last approved
/// file, if any) by `key`, reading both with `job`'s record reader.
pub fn compare(
    job: &Job,
    key: &str,
    approved: Option<&Path>,
    waiting: &Path,
    limits: Limits,
) -> Result<Diff, String> {
    let mut base: HashMap<String, Fields> = HashMap::new();
    let mut d = Diff {
        compared_with_approved: approved.is_some(),
        ..Diff::default()
    };
    if let Some(p) = approved {
        let file = std::fs::File::open(p)
            .map_err(|e| format!("cannot open the last approved file {}: {e}", p.display()))?;
        let mut bytes = 0u64;
        crate::runtime::pipeline::each_record(job, file, |n, rec| {
            if n > limits.max_records {
                return Err(format!(
                    "the last approved file has more than {} records: too many to compare in memory",
                    limits.max_records
                ));
            }
            let k = key_of(rec, key, n, "the last approved file")?;
            bytes += rec.values.iter().map(|v| v.len() as u64).sum::<u64>() + k.len() as u64;
            if bytes > limits.max_bytes {
                return Err(format!(
                    "the last approved file has more than {} MiB of values: too large to compare in memory",
                    limits.max_bytes >> 20
                ));
            }
            base.insert(k, Fields::of(rec));
            Ok(())
        })
        .map_err(|e| format!("cannot read the last approved file: {e}"))?;
    }
    let mut seen: HashSet<u64> = HashSet::new();
    let file = std::fs::File::open(waiting)
        .map_err(|e| format!("cannot open the waiting file {}: {e}", waiting.display()))?;
    let push = |d: &mut Diff, c: Change| {
        if d.details.len() < limits.max_details {
            d.details.push(c);
        } else {
            d.truncated = true;
        }
    };
    d.records = crate::runtime::pipeline::each_record(job, file, |n, rec| {
        if n > limits.max_records {
            return Err(format!(
                "the waiting file has more than {} records: too many to compare",
                limits.max_records
            ));
        }
        let k = key_of(rec, key, n, "the waiting file")?;
        if !seen.insert(hash(&k)) {
            d.duplicate_keys += 1;
            d.added += 1;
            push(&mut d, Change::Added { key: k });
            return Ok(());
        }
        match base.remove(&k) {
            None => {
                d.added += 1;
                push(&mut d, Change::Added { key: k });
            }
            Some(old) => {
                let fields = changed_fields(&old, rec);
                if fields.is_empty() {
                    d.unchanged += 1;
                } else {
                    d.changed += 1;
                    push(&mut d, Change::Changed { key: k, fields });
                }
            }
        }
        Ok(())
    })
    .map_err(|e| format!("cannot read the waiting file: {e}"))?;
    let mut removed: Vec<String> = base.into_keys().collect();
    removed.sort();
    d.removed = removed.len() as u64;
    for k in removed {
        push(&mut d, Change::Removed { key: k });
    }
    Ok(d)
}

fn hash(k: &str) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    BuildHasherDefault::<DefaultHasher>::default().hash_one(k)
}

/// The fields whose values differ, in the waiting record's order, then those only the old
/// record had.
fn changed_fields(old: &Fields, rec: &Record) -> Vec<Field> {
    let mut out = Vec::new();
    for (name, new) in rec.fields() {
        let was = old.iter().find(|(n, _)| *n == name).map(|(_, v)| v);
        if was != Some(new) {
            out.push(Field {
                field: name.to_string(),
                old: was.map(str::to_string),
                new: Some(new.to_string()),
            });
        }
    }
    for (name, v) in old.iter() {
        if rec.get(name).is_none() {
            out.push(Field {
                field: name.to_string(),
                old: Some(v.to_string()),
                new: None,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(dir: &Path) -> Job {
        let src = "[source]\nfolder = \"in\"\n[input]\nformat = \"csv\"\n[[output]]\nfolder = \"out\"\n[review]\nkey = \"K\"\n";
        crate::job::compile(&dir.join("jobs/j.toml"), dir, src).expect("a valid job")
    }

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn limits_bound_the_base_and_the_details_but_never_the_counts() {
        let dir = std::env::temp_dir().join(format!("ferry-diff-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let j = job(&dir);
        let old = write(&dir, "old.csv", "K,V\n1,a\n2,b\n3,c\n");
        let new = write(&dir, "new.csv", "K,V\n1,a\n2,B\n4,d\n5,e\n5,f\n");
        let d = compare(&j, "K", Some(&old), &new, Limits::default()).unwrap();
        assert_eq!(
            (
                d.records,
                d.added,
                d.removed,
                d.changed,
                d.unchanged,
                d.duplicate_keys
            ),
            (5, 3, 1, 1, 1, 1)
        );
        assert_eq!(
            d.details[0],
            Change::Changed {
                key: "2".into(),
                fields: vec![Field {
                    field: "V".into(),
                    old: Some("b".into()),
                    new: Some("B".into())
                }]
            }
        );
        assert_eq!(d.details.last(), Some(&Change::Removed { key: "3".into() }));
        let few = Limits {
            max_details: 2,
            ..Limits::default()
        };
        let d = compare(&j, "K", Some(&old), &new, few).unwrap();
        assert_eq!(
            (d.details.len(), d.truncated, d.added, d.removed),
            (2, true, 3, 1)
        );
        let small = Limits {
            max_records: 2,
            ..Limits::default()
        };
        let e = compare(&j, "K", Some(&old), &new, small).unwrap_err();
        assert!(e.contains("more than 2 records"), "{e}");
        let e = compare(&j, "X", None, &new, Limits::default()).unwrap_err();
        assert!(
            e.contains("record 1 of the waiting file has no field `X`"),
            "{e}"
        );
        assert!(e.contains("K, V"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
