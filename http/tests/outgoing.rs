//! Outgoing requests over the wire: `proxy_url` (and `no_proxy`) and `bearer_token_file`, as a
//! Prometheus `http_config` configures them, checked on what a plain TCP server receives.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use vigil_http::{ClientOptions, HttpClientConfig};

/// An HTTP/1.1 server on port 0 that sends the head of every request it reads (request line and
/// headers, lower-cased names) down the channel and answers 200 with `name` as the body.
async fn recorder(name: &'static str) -> (u16, mpsc::UnboundedReceiver<String>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_string();
                        buf.drain(..end + 4);
                        let _ = tx.send(head);
                        let resp = format!(
                            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{name}",
                            name.len()
                        );
                        if s.write_all(resp.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    (port, rx)
}

fn client(yaml: &str, dir: &std::path::Path) -> vigil_http::HttpClient {
    vigil_http::install_crypto_provider();
    let mut c: HttpClientConfig = serde_yaml_ng::from_str(yaml).unwrap();
    c.set_directory(dir);
    c.build(&ClientOptions::default()).unwrap()
}

async fn next(rx: &mut mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("no request arrived")
        .unwrap()
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[tokio::test]
async fn requests_go_through_proxy_url_except_for_no_proxy_hosts() {
    let (proxy, mut via_proxy) = recorder("proxy").await;
    let (direct, mut direct_rx) = recorder("direct").await;
    let dir = tempfile::tempdir().unwrap();
    let c = client(
        &format!("proxy_url: http://127.0.0.1:{proxy}\nno_proxy: localhost\nbearer_token: tok\n"),
        dir.path(),
    );
    // A name that does not resolve: only the proxy can answer for it.
    let r = c
        .get("http://target.invalid:9100/metrics")
        .unwrap()
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "proxy");
    let head = next(&mut via_proxy).await;
    assert!(
        head.starts_with("GET http://target.invalid:9100/metrics HTTP/1.1"),
        "absolute-form request line expected at the proxy:\n{head}"
    );
    assert_eq!(header(&head, "host"), Some("target.invalid:9100"));
    assert_eq!(header(&head, "authorization"), Some("Bearer tok"));
    // A host under no_proxy is reached directly.
    let r = c
        .get(&format!("http://localhost:{direct}/x"))
        .unwrap()
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "direct");
    let head = next(&mut direct_rx).await;
    assert!(head.starts_with("GET /x HTTP/1.1"), "{head}");
    assert!(
        via_proxy.try_recv().is_err(),
        "the no_proxy request went to the proxy"
    );
}

#[tokio::test]
async fn bearer_token_file_is_sent_and_reread_for_every_request() {
    let (port, mut rx) = recorder("ok").await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "first-token\n").unwrap();
    // Relative to the configuration file's directory, as in Prometheus.
    let c = client("bearer_token_file: token\n", dir.path());
    let url = format!("http://127.0.0.1:{port}/api");
    c.get(&url).unwrap().send().await.unwrap();
    let head = next(&mut rx).await;
    assert_eq!(header(&head, "authorization"), Some("Bearer first-token"));
    // Rotated on disk: the next request carries the new token without a rebuild.
    std::fs::write(dir.path().join("token"), "second-token").unwrap();
    c.get(&url).unwrap().send().await.unwrap();
    let head = next(&mut rx).await;
    assert_eq!(header(&head, "authorization"), Some("Bearer second-token"));
    // A token file that disappears fails the request with the file's name, instead of sending none.
    std::fs::remove_file(dir.path().join("token")).unwrap();
    let e = c.get(&url).unwrap_err().to_string();
    assert!(e.contains("token") && e.contains("unable to read"), "{e}");
}
