//! How the host logs in to a PostgreSQL server or a pgbouncer admin console: one declared login
//! (`host`, `port`, `user`, a password or a password file, `dbname`, a connect timeout), shared by
//! the `postgres.*` capabilities and the pgbouncer kind of `route.*`. Runbooks never see it.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_postgres::Client;
use vigil_model::Secret;

/// A declared login. `host` may be a directory, for a Unix socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PgLogin {
    #[serde(default = "default_user")]
    pub user: String,
    #[serde(default, skip_serializing_if = "Secret::is_empty")]
    pub password: Secret,
    /// Read at each connection, so a rotated password is picked up.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub password_file: String,
    #[serde(default = "default_dbname")]
    pub dbname: String,
    #[serde(default = "default_connect_timeout", with = "crate::policy::dur")]
    pub connect_timeout: Duration,
}

impl Default for PgLogin {
    fn default() -> Self {
        PgLogin {
            user: default_user(),
            password: Secret::default(),
            password_file: String::new(),
            dbname: default_dbname(),
            connect_timeout: default_connect_timeout(),
        }
    }
}

fn default_user() -> String {
    "postgres".into()
}
fn default_dbname() -> String {
    "postgres".into()
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(2)
}

/// `host:port` split (`[v6]:port` too); a bare host gets `default_port`.
pub(crate) fn split_address(address: &str, default_port: u16) -> Result<(String, u16), String> {
    if address.starts_with('/') {
        return Ok((address.to_string(), default_port));
    }
    let (host, port) = match address.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') || h.starts_with('[') => (
            h.trim_start_matches('[').trim_end_matches(']'),
            p.parse::<u16>()
                .map_err(|_| format!("{address:?}: the port {p:?} is not a number"))?,
        ),
        _ => (address, default_port),
    };
    if host.is_empty() {
        return Err(format!("{address:?} has no host"));
    }
    Ok((host.to_string(), port))
}

/// A dropped connection task stops.
pub(crate) struct Connection {
    pub client: Client,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PgLogin {
    /// Connects to `address` (`host:port`) as this login, to `dbname` unless another is given.
    pub(crate) async fn connect(
        &self,
        address: &str,
        dbname: Option<&str>,
        application_name: &str,
    ) -> Result<Connection, String> {
        let (host, port) = split_address(address, 5432)?;
        let password = if !self.password_file.is_empty() {
            std::fs::read_to_string(&self.password_file)
                .map_err(|e| format!("password_file {}: {e}", self.password_file))?
                .trim_end_matches(['\r', '\n'])
                .to_string()
        } else {
            self.password.expose().to_string()
        };
        let mut c = tokio_postgres::Config::new();
        c.host(&host)
            .port(port)
            .user(&self.user)
            .dbname(dbname.unwrap_or(&self.dbname))
            .application_name(application_name)
            .connect_timeout(self.connect_timeout)
            .ssl_mode(tokio_postgres::config::SslMode::Disable);
        if !password.is_empty() {
            c.password(password.as_bytes());
        }
        // The connect timeout covers each TCP connect; this covers the whole handshake.
        let (client, conn) = tokio::time::timeout(
            self.connect_timeout + Duration::from_secs(1),
            c.connect(tokio_postgres::NoTls),
        )
        .await
        .map_err(|_| {
            format!(
                "{address}: no connection within {}",
                humantime::format_duration(self.connect_timeout)
            )
        })?
        .map_err(|e| format!("{address}: {}", pg_error(&e)))?;
        let task = tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Connection { client, task })
    }
}

/// A PostgreSQL error with the server's message, when there is one (tokio-postgres's Display says
/// only "db error").
pub(crate) fn pg_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(x) = src {
                s.push_str(": ");
                s.push_str(&x.to_string());
                src = x.source();
            }
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_split_into_host_and_port() {
        assert_eq!(
            split_address("10.0.0.2:6432", 5432).unwrap(),
            ("10.0.0.2".into(), 6432)
        );
        assert_eq!(
            split_address("db.example", 5432).unwrap(),
            ("db.example".into(), 5432)
        );
        assert_eq!(
            split_address("[::1]:5433", 5432).unwrap(),
            ("::1".into(), 5433)
        );
        assert_eq!(
            split_address("/var/run/postgresql", 5432).unwrap(),
            ("/var/run/postgresql".into(), 5432)
        );
        assert!(
            split_address("db:x", 5432)
                .unwrap_err()
                .contains("not a number")
        );
        assert!(
            split_address(":5432", 5432)
                .unwrap_err()
                .contains("no host")
        );
        let l: PgLogin = serde_yaml_ng::from_str("user: ops\npassword: s3cret\n").unwrap();
        assert_eq!(l.dbname, "postgres");
        assert_eq!(l.connect_timeout, Duration::from_secs(2));
        assert!(serde_yaml_ng::from_str::<PgLogin>("usr: x\n").is_err());
    }
}
