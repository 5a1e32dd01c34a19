//! The indirections clients reach PostgreSQL and web services through, as real peers: HAProxy
//! (Debian's `haproxy`, with its admin-level runtime API on a Unix socket) and pgbouncer (Debian's
//! `pgbouncer`, run as the `postgres` user, since it refuses root). Each runs in the foreground in a
//! temporary directory and is killed when dropped.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use crate::harness::*;

/// One command to HAProxy's runtime API; its reply.
pub async fn haproxy_cli(socket: &std::path::Path, command: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::UnixStream::connect(socket).await.unwrap();
    s.write_all(format!("{command}\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

pub struct Haproxy {
    pub socket: PathBuf,
    pub _proc: Proc,
    pub _dir: TempDir,
}

impl Haproxy {
    /// Starts HAProxy with `body` (frontends and backends) after a `global` section that opens the
    /// admin socket; None (skipped outside CI) without haproxy.
    pub async fn start(body: &str) -> Option<Haproxy> {
        let bin = tool("haproxy")?;
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("admin.sock");
        let cfg = dir.path().join("haproxy.cfg");
        std::fs::write(
            &cfg,
            format!(
                "global\n  stats socket {} mode 600 level admin\n  maxconn 2000\n\n{body}",
                socket.display()
            ),
        )
        .unwrap();
        let check = Command::new(&bin)
            .arg("-c")
            .arg("-f")
            .arg(&cfg)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "haproxy -c: {}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        let proc = Proc::spawn(
            "haproxy",
            Command::new(&bin).arg("-db").arg("-f").arg(&cfg),
            &dir.path().join("haproxy.log"),
        );
        let s = socket.clone();
        eventually(Duration::from_secs(20), "HAProxy's runtime API", || {
            let s = s.clone();
            async move {
                if !s.exists() {
                    return None;
                }
                haproxy_cli(&s, "show info")
                    .await
                    .contains("Name: HAProxy")
                    .then_some(())
            }
        })
        .await;
        Some(Haproxy {
            socket,
            _proc: proc,
            _dir: dir,
        })
    }

    pub async fn cli(&self, command: &str) -> String {
        haproxy_cli(&self.socket, command).await
    }
}

pub struct Pgbouncer {
    pub port: u16,
    pub ini: PathBuf,
    pub _proc: Proc,
    pub _dir: TempDir,
}

impl Pgbouncer {
    /// pgbouncer on a reserved port in session mode, trusting the `postgres` user (also its admin),
    /// serving `database` from the server at `server` (`host:port`).
    pub async fn start(database: &str, server_host: &str, server_port: u16) -> Option<Pgbouncer> {
        let bin = tool("pgbouncer")?;
        let dir = tempfile::tempdir().unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let port = reserved_port();
        let users = dir.path().join("users.txt");
        std::fs::write(&users, "\"postgres\" \"\"\n").unwrap();
        let ini = dir.path().join("pgbouncer.ini");
        std::fs::write(
            &ini,
            format!(
                "[databases]\n{database} = host={server_host} port={server_port} dbname=postgres\n\n\
                 [pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
                 auth_type = trust\nauth_file = {}\nadmin_users = postgres\npool_mode = session\n\
                 server_connect_timeout = 2\nserver_login_retry = 1\nserver_check_delay = 0\n",
                users.display()
            ),
        )
        .unwrap();
        let mut cmd = Command::new(&bin);
        crate::pg::as_postgres(&mut cmd).arg(&ini);
        let proc = Proc::spawn("pgbouncer", &mut cmd, &dir.path().join("pgbouncer.log"));
        eventually(
            Duration::from_secs(20),
            "pgbouncer listening",
            || async move {
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .ok()
                    .map(|_| ())
            },
        )
        .await;
        Some(Pgbouncer {
            port,
            ini,
            _proc: proc,
            _dir: dir,
        })
    }
}

/// A plain connection to `127.0.0.1:port` as `postgres` (a server, HAProxy or pgbouncer).
pub async fn pg_connect(port: u16, dbname: &str) -> Result<tokio_postgres::Client, String> {
    let (client, conn) = tokio_postgres::Config::new()
        .host("127.0.0.1")
        .port(port)
        .user("postgres")
        .dbname(dbname)
        .connect_timeout(Duration::from_secs(2))
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| match e.as_db_error() {
            Some(db) => db.message().to_string(),
            None => e.to_string(),
        })?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// The port of the server a connection through `port` lands on.
pub async fn server_port_via(port: u16, dbname: &str) -> Result<i32, String> {
    let c = pg_connect(port, dbname).await?;
    c.query_one("SELECT inet_server_port()", &[])
        .await
        .map(|r| r.get(0))
        .map_err(|e| e.to_string())
}
