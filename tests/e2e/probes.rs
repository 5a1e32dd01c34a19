//! `/probe` against a real blackbox_exporter 0.23 (Debian's `prometheus-blackbox-exporter`): the same
//! blackbox.yml and targets given to both, and their answers compared series by series. Targets are
//! real local servers: HTTP answering 200, 500, redirects and a hang past the timeout; HTTPS with a
//! private CA and with an expired certificate; a closed TCP port and a TCP banner; DNS queries
//! against dnsmasq.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

use crate::harness::*;
use crate::peers::*;

/// The series of one `/probe` answer: name with labels -> value.
fn parse(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// Series whose value depends on timing, not on what was probed: compared by presence only.
fn timing(name: &str) -> bool {
    name.starts_with("probe_duration_seconds")
        || name.starts_with("probe_http_duration_seconds")
        || name.starts_with("probe_dns_lookup_time_seconds")
        || name.starts_with("probe_dns_duration_seconds")
        || name.starts_with("probe_icmp_duration_seconds")
}

async fn app() -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { ([("x-test", "yes")], "hello from the probe target\n") }),
        )
        .route(
            "/500",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "broken\n") }),
        )
        .route(
            "/redirect",
            get(|| async { (StatusCode::FOUND, [("location", "/")], "") }),
        )
        .route(
            "/loop",
            get(|| async { (StatusCode::FOUND, [("location", "/loop")], "") }),
        )
        .route(
            "/hang",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "late"
            }),
        )
        .route(
            "/headers",
            get(|h: HeaderMap| async move {
                format!(
                    "user-agent={}",
                    h.get("user-agent")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                )
                .into_response()
            }),
        )
}

/// Serves `app` on 127.0.0.1:0, over TLS when `web` (a web configuration file) is given.
pub async fn serve(web: Option<&std::path::Path>, stop: &CancellationToken) -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let guard = web.map(|p| vigil_http::WebGuard::load(p).unwrap());
    let app = app().await;
    let stop = stop.clone();
    tokio::spawn(async move {
        let _ = vigil_http::serve(l, app, guard, vigil_http::ServeOptions::default(), stop).await;
    });
    port
}

/// A certificate for 127.0.0.1 signed by `ca`'s key material, valid only in the past.
fn expired_web_config(dir: &std::path::Path) -> std::path::PathBuf {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "Expired test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    leaf.not_before = rcgen::date_time_ymd(2020, 1, 1);
    leaf.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    std::fs::write(dir.join("expired-ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(dir.join("expired.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("expired-key.pem"), key.serialize_pem()).unwrap();
    let p = dir.join("expired-web.yml");
    std::fs::write(
        &p,
        format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\n",
            dir.join("expired.pem").display(),
            dir.join("expired-key.pem").display()
        ),
    )
    .unwrap();
    p
}

/// A TCP server that greets like sshd and then waits.
async fn banner_server() -> u16 {
    use tokio::io::AsyncWriteExt;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let _ = s.write_all(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n").await;
                tokio::time::sleep(Duration::from_secs(5)).await;
            });
        }
    });
    port
}

struct Peers {
    blackbox_port: u16,
    _blackbox: Proc,
    _dnsmasq: Proc,
    vigil: Vigil,
    _dir: TempDir,
}

async fn ask(
    base: &str,
    module: &str,
    target: &str,
    timeout_header: Option<&str>,
) -> (u16, String) {
    let q: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("module", module)
        .append_pair("target", target)
        .finish();
    let mut r = client().get(format!("{base}/probe?{q}"));
    if let Some(t) = timeout_header {
        r = r.header("X-Prometheus-Scrape-Timeout-Seconds", t);
    }
    let resp = r.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn probe_answers_agree_with_blackbox_exporter() {
    let (Some(bb), Some(dnsmasq)) = (tool("prometheus-blackbox-exporter"), tool("dnsmasq")) else {
        return;
    };
    let stop = CancellationToken::new();
    let _stop_on_drop = stop.clone().drop_guard();
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let http = serve(None, &stop).await;
    let https = serve(Some(&ca.web_config("")), &stop).await;
    let expired = serve(Some(&expired_web_config(dir.path())), &stop).await;
    let banner = banner_server().await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dns_port = reserved_port();
    let mut dns_cmd = Command::new(&dnsmasq);
    dns_cmd.args([
        "--keep-in-foreground",
        "--no-resolv",
        "--no-hosts",
        "--no-poll",
        "--log-queries",
        "--log-facility=-",
        "--user=root",
        "--bind-interfaces",
        "--listen-address=127.0.0.1",
        &format!("--port={dns_port}"),
        &format!("--pid-file={}", dir.path().join("dnsmasq.pid").display()),
        "--address=/probe.test/127.0.0.9",
        "--txt-record=probe.test,hello probe",
        "--mx-host=probe.test,mail.probe.test,10",
        // Names under .invalid answer NXDOMAIN; others (no upstream) REFUSED.
        "--address=/invalid/",
    ]);
    let dnsmasq_proc = Proc::spawn("dnsmasq", &mut dns_cmd, &dir.path().join("dnsmasq.log"));
    let ca_file = ca.ca().display().to_string();
    let blackbox_yml = format!(
        r#"modules:
  http_2xx:
    prober: http
  http_no_follow:
    prober: http
    http:
      follow_redirects: false
  http_302_ok:
    prober: http
    http:
      follow_redirects: false
      valid_status_codes: [302]
  http_body_ok:
    prober: http
    http:
      fail_if_body_not_matches_regexp: ["hello from"]
  http_body_bad:
    prober: http
    http:
      fail_if_body_matches_regexp: ["probe target"]
  http_header:
    prober: http
    http:
      fail_if_header_not_matches:
        - header: X-Test
          regexp: "^yes$"
      fail_if_header_matches:
        - header: X-Missing
          regexp: ".*"
          allow_missing: true
  http_ssl_ca:
    prober: http
    http:
      fail_if_not_ssl: true
      tls_config:
        ca_file: {ca_file}
  http_not_ssl:
    prober: http
    http:
      fail_if_ssl: true
      tls_config:
        ca_file: {ca_file}
  http_insecure:
    prober: http
    http:
      tls_config:
        insecure_skip_verify: true
  http_post:
    prober: http
    http:
      method: POST
      body: "{{}}"
  tcp_connect:
    prober: tcp
  icmp4:
    prober: icmp
    icmp:
      preferred_ip_protocol: ip4
  ssh_banner:
    prober: tcp
    tcp:
      query_response:
        - expect: "^SSH-2.0-"
        - send: "SSH-2.0-blackbox-ssh-check"
  ftp_banner:
    prober: tcp
    tcp:
      query_response:
        - expect: "^220 "
  dns_a:
    prober: dns
    dns:
      preferred_ip_protocol: ip4
      query_name: probe.test
      query_type: A
      validate_answer_rrs:
        fail_if_not_matches_regexp: ["probe\\.test\\.\t[0-9]+\tIN\tA\t127\\.0\\.0\\.9"]
  dns_a_wrong:
    prober: dns
    dns:
      preferred_ip_protocol: ip4
      query_name: probe.test
      query_type: A
      validate_answer_rrs:
        fail_if_matches_regexp: [".*127\\.0\\.0\\.9"]
  dns_txt_tcp:
    prober: dns
    dns:
      preferred_ip_protocol: ip4
      transport_protocol: tcp
      query_name: probe.test
      query_type: TXT
      validate_answer_rrs:
        fail_if_none_matches_regexp: ["hello probe"]
  dns_mx:
    prober: dns
    dns:
      preferred_ip_protocol: ip4
      query_name: probe.test
      query_type: MX
  dns_nxdomain:
    prober: dns
    dns:
      preferred_ip_protocol: ip4
      query_name: nothing.invalid
      query_type: A
  dns_nxdomain_ok:
    prober: dns
    dns:
      preferred_ip_protocol: ip4
      query_name: nothing.invalid
      query_type: A
      valid_rcodes: [NXDOMAIN]
  dns_refused:
    prober: dns
    dns:
      preferred_ip_protocol: ip4
      query_name: elsewhere.example
      query_type: A
"#
    );
    std::fs::write(dir.path().join("blackbox.yml"), &blackbox_yml).unwrap();
    let mut cmd = Command::new(&bb);
    cmd.arg(format!(
        "--config.file={}",
        dir.path().join("blackbox.yml").display()
    ))
    .arg("--web.listen-address=127.0.0.1:0")
    .arg("--log.level=debug");
    let mut blackbox = Proc::spawn("blackbox_exporter", &mut cmd, &dir.path().join("bb.log"));
    let blackbox_port = port_of(&mut blackbox, Duration::from_secs(30)).await;
    let vigil = Vigil::start_with_files(
        "blackbox_config: blackbox.yml\n",
        &[("blackbox.yml", blackbox_yml.as_str())],
    )
    .await;
    let p = Peers {
        blackbox_port,
        _blackbox: blackbox,
        _dnsmasq: dnsmasq_proc,
        vigil,
        _dir: dir,
    };
    let bb_base = format!("http://127.0.0.1:{}", p.blackbox_port);
    let vigil_base = p.vigil.url("");
    // dnsmasq answers once it is up.
    eventually(Duration::from_secs(20), "dnsmasq answering", || {
        let b = bb_base.clone();
        async move {
            let (_, t) = ask(&b, "dns_a", &format!("127.0.0.1:{dns_port}"), None).await;
            (parse(&t).get("probe_dns_query_succeeded") == Some(&1.0)).then_some(())
        }
    })
    .await;

    let h = |path: &str| format!("http://127.0.0.1:{http}{path}");
    let s = |path: &str| format!("https://127.0.0.1:{https}{path}");
    let dns = format!("127.0.0.1:{dns_port}");
    // (module, target, X-Prometheus-Scrape-Timeout-Seconds, expected probe_success)
    let cases: Vec<(&str, String, Option<&str>, f64)> = vec![
        ("http_2xx", h("/"), None, 1.0),
        ("http_2xx", h("/500"), None, 0.0),
        ("http_2xx", h("/redirect"), None, 1.0),
        ("http_2xx", h("/loop"), None, 0.0),
        ("http_no_follow", h("/redirect"), None, 0.0),
        ("http_302_ok", h("/redirect"), None, 1.0),
        ("http_2xx", h("/hang"), Some("2"), 0.0),
        ("http_2xx", format!("127.0.0.1:{closed}"), None, 0.0),
        ("http_body_ok", h("/"), None, 1.0),
        ("http_body_bad", h("/"), None, 0.0),
        ("http_body_bad", h("/500"), None, 0.0),
        ("http_header", h("/"), None, 1.0),
        ("http_header", h("/redirect"), None, 1.0),
        ("http_post", h("/"), None, 0.0),
        ("http_ssl_ca", s("/"), None, 1.0),
        ("http_ssl_ca", h("/"), None, 0.0),
        ("http_not_ssl", s("/"), None, 0.0),
        (
            "http_ssl_ca",
            format!("https://127.0.0.1:{expired}/"),
            None,
            0.0,
        ),
        (
            "http_2xx",
            format!("https://127.0.0.1:{expired}/"),
            None,
            0.0,
        ),
        (
            "http_insecure",
            format!("https://127.0.0.1:{expired}/"),
            None,
            1.0,
        ),
        ("tcp_connect", format!("127.0.0.1:{http}"), None, 1.0),
        ("tcp_connect", format!("127.0.0.1:{closed}"), None, 0.0),
        ("tcp_connect", "127.0.0.1".to_string(), None, 0.0),
        ("ssh_banner", format!("127.0.0.1:{banner}"), None, 1.0),
        ("icmp4", "127.0.0.1".to_string(), None, 1.0),
        ("ftp_banner", format!("127.0.0.1:{banner}"), Some("2"), 0.0),
        ("dns_a", dns.clone(), None, 1.0),
        ("dns_a_wrong", dns.clone(), None, 0.0),
        ("dns_txt_tcp", dns.clone(), None, 1.0),
        ("dns_mx", dns.clone(), None, 1.0),
        ("dns_nxdomain", dns.clone(), None, 0.0),
        ("dns_nxdomain_ok", dns.clone(), None, 1.0),
        ("dns_refused", dns.clone(), None, 0.0),
        ("dns_a", format!("127.0.0.1:{closed}"), Some("2"), 0.0),
    ];
    let mut failures = Vec::new();
    for (module, target, timeout, want) in &cases {
        let ((bs, bt), (vs, vt)) = tokio::join!(
            ask(&bb_base, module, target, *timeout),
            ask(&vigil_base, module, target, *timeout)
        );
        let (b, v) = (parse(&bt), parse(&vt));
        let case = format!("{module} {target}");
        if bs != vs {
            failures.push(format!("{case}: HTTP status blackbox {bs}, Vigil {vs}"));
        }
        if b.get("probe_success") != Some(want) {
            failures.push(format!(
                "{case}: blackbox_exporter says probe_success {:?}, the test expects {want}",
                b.get("probe_success")
            ));
        }
        let names_b: Vec<&String> = b.keys().collect();
        let names_v: Vec<&String> = v.keys().collect();
        if names_b != names_v {
            failures.push(format!(
                "{case}: series differ\n  blackbox: {names_b:?}\n  vigil:    {names_v:?}"
            ));
            continue;
        }
        for (k, bv) in &b {
            let vv = v[k];
            let same = if timing(k) {
                true
            } else if k.starts_with("probe_ssl_earliest_cert_expiry")
                || k.starts_with("probe_ssl_last_chain_expiry")
            {
                (bv - vv).abs() < 1.0
            } else {
                bv == &vv || (bv.is_nan() && vv.is_nan())
            };
            if !same {
                failures.push(format!("{case}: {k} blackbox {bv}, Vigil {vv}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases disagree:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );

    // The HTTP errors of the handler itself.
    for (q, code) in [("module=nope&target=x", 400), ("module=http_2xx", 400)] {
        let b = client()
            .get(format!("{bb_base}/probe?{q}"))
            .send()
            .await
            .unwrap();
        let v = client()
            .get(format!("{vigil_base}/probe?{q}"))
            .send()
            .await
            .unwrap();
        assert_eq!(b.status().as_u16(), code, "{q}");
        assert_eq!(v.status().as_u16(), code, "{q}");
        assert_eq!(b.text().await.unwrap(), v.text().await.unwrap(), "{q}");
    }
    let dbg = client()
        .get(format!(
            "{vigil_base}/probe?module=http_2xx&target={}&debug=true",
            h("/500")
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for part in [
        "Logs for the probe:\n",
        "\n\n\nMetrics that would have been returned:\n",
        "probe_http_status_code 500",
        "\n\n\nModule configuration:\nprober: http",
        "msg=\"Invalid HTTP response status code, wanted 2xx\"",
    ] {
        assert!(dbg.contains(part), "debug output lacks {part:?}:\n{dbg}");
    }
}

/// A probe job's results are ordinary series (`probe_*` with `job` and the target as `instance`,
/// plus `up`), and 20 hung targets among 200 probed every second do not delay the others: every
/// healthy target still has a sample each second. `/api/v1/probes` shows each target's last result.
#[tokio::test(flavor = "multi_thread")]
async fn probe_jobs_store_series_and_hung_targets_cost_only_their_timeout() {
    let stop = CancellationToken::new();
    let _stop_on_drop = stop.clone().drop_guard();
    let http = serve(None, &stop).await;
    let healthy: Vec<String> = (0..180)
        .map(|i| format!("'http://127.0.0.1:{http}/?t={i}'"))
        .collect();
    let hung: Vec<String> = (0..20)
        .map(|i| format!("'http://127.0.0.1:{http}/hang?t={i}'"))
        .collect();
    let config = format!(
        "probe_configs:\n  - job_name: healthy\n    module: http_2xx\n    interval: 1s\n    static_configs:\n      - targets: [{}]\n        labels: {{team: web}}\n  - job_name: hung\n    module: http_2xx\n    interval: 1s\n    timeout: 1s\n    static_configs:\n      - targets: [{}]\n",
        healthy.join(", "),
        hung.join(", ")
    );
    let v = Vigil::start(&config).await;
    // Let 12 intervals pass, then look at the last 10 s.
    tokio::time::sleep(Duration::from_secs(13)).await;
    let t = now_secs() - 1.0;
    let counts = v
        .query("count_over_time(probe_success{job=\"healthy\"}[10s])", t)
        .await;
    let counts = counts.as_array().unwrap();
    assert_eq!(
        counts.len(),
        180,
        "one series per healthy target: {counts:?}"
    );
    let short: Vec<String> = counts
        .iter()
        .filter(|s| s["value"][1].as_str().unwrap().parse::<f64>().unwrap() < 9.0)
        .map(|s| format!("{} {}", s["metric"]["instance"], s["value"][1]))
        .collect();
    assert!(
        short.is_empty(),
        "healthy targets with fewer than 9 probes in 10 s: {short:?}"
    );
    let ok = v
        .query("min_over_time(probe_success{job=\"healthy\"}[10s])", t)
        .await;
    assert!(
        ok.as_array().unwrap().iter().all(|s| s["value"][1] == "1"),
        "every healthy probe succeeded: {ok:?}"
    );
    let hung_now = v.query("probe_success{job=\"hung\"}", t).await;
    let hung_now = hung_now.as_array().unwrap();
    assert_eq!(hung_now.len(), 20);
    assert!(hung_now.iter().all(|s| s["value"][1] == "0"));
    let dur = v
        .query(
            "max(max_over_time(probe_duration_seconds{job=\"hung\"}[10s]))",
            t,
        )
        .await;
    let d: f64 = dur[0]["value"][1].as_str().unwrap().parse().unwrap();
    assert!(
        (0.9..2.0).contains(&d),
        "a hung probe lasts its 1 s timeout: {d}"
    );
    // The series carry the job, the target as instance and the static labels; `up` is 1 when the
    // probe ran, as when Prometheus scrapes blackbox_exporter.
    let one = format!("http://127.0.0.1:{http}/?t=7");
    let s = v
        .query(
            &format!("probe_http_status_code{{job=\"healthy\",instance=\"{one}\"}}"),
            t,
        )
        .await;
    assert_eq!(s[0]["value"][1], "200", "{s:?}");
    assert_eq!(s[0]["metric"]["team"], "web");
    let up = v
        .query(
            &format!("up{{job=\"hung\",instance=\"http://127.0.0.1:{http}/hang?t=3\"}}"),
            t,
        )
        .await;
    assert_eq!(up[0]["value"][1], "1", "{up:?}");
    let api = v.get_json("/api/v1/probes").await;
    let probes = api["data"]["probes"].as_array().unwrap();
    assert_eq!(probes.len(), 200);
    let h = probes
        .iter()
        .find(|p| p["job"] == "hung")
        .expect("a hung target is listed");
    assert_eq!(h["success"], false);
    assert!(
        h["lastError"].as_str().unwrap().contains("deadline")
            || h["lastError"].as_str().unwrap().contains("timed out"),
        "{h}"
    );
    let m = v.metrics_text().await;
    assert!(m.contains("vigil_probe_runs_total{job=\"healthy\"}"), "{m}");
    assert!(
        m.contains("vigil_probe_failures_total{job=\"hung\"}"),
        "{m}"
    );

    // Dropping the hung job on reload drops its targets from /api/v1/probes.
    let healthy_only = config[..config.find("  - job_name: hung").unwrap()].to_string();
    std::fs::write(v.config_path(), healthy_only).unwrap();
    let r = client().post(v.url("/-/reload")).send().await.unwrap();
    assert!(r.status().is_success(), "reload: {}", r.status());
    eventually(
        Duration::from_secs(20),
        "the hung job's targets forgotten",
        || async {
            let api = v.get_json("/api/v1/probes").await;
            let probes = api["data"]["probes"].as_array().unwrap().clone();
            (probes.len() == 180 && probes.iter().all(|p| p["job"] == "healthy")).then_some(())
        },
    )
    .await;
}

/// The `postgres` module on a real primary with a streaming replica: roles, replicas and lag while
/// both run; down when the primary is killed; the replica's WAL receiver gone, then primary on a
/// new timeline once promoted.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_module_follows_a_failover() {
    let Some(mut pg) = crate::pg::PgPair::start(&[]).await else {
        return;
    };
    let blackbox = "modules:\n  pg:\n    prober: postgres\n    timeout: 3s\n    postgres:\n      user: postgres\n      dbname: postgres\n";
    let v = Vigil::start_with_files(
        "blackbox_config: blackbox.yml\n",
        &[("blackbox.yml", blackbox)],
    )
    .await;
    let probe = |target: String| probe_series(&v, "pg", target);
    let (p, r) = (pg.primary.target(), pg.replica.target());
    let m = probe_until(&v, "pg", &p, 30, "the replica streaming", |m| {
        m.get("vigil_probe_pg_connected_replicas") == Some(&1.0)
    })
    .await;
    assert_eq!(m["probe_success"], 1.0);
    assert_eq!(m["vigil_probe_pg_is_primary"], 1.0);
    assert_eq!(m["vigil_probe_pg_in_recovery"], 0.0);
    assert_eq!(m["vigil_probe_pg_timeline"], 1.0);
    let primary_lsn = m["vigil_probe_pg_wal_lsn_bytes"];
    assert!(primary_lsn > 0.0, "{m:?}");
    let lag = m
        .iter()
        .find(|(k, _)| k.starts_with("vigil_probe_pg_replica_lag_bytes{"))
        .expect("per-replica lag");
    assert!(
        lag.0.contains("application_name=\"replica1\"") && lag.0.contains("state=\"streaming\""),
        "{lag:?}"
    );
    let m = probe(r.clone()).await;
    assert_eq!(m["probe_success"], 1.0, "{m:?}");
    assert_eq!(m["vigil_probe_pg_in_recovery"], 1.0);
    assert_eq!(m["vigil_probe_pg_wal_receiver_up"], 1.0);
    assert!(m["vigil_probe_pg_replication_lag_bytes"] >= 0.0);
    // The replica has received what the primary had written (nothing is written meanwhile).
    assert!(m["vigil_probe_pg_wal_lsn_bytes"] > 0.0, "{m:?}");
    assert!(
        m["vigil_probe_pg_wal_lsn_bytes"] <= primary_lsn + 1e6,
        "{m:?}"
    );

    pg.kill_primary();
    let m = probe_until(&v, "pg", &p, 20, "the primary reported down", |m| {
        m.get("probe_success") == Some(&0.0)
    })
    .await;
    assert_eq!(m["vigil_probe_pg_up"], 0.0);
    assert!(
        !m.contains_key("vigil_probe_pg_is_primary"),
        "no role for a node that is down: {m:?}"
    );
    probe_until(&v, "pg", &r, 30, "the replica's WAL receiver down", |m| {
        m.get("vigil_probe_pg_wal_receiver_up") == Some(&0.0)
    })
    .await;

    pg.promote_replica();
    let m = probe_until(
        &v,
        "pg",
        &r,
        30,
        "the promoted replica reported primary",
        |m| m.get("vigil_probe_pg_is_primary") == Some(&1.0),
    )
    .await;
    assert_eq!(m["probe_success"], 1.0);
    assert_eq!(m["vigil_probe_pg_in_recovery"], 0.0);
    assert_eq!(m["vigil_probe_pg_connected_replicas"], 0.0);
    // The timeline moves to 2 once the promotion's checkpoint is written.
    probe_until(&v, "pg", &r, 30, "timeline 2 after promotion", |m| {
        m.get("vigil_probe_pg_timeline") == Some(&2.0)
    })
    .await;
}

/// The series of Vigil's `/probe` answer for `module` and `target`.
async fn probe_series(v: &Vigil, module: &str, target: String) -> BTreeMap<String, f64> {
    let url = v.url(&format!("/probe?module={module}&target={target}"));
    parse(
        &client()
            .get(url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
}

/// Probes until `done` holds for the answer (at most `secs`), and answers it.
async fn probe_until(
    v: &Vigil,
    module: &str,
    target: &str,
    secs: u64,
    what: &str,
    done: impl Fn(&BTreeMap<String, f64>) -> bool,
) -> BTreeMap<String, f64> {
    let done = &done;
    eventually(Duration::from_secs(secs), what, || async move {
        let m = probe_series(v, module, target.to_string()).await;
        done(&m).then_some(m)
    })
    .await
}

/// Removes the test's containers, even when the test fails.
struct Containers(Vec<String>);

impl Drop for Containers {
    fn drop(&mut self) {
        for c in &self.0 {
            let _ = Command::new("docker").args(["rm", "-f", c]).output();
        }
    }
}

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A local image holding Debian's static busybox (nothing can be pulled here), built once by
/// tests/fixtures/docker/busybox-image.
pub fn busybox_image() -> Option<&'static str> {
    let busybox = tool("busybox")?;
    let script = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/docker/busybox-image");
    let out = Command::new(&script).arg(&busybox).output().unwrap();
    assert!(
        out.status.success(),
        "{}: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Some("vigil-test-busybox:1")
}

/// The `docker` module on real containers: running, exited with its code, healthy and unhealthy by
/// their healthchecks, restarts counted when the daemon restarts a killed container, stopped; and a
/// label-selected group.
#[tokio::test(flavor = "multi_thread")]
async fn docker_module_reports_container_state() {
    if tool("docker").is_none() {
        return;
    }
    let Some(image) = busybox_image() else { return };
    let tag = format!("probe-{}", std::process::id());
    let (a, b) = (format!("vigil-{tag}-web"), format!("vigil-{tag}-job"));
    let (ok, sick) = (format!("vigil-{tag}-ok"), format!("vigil-{tag}-sick"));
    let _cleanup = Containers(vec![a.clone(), b.clone(), ok.clone(), sick.clone()]);
    let label = format!("vigil-test={tag}");
    docker(&[
        "run",
        "-d",
        "--name",
        &a,
        "--label",
        &label,
        "--restart",
        "on-failure",
        image,
        "/bin/busybox",
        "sh",
        "-c",
        "sleep 3600",
    ]);
    docker(&[
        "run",
        "-d",
        "--name",
        &b,
        "--label",
        &label,
        image,
        "/bin/busybox",
        "sh",
        "-c",
        "exit 3",
    ]);
    for (name, check) in [(&ok, "/bin/busybox true"), (&sick, "/bin/busybox false")] {
        docker(&[
            "run",
            "-d",
            "--name",
            name,
            "--health-cmd",
            check,
            "--health-interval",
            "1s",
            "--health-retries",
            "1",
            image,
            "/bin/busybox",
            "sh",
            "-c",
            "sleep 3600",
        ]);
    }
    let blackbox = format!(
        "modules:\n  ctr:\n    prober: docker\n    docker: {{}}\n  group:\n    prober: docker\n    docker:\n      label_selector: ['{label}']\n"
    );
    let v = Vigil::start_with_files(
        "blackbox_config: blackbox.yml\n",
        &[("blackbox.yml", blackbox.as_str())],
    )
    .await;
    let probe = |module: &'static str, target: &str| probe_series(&v, module, target.to_string());
    let key = |name: &str, c: &str| format!("{name}{{container=\"{c}\"}}");
    let m = probe("ctr", &a).await;
    assert_eq!(m["probe_success"], 1.0, "{m:?}");
    assert_eq!(m[&key("vigil_probe_container_running", &a)], 1.0);
    assert_eq!(m[&key("vigil_probe_container_restart_count", &a)], 0.0);
    assert_eq!(
        m[&format!("vigil_probe_container_state{{container=\"{a}\",state=\"running\"}}")],
        1.0
    );
    let exited = format!("vigil_probe_container_state{{container=\"{b}\",state=\"exited\"}}");
    let m = probe_until(&v, "ctr", &b, 20, "the job container exited", |m| {
        m.get(&exited) == Some(&1.0)
    })
    .await;
    assert_eq!(m["probe_success"], 0.0);
    assert_eq!(m[&key("vigil_probe_container_exit_code", &b)], 3.0);
    let m = probe("group", "any").await;
    assert_eq!(m["vigil_probe_containers"], 2.0, "{m:?}");
    assert_eq!(m["probe_success"], 0.0, "one of the group exited");
    let m = probe("ctr", "vigil-no-such-container").await;
    assert_eq!(m["probe_success"], 0.0);
    assert_eq!(m["vigil_probe_containers"], 0.0);

    // Healthchecks: the passing one is healthy and succeeds, the failing one is unhealthy and fails
    // although it runs.
    let healthy = key("vigil_probe_container_healthy", &ok);
    let m = probe_until(&v, "ctr", &ok, 30, "the healthcheck passing", |m| {
        m.get(&healthy) == Some(&1.0)
    })
    .await;
    assert_eq!(m["probe_success"], 1.0, "{m:?}");
    let unhealthy =
        format!("vigil_probe_container_health_status{{container=\"{sick}\",status=\"unhealthy\"}}");
    let m = probe_until(&v, "ctr", &sick, 30, "the healthcheck failing", |m| {
        m.get(&unhealthy) == Some(&1.0)
    })
    .await;
    assert_eq!(m["probe_success"], 0.0, "{m:?}");
    assert_eq!(m[&key("vigil_probe_container_running", &sick)], 1.0);
    assert_eq!(m[&key("vigil_probe_container_healthy", &sick)], 0.0);

    // Kill the process inside: the daemon restarts it (restart policy), and the count shows it.
    let pid = docker(&["inspect", "-f", "{{.State.Pid}}", &a]);
    assert!(
        Command::new("kill")
            .args(["-9", &pid])
            .status()
            .unwrap()
            .success()
    );
    let restarts = key("vigil_probe_container_restart_count", &a);
    let m = probe_until(&v, "ctr", &a, 30, "the restart counted", |m| {
        m.get(&restarts) == Some(&1.0) && m.get("probe_success") == Some(&1.0)
    })
    .await;
    assert_eq!(m[&key("vigil_probe_container_running", &a)], 1.0);

    docker(&["stop", "-t", "0", &a]);
    let m = probe("ctr", &a).await;
    assert_eq!(m["probe_success"], 0.0, "{m:?}");
    assert_eq!(m[&key("vigil_probe_container_running", &a)], 0.0);
    assert_eq!(m[&key("vigil_probe_container_exit_code", &a)], 137.0);
}

/// The `grpc` prober against a real gRPC health service (grpcio), plaintext and TLS with a private
/// CA, compared with blackbox_exporter 0.23 on the same modules and targets.
#[tokio::test(flavor = "multi_thread")]
async fn grpc_probes_agree_with_blackbox_exporter() {
    let (Some(bb), Some(python)) = (tool("prometheus-blackbox-exporter"), tool("python3")) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/grpc_health_server.py");
    let mut cmd = Command::new(&python);
    cmd.arg(&script).arg(ca.cert()).arg(ca.key());
    let server = Proc::spawn("grpc_health_server", &mut cmd, &dir.path().join("grpc.log"));
    let ports = eventually(Duration::from_secs(30), "the gRPC server's ports", || {
        let log = server.log.clone();
        async move {
            let t = std::fs::read_to_string(&log).ok()?;
            let mut it = t
                .lines()
                .next()?
                .split_whitespace()
                .map(|p| p.parse::<u16>().ok());
            Some((it.next()??, it.next()??))
        }
    })
    .await;
    let (plain, tls) = ports;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let ca_file = ca.ca().display().to_string();
    let blackbox_yml = format!(
        r#"modules:
  grpc_plain:
    prober: grpc
    grpc:
      preferred_ip_protocol: ip4
  grpc_shop:
    prober: grpc
    grpc:
      service: shop
      preferred_ip_protocol: ip4
  grpc_billing:
    prober: grpc
    grpc:
      service: billing
      preferred_ip_protocol: ip4
  grpc_unknown:
    prober: grpc
    grpc:
      service: nothing-here
      preferred_ip_protocol: ip4
  grpc_tls:
    prober: grpc
    grpc:
      tls: true
      preferred_ip_protocol: ip4
      tls_config:
        ca_file: {ca_file}
        server_name: localhost
"#
    );
    std::fs::write(dir.path().join("blackbox.yml"), &blackbox_yml).unwrap();
    let mut cmd = Command::new(&bb);
    cmd.arg(format!(
        "--config.file={}",
        dir.path().join("blackbox.yml").display()
    ))
    .arg("--web.listen-address=127.0.0.1:0");
    let mut blackbox = Proc::spawn("blackbox_exporter", &mut cmd, &dir.path().join("bb.log"));
    let bb_port = port_of(&mut blackbox, Duration::from_secs(30)).await;
    let v = Vigil::start_with_files(
        "blackbox_config: blackbox.yml\n",
        &[("blackbox.yml", blackbox_yml.as_str())],
    )
    .await;
    let bb_base = format!("http://127.0.0.1:{bb_port}");
    let t = |p: u16| format!("127.0.0.1:{p}");
    let cases = [
        ("grpc_plain", t(plain), 1.0),
        ("grpc_shop", t(plain), 1.0),
        ("grpc_billing", t(plain), 0.0),
        ("grpc_unknown", t(plain), 0.0),
        ("grpc_plain", t(closed), 0.0),
        ("grpc_tls", t(tls), 1.0),
    ];
    let mut failures = Vec::new();
    let vigil_base = v.url("");
    for (module, target, want) in &cases {
        let ((_, bt), (_, vt)) = tokio::join!(
            ask(&bb_base, module, target, Some("3")),
            ask(&vigil_base, module, target, Some("3"))
        );
        let (b, vv) = (parse(&bt), parse(&vt));
        let case = format!("{module} {target}");
        if b.get("probe_success") != Some(want) {
            failures.push(format!(
                "{case}: blackbox_exporter says {:?}, the test expects {want}",
                b.get("probe_success")
            ));
        }
        let (nb, nv): (Vec<&String>, Vec<&String>) = (b.keys().collect(), vv.keys().collect());
        if nb != nv {
            failures.push(format!(
                "{case}: series differ\n  blackbox: {nb:?}\n  vigil:    {nv:?}"
            ));
            continue;
        }
        for (k, x) in &b {
            let y = vv[k];
            let same = timing(k)
                || k.starts_with("probe_grpc_duration_seconds")
                || (k.starts_with("probe_ssl_earliest_cert_expiry") && (x - y).abs() < 1.0)
                || *x == y;
            if !same {
                failures.push(format!("{case}: {k} blackbox {x}, Vigil {y}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
