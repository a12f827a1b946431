//! The `exists` policies (`fail`, `overwrite`, `unique`, `skip`): what an output does when
//! its name is taken. Decided before anything is written ([`apply`], [`free_name`]), and
//! again at the rename for a name taken since ([`super::rename`]).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::fsutil;
use crate::job::Exists;
use crate::journal::Journal;
use crate::outputs::folder as out;

use super::{FileError, Target};

/// The outputs of file `id` that are written, after the policy of each whose final name
/// exists already: `fail` fails the file, `skip` drops the output (with an event in the
/// file's history), `unique` takes the first free numbered name, `overwrite` keeps it.
pub(super) fn apply(
    targets: Vec<Target>,
    id: i64,
    journal: &Journal,
) -> Result<Vec<Target>, FileError> {
    let mut kept = Vec::new();
    for mut t in targets {
        if fsutil::exists(&t.final_path) {
            match t.exists {
                Exists::Fail => {
                    return Err(FileError::new(format!(
                        "output {} {} exists already (exists = \"fail\")",
                        t.idx + 1,
                        t.final_path.display()
                    )));
                }
                Exists::Skip => {
                    let _ = journal.event(
                        id,
                        "skipped",
                        format!("output {} exists: {}", t.idx + 1, t.final_path.display()),
                    );
                    continue;
                }
                Exists::Unique => {
                    t.final_path = (1..)
                        .map(|n| fsutil::numbered(&t.final_path, n))
                        .find(|p| !fsutil::exists(p))
                        .expect("an unbounded search finds a free name");
                    t.temp = out::temp_path(&t.final_path, id, t.idx);
                }
                Exists::Overwrite => {}
            }
        }
        kept.push(t);
    }
    Ok(kept)
}

/// The names the outputs of one original took so far, compared as the file system
/// compares them ([`fsutil::name_key`]): on Windows `A.csv` and `a.csv` are one name.
#[derive(Debug, Default)]
pub struct UsedNames(HashSet<PathBuf>);

impl UsedNames {
    pub fn insert(&mut self, p: &Path) {
        self.0.insert(fsutil::name_key(p));
    }

    pub fn contains(&self, p: &Path) -> bool {
        self.0.contains(&fsutil::name_key(p))
    }
}

/// The name of one of several files an output writes from one original (a group of
/// records, a piece of a PDF) whose name is `base`: `None` when `base` is taken (it exists
/// and the policy is neither `overwrite` nor `skip`, or another of the file's groups has
/// it) and the policy is not `unique`, which takes the first free numbered name.
pub fn free_name(base: &Path, exists: Exists, used: &UsedNames) -> Option<PathBuf> {
    let taken = |p: &Path| {
        used.contains(p)
            || (fsutil::exists(p) && !matches!(exists, Exists::Overwrite | Exists::Skip))
    };
    match exists {
        Exists::Unique => Some(
            (0..)
                .map(|n| fsutil::numbered(base, n))
                .find(|p| !taken(p))
                .expect("a free name"),
        ),
        _ if taken(base) => None,
        _ => Some(base.to_path_buf()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_name_follows_its_exists_policy() {
        let d = std::env::temp_dir().join(format!("ferry-exists-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("on_disk.csv"), "x").unwrap();
        std::fs::write(d.join("on_disk_1.csv"), "x").unwrap();
        let mut used = UsedNames::default();
        used.insert(&d.join("used.csv"));
        let cases = [
            ("free.csv", Exists::Fail, Some("free.csv")),
            ("on_disk.csv", Exists::Fail, None),
            ("on_disk.csv", Exists::Overwrite, Some("on_disk.csv")),
            ("on_disk.csv", Exists::Skip, Some("on_disk.csv")),
            ("on_disk.csv", Exists::Unique, Some("on_disk_2.csv")),
            // Two groups of one file never share a name, whatever the policy.
            ("used.csv", Exists::Overwrite, None),
            ("used.csv", Exists::Unique, Some("used_1.csv")),
        ];
        for (base, exists, want) in cases {
            let got = free_name(&d.join(base), exists, &used);
            assert_eq!(got, want.map(|w| d.join(w)), "{base} with {exists:?}");
        }
        std::fs::remove_dir_all(&d).unwrap();
    }
}
