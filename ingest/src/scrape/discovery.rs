//! Service discovery: `static_configs` and `file_sd_configs`, producing target groups.
//!
//! file_sd files are JSON (`.json`) or YAML (`.yml`, `.yaml`) lists of `{targets: [...], labels: {...}}`,
//! as Prometheus reads them; the file path is attached as `__meta_filepath`. Patterns may use `*` and `?`
//! in their last path element.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Deserialize;
use vigil_model::is_valid_label_name;

use super::config::{FileSdConfig, StaticConfig};

/// A group of targets sharing labels.
#[derive(Clone, Debug, PartialEq)]
pub struct TargetGroup {
    /// Where the group came from (for logs): `static/0`, or the file path.
    pub source: String,
    /// One label set per target; each holds `__address__`.
    pub targets: Vec<BTreeMap<String, String>>,
    pub labels: BTreeMap<String, String>,
}

pub fn static_groups(cfgs: &[StaticConfig]) -> Vec<TargetGroup> {
    cfgs.iter()
        .enumerate()
        .map(|(i, c)| TargetGroup {
            source: format!("static/{i}"),
            targets: c
                .targets
                .iter()
                .map(|t| BTreeMap::from([("__address__".to_string(), t.clone())]))
                .collect(),
            labels: c.labels.clone(),
        })
        .collect()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileGroup {
    #[serde(default)]
    targets: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// Reads one file_sd file.
pub fn read_file(path: &Path) -> Result<Vec<TargetGroup>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let groups: Vec<FileGroup> = match ext {
        "json" => serde_json::from_str(&text).map_err(|e| {
            format!(
                "{}: line {} column {}: {e}",
                path.display(),
                e.line(),
                e.column()
            )
        })?,
        "yml" | "yaml" => {
            serde_yaml_ng::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
        }
        _ => {
            return Err(format!(
                "{}: file_sd files must end in .json, .yml or .yaml",
                path.display()
            ));
        }
    };
    let mut out = Vec::with_capacity(groups.len());
    for (i, g) in groups.into_iter().enumerate() {
        for k in g.labels.keys() {
            if !is_valid_label_name(k) {
                return Err(format!(
                    "{}: group {i}: {k:?} is not a valid label name",
                    path.display()
                ));
            }
        }
        let mut labels = g.labels;
        labels.insert("__meta_filepath".into(), path.display().to_string());
        out.push(TargetGroup {
            source: format!("{}:{i}", path.display()),
            targets: g
                .targets
                .into_iter()
                .map(|t| BTreeMap::from([("__address__".to_string(), t)]))
                .collect(),
            labels,
        });
    }
    Ok(out)
}

fn wildcard_match(pat: &[u8], s: &[u8]) -> bool {
    match (pat.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            wildcard_match(&pat[1..], s) || (!s.is_empty() && wildcard_match(pat, &s[1..]))
        }
        (Some(b'?'), Some(_)) => wildcard_match(&pat[1..], &s[1..]),
        (Some(p), Some(c)) if p == c => wildcard_match(&pat[1..], &s[1..]),
        _ => false,
    }
}

/// Expands the file patterns (wildcards allowed in the file name), sorted.
pub fn expand(patterns: &[String]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for p in patterns {
        let path = Path::new(p);
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !name.contains(['*', '?']) {
            out.push(path.to_path_buf());
            continue;
        }
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let Ok(rd) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in rd.flatten() {
            if let Some(n) = e.file_name().to_str()
                && wildcard_match(name.as_bytes(), n.as_bytes())
            {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Files of a file_sd config with their modification times, to notice changes cheaply.
pub fn fingerprint(cfgs: &[FileSdConfig]) -> Vec<(PathBuf, Option<SystemTime>)> {
    cfgs.iter()
        .flat_map(|c| expand(&c.files))
        .map(|p| {
            let m = std::fs::metadata(&p).and_then(|m| m.modified()).ok();
            (p, m)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_json_and_yaml_with_globs() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.json"),
            r#"[{"targets":["h1:1","h2:2"],"labels":{"env":"x"}}]"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("b.yml"), "- targets: ['h3:3']\n").unwrap();
        std::fs::write(dir.path().join("c.txt"), "ignored").unwrap();
        let files = expand(&[
            format!("{}/*.json", dir.path().display()),
            format!("{}/b.y?l", dir.path().display()),
        ]);
        assert_eq!(files.len(), 2);
        let g = read_file(&files[0]).unwrap();
        assert_eq!(g[0].targets.len(), 2);
        assert_eq!(g[0].labels["env"], "x");
        assert!(g[0].labels["__meta_filepath"].ends_with("a.json"));
        assert_eq!(
            read_file(&files[1]).unwrap()[0].targets[0]["__address__"],
            "h3:3"
        );
    }

    #[test]
    fn bad_files_say_where() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.json");
        std::fs::write(&p, "[{\"targets\": [1]}]").unwrap();
        let e = read_file(&p).unwrap_err();
        assert!(e.contains("bad.json") && e.contains("line 1"), "{e}");
    }
}
