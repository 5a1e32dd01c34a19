//! The `file_sd` kind: a Prometheus file_sd JSON file, replaced atomically.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};

use super::{failed, write_atomically};
use crate::sandbox::CallError;

/// The groups of a file_sd file; a file that does not exist yet has none.
fn read_groups(path: &Path) -> Result<Value, CallError> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice::<Value>(&b)
            .ok()
            .filter(Value::is_array)
            .ok_or_else(|| {
                failed(format!(
                    "{} is not a file_sd file (a JSON array of target groups)",
                    path.display()
                ))
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(json!([])),
        Err(e) => Err(failed(format!("{}: {e}", path.display()))),
    }
}

fn group_targets(groups: &Value) -> Vec<String> {
    groups
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t.as_str().map(str::to_string))
        .collect()
}

pub(super) async fn get(path: &Path) -> Result<Value, CallError> {
    let path = path.to_path_buf();
    let groups = tokio::task::spawn_blocking(move || read_groups(&path))
        .await
        .map_err(|e| failed(e.to_string()))??;
    Ok(json!({"targets": group_targets(&groups), "groups": groups}))
}

pub(super) async fn set(
    path: &Path,
    args: &Value,
    targets: Vec<String>,
) -> Result<Value, CallError> {
    let labels: BTreeMap<String, String> = match args.get("labels") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|_| CallError::BadRequest("labels must be an object of strings".into()))?,
    };
    if let Some(bad) = labels.keys().find(|k| !vigil_model::is_valid_label_name(k)) {
        return Err(CallError::BadRequest(format!(
            "{bad:?} is not a label name"
        )));
    }
    let now = json!([{"targets": targets, "labels": labels}]);
    let bytes = serde_json::to_vec_pretty(&now).map_err(|e| failed(e.to_string()))?;
    let path = path.to_path_buf();
    let previous = tokio::task::spawn_blocking(move || {
        let previous = read_groups(&path)?;
        write_atomically(&path, &bytes).map_err(|e| failed(format!("{}: {e}", path.display())))?;
        Ok::<_, CallError>(previous)
    })
    .await
    .map_err(|e| failed(e.to_string()))??;
    Ok(json!({
        "previous": group_targets(&previous),
        "targets": targets,
        "previous_groups": previous,
        "groups": now,
    }))
}
