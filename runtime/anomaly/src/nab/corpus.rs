//! Reading a NAB-like corpus: `windows.json`, the CSV files it names, `profiles.json`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;
use time::PrimitiveDateTime;
use time::macros::format_description;

/// Largest CSV file read (NAB's largest is under 2 MB).
pub const MAX_FILE_BYTES: u64 = 256 << 20;
/// Largest `windows.json` or `profiles.json` read.
pub const MAX_LABEL_BYTES: u64 = 16 << 20;

/// What went wrong reading a corpus, naming the file (and line) to fix.
#[derive(Debug, thiserror::Error)]
pub enum NabError {
    /// A file could not be read.
    #[error("{path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file is larger than the harness reads.
    #[error("{path}: larger than {limit} bytes")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The bound.
        limit: u64,
    },
    /// `windows.json` or `profiles.json` is not what NAB writes.
    #[error("{path}: {message}")]
    Labels {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A CSV line is not `timestamp,value`.
    #[error("{path}:{line}: {message}")]
    Csv {
        /// The file.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// One row of a data file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Row {
    /// Milliseconds since the epoch (NAB's timestamps are UTC without a zone).
    pub millis: i64,
    /// The value; a file may hold values a detector refuses (`nan`).
    pub value: f64,
}

/// One data file and its anomaly windows.
#[derive(Debug, Clone, PartialEq)]
pub struct DataFile {
    /// Its path in the corpus, as `windows.json` names it (`realTraffic/speed_6005.csv`).
    pub name: String,
    /// Its category: the first folder of its name (`realTraffic`).
    pub category: String,
    /// Its rows in file order.
    pub rows: Vec<Row>,
    /// Its windows as inclusive row ranges, in time order.
    pub windows: Vec<(usize, usize)>,
}

/// A scoring profile: NAB's cost matrix weights.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// Its name (`standard`, `reward_low_FP_rate`, `reward_low_FN_rate`).
    pub name: String,
    /// Reward for a window detected at its start.
    pub tp: f64,
    /// Cost of a false positive far from any window.
    pub fp: f64,
    /// Cost of a missed window.
    pub fn_: f64,
}

impl Profile {
    /// NAB's three profiles, used when the corpus has no `profiles.json`.
    pub fn nab() -> Vec<Profile> {
        [
            ("standard", 1.0, 0.11, 1.0),
            ("reward_low_FP_rate", 1.0, 0.22, 1.0),
            ("reward_low_FN_rate", 1.0, 0.11, 2.0),
        ]
        .into_iter()
        .map(|(name, tp, fp, fn_)| Profile {
            name: name.to_owned(),
            tp,
            fp,
            fn_,
        })
        .collect()
    }
}

/// A corpus: its files (sorted by name) and profiles.
#[derive(Debug, Clone, PartialEq)]
pub struct Corpus {
    /// Every file `windows.json` names.
    pub files: Vec<DataFile>,
    /// The profiles to score with.
    pub profiles: Vec<Profile>,
}

impl Corpus {
    /// Reads the corpus in `dir`. Categories are whatever folders `windows.json` names.
    pub fn load(dir: &Path) -> Result<Corpus, NabError> {
        let labels_path = dir.join("windows.json");
        let labels: BTreeMap<String, Vec<(String, String)>> =
            serde_json::from_slice(&read_bounded(&labels_path, MAX_LABEL_BYTES)?).map_err(|e| {
                NabError::Labels {
                    path: labels_path.clone(),
                    message: format!("not a map of file names to [start, end] windows: {e}"),
                }
            })?;
        let mut files = Vec::with_capacity(labels.len());
        for (name, limits) in labels {
            let category = category_of(&name).ok_or_else(|| NabError::Labels {
                path: labels_path.clone(),
                message: format!(
                    "`{}` is not a file in a category folder (`category/file.csv`)",
                    name.escape_debug()
                ),
            })?;
            let path = dir.join(&name);
            let rows = read_csv(&path)?;
            let windows = limits
                .iter()
                .map(|(start, end)| window_rows(&rows, start, end))
                .collect::<Result<Vec<_>, String>>()
                .and_then(ordered)
                .map_err(|message| NabError::Labels {
                    path: labels_path.clone(),
                    message: format!("`{name}`: {message}"),
                })?;
            files.push(DataFile {
                name,
                category,
                rows,
                windows,
            });
        }
        let profiles_path = dir.join("profiles.json");
        let profiles = if profiles_path.exists() {
            read_profiles(&profiles_path)?
        } else {
            Profile::nab()
        };
        Ok(Corpus { files, profiles })
    }

    /// The categories, sorted.
    pub fn categories(&self) -> Vec<&str> {
        let mut c: Vec<&str> = self.files.iter().map(|f| f.category.as_str()).collect();
        c.dedup();
        c
    }
}

/// The first folder of a relative path with exactly one folder, no `..`.
fn category_of(name: &str) -> Option<String> {
    let parts: Vec<Component<'_>> = Path::new(name).components().collect();
    match parts.as_slice() {
        [Component::Normal(category), Component::Normal(_)] => category.to_str().map(str::to_owned),
        _ => None,
    }
}

fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, NabError> {
    let io = |source| NabError::Io {
        path: path.to_owned(),
        source,
    };
    let mut bytes = Vec::new();
    File::open(path)
        .map_err(io)?
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > limit {
        return Err(NabError::TooLarge {
            path: path.to_owned(),
            limit,
        });
    }
    Ok(bytes)
}

fn read_csv(path: &Path) -> Result<Vec<Row>, NabError> {
    let bytes = read_bounded(path, MAX_FILE_BYTES)?;
    let text = String::from_utf8(bytes).map_err(|_| NabError::Csv {
        path: path.to_owned(),
        line: 0,
        message: "not UTF-8 text".to_owned(),
    })?;
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let fail = |message: String| NabError::Csv {
            path: path.to_owned(),
            line: i + 1,
            message,
        };
        if i == 0 {
            if line.trim() != "timestamp,value" {
                return Err(fail("the header must be `timestamp,value`".to_owned()));
            }
            continue;
        }
        if line.trim().is_empty() {
            continue;
        }
        let (t, v) = line
            .split_once(',')
            .ok_or_else(|| fail("expected `timestamp,value`".to_owned()))?;
        let millis = parse_time(t).ok_or_else(|| {
            fail(format!(
                "`{}` is not a time like `2014-04-01 00:00:00`",
                t.escape_debug()
            ))
        })?;
        let value = v
            .trim()
            .parse::<f64>()
            .map_err(|_| fail(format!("`{}` is not a number", v.escape_debug())))?;
        rows.push(Row { millis, value });
    }
    Ok(rows)
}

/// `2014-04-01 00:00:00`, optionally with a fraction of a second, read as UTC milliseconds.
pub(crate) fn parse_time(text: &str) -> Option<i64> {
    let text = text.trim();
    let (whole, _fraction) = text.split_once('.').unwrap_or((text, ""));
    let format = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    let t = PrimitiveDateTime::parse(whole, &format).ok()?.assume_utc();
    let millis = t.unix_timestamp_nanos() / 1_000_000;
    i64::try_from(millis).ok()
}

/// Windows sorted by their first row; overlapping windows are refused (NAB's never overlap,
/// and the sweep scores each row for one window).
fn ordered(mut windows: Vec<(usize, usize)>) -> Result<Vec<(usize, usize)>, String> {
    windows.sort_unstable();
    for pair in windows.windows(2) {
        if pair[1].0 <= pair[0].1 {
            return Err(format!(
                "two windows overlap (rows {}..={} and {}..={})",
                pair[0].0, pair[0].1, pair[1].0, pair[1].1
            ));
        }
    }
    Ok(windows)
}

/// The inclusive rows of a window: from the first row at or after `start` to the last at or
/// before `end`.
fn window_rows(rows: &[Row], start: &str, end: &str) -> Result<(usize, usize), String> {
    let start_ms = parse_time(start).ok_or_else(|| format!("`{start}` is not a time"))?;
    let end_ms = parse_time(end).ok_or_else(|| format!("`{end}` is not a time"))?;
    let first = rows.partition_point(|r| r.millis < start_ms);
    let after = rows.partition_point(|r| r.millis <= end_ms);
    if first >= after {
        return Err(format!("the window [{start}, {end}] holds no row"));
    }
    Ok((first, after - 1))
}

#[derive(Deserialize)]
struct ProfileFile {
    #[serde(rename = "CostMatrix")]
    cost: Cost,
}

#[derive(Deserialize)]
struct Cost {
    #[serde(rename = "tpWeight")]
    tp: f64,
    #[serde(rename = "fpWeight")]
    fp: f64,
    #[serde(rename = "fnWeight")]
    fn_: f64,
}

fn read_profiles(path: &Path) -> Result<Vec<Profile>, NabError> {
    let parsed: BTreeMap<String, ProfileFile> =
        serde_json::from_slice(&read_bounded(path, MAX_LABEL_BYTES)?).map_err(|e| {
            NabError::Labels {
                path: path.to_owned(),
                message: format!("not NAB's profiles (name → CostMatrix): {e}"),
            }
        })?;
    let mut profiles = Vec::new();
    for (name, p) in parsed {
        let c = p.cost;
        if ![c.tp, c.fp, c.fn_]
            .iter()
            .all(|w| w.is_finite() && *w >= 0.0)
            || c.tp == 0.0
        {
            return Err(NabError::Labels {
                path: path.to_owned(),
                message: format!("`{name}`: weights must be finite, not negative, tp above 0"),
            });
        }
        profiles.push(Profile {
            name,
            tp: c.tp,
            fp: c.fp,
            fn_: c.fn_,
        });
    }
    // NAB's order: standard first.
    profiles.sort_by_key(|p| (p.name != "standard", p.name.clone()));
    Ok(profiles)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nab_times_parse_with_or_without_fractions() {
        assert_eq!(parse_time("1970-01-01 00:01:00"), Some(60_000));
        assert_eq!(parse_time("1970-01-01 00:01:00.000000"), Some(60_000));
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn categories_are_one_folder_deep() {
        assert_eq!(
            category_of("realTraffic/a.csv").as_deref(),
            Some("realTraffic")
        );
        assert_eq!(category_of("a.csv"), None);
        assert_eq!(category_of("../x/a.csv"), None);
        assert_eq!(category_of("/etc/passwd"), None);
    }
}
