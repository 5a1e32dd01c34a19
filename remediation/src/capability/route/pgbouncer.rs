//! The `pgbouncer` kind: one `[databases]` entry of pgbouncer.ini, rewritten and reloaded.

use serde_json::{Value, json};

use super::{PgbouncerRoute, failed, write_atomically};
use crate::capability::pg::pg_error;
use crate::sandbox::CallError;

/// A libpq-style `key=value key='quoted value'` string, in order.
fn parse_connstr(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(format!("{s:?}: {key:?} has no value"));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            loop {
                match chars.next() {
                    Some('\\') => value.extend(chars.next()),
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => return Err(format!("{s:?}: unterminated quote")),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push((key, value));
    }
}

fn format_connstr(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            if v.is_empty() || v.contains(|c: char| c.is_whitespace() || c == '\'' || c == '\\') {
                format!("{k}='{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
            } else {
                format!("{k}={v}")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Finds `database`'s line in the `[databases]` section: (line index, its key=value pairs).
fn find_database(ini: &str, database: &str) -> Result<(usize, Vec<(String, String)>), String> {
    let mut section = String::new();
    for (i, line) in ini.lines().enumerate() {
        let t = line.trim();
        if t.starts_with('[') && t.ends_with(']') {
            section = t[1..t.len() - 1].trim().to_ascii_lowercase();
            continue;
        }
        if section != "databases" || t.starts_with(';') || t.starts_with('#') {
            continue;
        }
        if let Some((k, v)) = t.split_once('=')
            && k.trim() == database
        {
            return Ok((i, parse_connstr(v.trim())?));
        }
    }
    Err(format!("[databases] has no entry {database:?}"))
}

/// The ini text with `database`'s host and port replaced; and the previous `host:port`.
fn repoint_ini(
    ini: &str,
    database: &str,
    host: &str,
    port: u16,
) -> Result<(String, String), String> {
    let (at, mut pairs) = find_database(ini, database)?;
    let get = |pairs: &[(String, String)], k: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    let previous = format!(
        "{}:{}",
        get(&pairs, "host").unwrap_or_default(),
        get(&pairs, "port").unwrap_or_else(|| "5432".into())
    );
    for (k, v) in [("host", host.to_string()), ("port", port.to_string())] {
        match pairs.iter_mut().find(|(key, _)| key == k) {
            Some(p) => p.1 = v,
            None => pairs.push((k.to_string(), v)),
        }
    }
    let mut out = String::with_capacity(ini.len() + 32);
    for (i, line) in ini.lines().enumerate() {
        if i == at {
            out.push_str(&format!("{database} = {}", format_connstr(&pairs)));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    Ok((out, previous))
}

/// What pgbouncer's `SHOW DATABASES` says of `database`: `host:port`.
async fn pgbouncer_live(p: &PgbouncerRoute) -> Result<String, CallError> {
    let c = p
        .admin
        .connect(&p.admin_address, Some("pgbouncer"), "vigil-route")
        .await
        .map_err(|e| failed(format!("pgbouncer admin console: {e}")))?;
    let rows = c
        .client
        .simple_query("SHOW DATABASES")
        .await
        .map_err(|e| failed(format!("pgbouncer SHOW DATABASES: {}", pg_error(&e))))?;
    for m in rows {
        if let tokio_postgres::SimpleQueryMessage::Row(r) = m
            && r.get("name") == Some(p.database.as_str())
        {
            return Ok(format!(
                "{}:{}",
                r.get("host").unwrap_or_default(),
                r.get("port").unwrap_or_default()
            ));
        }
    }
    Err(failed(format!(
        "pgbouncer does not serve the database {:?}",
        p.database
    )))
}

pub(super) async fn get(p: &PgbouncerRoute) -> Result<Value, CallError> {
    let live = pgbouncer_live(p).await?;
    Ok(json!({"database": p.database, "targets": [live]}))
}

pub(super) async fn set(p: &PgbouncerRoute, targets: &[String]) -> Result<Value, CallError> {
    let [target] = targets else {
        return Err(CallError::BadRequest(format!(
            "a pgbouncer database has one server: give one target, not {}",
            targets.len()
        )));
    };
    let (host, port) =
        crate::capability::pg::split_address(target, 5432).map_err(CallError::BadRequest)?;
    let path = p.config.clone();
    let old = tokio::fs::read_to_string(&path)
        .await
        .map_err(|e| failed(format!("{}: {e}", path.display())))?;
    let (new, previous) = repoint_ini(&old, &p.database, &host, port)
        .map_err(|e| failed(format!("{}: {e}", path.display())))?;
    let write = |bytes: String| {
        let path = path.clone();
        async move {
            let shown = path.display().to_string();
            tokio::task::spawn_blocking(move || write_atomically(&path, bytes.as_bytes()))
                .await
                .map_err(|e| failed(e.to_string()))?
                .map_err(|e| failed(format!("{shown}: {e}")))
        }
    };
    write(new).await?;
    let reload = async {
        let c = p
            .admin
            .connect(&p.admin_address, Some("pgbouncer"), "vigil-route")
            .await
            .map_err(|e| format!("pgbouncer admin console: {e}"))?;
        c.client
            .simple_query("RELOAD")
            .await
            .map_err(|e| format!("pgbouncer RELOAD: {}", pg_error(&e)))?;
        // Server connections to the old host close as soon as they are released.
        c.client
            .simple_query(&format!("RECONNECT \"{}\"", p.database.replace('"', "")))
            .await
            .map_err(|e| format!("pgbouncer RECONNECT: {}", pg_error(&e)))?;
        Ok::<_, String>(())
    };
    if let Err(e) = reload.await {
        // pgbouncer still routes as the old file says: put it back, so file and process agree.
        write(old).await?;
        return Err(failed(format!("{e}; {} was restored", path.display())));
    }
    let live = pgbouncer_live(p).await?;
    let want = format!("{host}:{port}");
    if live != want {
        return Err(failed(format!(
            "pgbouncer routes {} to {live} after RELOAD, not to {want}",
            p.database
        )));
    }
    Ok(json!({"database": p.database, "previous": [previous], "targets": [live]}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgbouncer_entries_are_repointed_and_nothing_else_changes() {
        let ini = "; pgbouncer\n[databases]\nother = host=10.0.0.9 dbname=x\nappdb = host=10.0.0.1 port=5432 dbname=appdb application_name='my app'\n\n[pgbouncer]\nlisten_port = 6432\nappdb = not-a-database\n";
        let (out, prev) = repoint_ini(ini, "appdb", "10.0.0.2", 5433).unwrap();
        assert_eq!(prev, "10.0.0.1:5432");
        assert_eq!(
            out,
            "; pgbouncer\n[databases]\nother = host=10.0.0.9 dbname=x\nappdb = host=10.0.0.2 port=5433 dbname=appdb application_name='my app'\n\n[pgbouncer]\nlisten_port = 6432\nappdb = not-a-database\n"
        );
        let (out, prev) = repoint_ini(ini, "other", "db2", 6000).unwrap();
        assert_eq!(prev, "10.0.0.9:5432");
        assert!(
            out.contains("other = host=db2 dbname=x port=6000\n"),
            "{out}"
        );
        assert!(
            repoint_ini(ini, "nope", "h", 1)
                .unwrap_err()
                .contains("no entry \"nope\"")
        );
        assert!(
            parse_connstr("a='x")
                .unwrap_err()
                .contains("unterminated quote")
        );
        assert!(parse_connstr("a").unwrap_err().contains("has no value"));
        assert_eq!(
            parse_connstr("a=1  b = 'x y\\'z'").unwrap(),
            [("a".into(), "1".into()), ("b".into(), "x y'z".into())]
        );
    }
}
