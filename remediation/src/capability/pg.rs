//! How the host logs in to a PostgreSQL server or a pgbouncer admin console: one declared login
//! (`user`, a password or a password file, `dbname`, a connect timeout, and TLS as Prometheus's
//! `tls_config` writes it), shared by the `postgres.*` capabilities and the pgbouncer kind of
//! `route.*`. Runbooks never see it.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_postgres::Client;
use vigil_model::Secret;

/// A declared login (the address comes from the node or route).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// With it, the connection must be TLS (`sslmode=require`), verified as it says (`ca_file`,
    /// `server_name`, `insecure_skip_verify`, client `cert_file`/`key_file`); without it, plain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_config: Option<vigil_http::TlsConfig>,
}

impl Default for PgLogin {
    fn default() -> Self {
        PgLogin {
            user: default_user(),
            password: Secret::default(),
            password_file: String::new(),
            dbname: default_dbname(),
            connect_timeout: default_connect_timeout(),
            tls_config: None,
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
    /// Resolves relative TLS file names against `dir` and checks that the TLS settings load.
    pub(crate) fn prepare(&mut self, dir: &std::path::Path) -> Result<(), String> {
        if let Some(t) = &mut self.tls_config {
            t.set_directory(dir);
            t.validate().map_err(|e| format!("tls_config: {e}"))?;
            t.client_config(false)
                .map_err(|e| format!("tls_config: {e}"))?;
        }
        Ok(())
    }

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
            .connect_timeout(self.connect_timeout);
        if !password.is_empty() {
            c.password(password.as_bytes());
        }
        let connect = async {
            let e = |e: tokio_postgres::Error| format!("{address}: {}", pg_error(&e));
            match &self.tls_config {
                None => {
                    c.ssl_mode(tokio_postgres::config::SslMode::Disable);
                    let (client, conn) = c.connect(tokio_postgres::NoTls).await.map_err(e)?;
                    Ok::<_, String>((client, tokio::spawn(async move { drop(conn.await) })))
                }
                Some(t) => {
                    c.ssl_mode(tokio_postgres::config::SslMode::Require);
                    let tls = pg_tls(t).map_err(|m| format!("{address}: {m}"))?;
                    let (client, conn) = c.connect(tls).await.map_err(e)?;
                    Ok((client, tokio::spawn(async move { drop(conn.await) })))
                }
            }
        };
        // The connect timeout covers each TCP connect; this covers the whole handshake.
        let (client, task) =
            tokio::time::timeout(self.connect_timeout + Duration::from_secs(1), connect)
                .await
                .map_err(|_| {
                    format!(
                        "{address}: no connection within {}",
                        humantime::format_duration(self.connect_timeout)
                    )
                })??;
        Ok(Connection { client, task })
    }
}

/// The TLS connector of a `tls_config` for PostgreSQL: ALPN `postgresql`, as servers from
/// PostgreSQL 17 expect (older ones ignore it).
pub fn pg_tls(
    t: &vigil_http::TlsConfig,
) -> Result<tokio_postgres_rustls::MakeRustlsConnect, String> {
    let mut cfg = t
        .client_config(false)
        .map_err(|e| format!("tls_config: {e}"))?;
    cfg.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(cfg))
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
