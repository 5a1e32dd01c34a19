//! Vigil and a real Prometheus 2.42 scrape the same targets (the exposition fixture server and a real
//! node_exporter); Vigil must store the same series and values.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::harness::*;

fn scrape_config(fx_port: u16, node_port: Option<u16>) -> String {
    let mut s = format!(
        r#"
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: fx-text
    metrics_path: /text
    static_configs: [{{targets: ['127.0.0.1:{fx_port}']}}]
  - job_name: fx-om
    metrics_path: /om
    static_configs: [{{targets: ['127.0.0.1:{fx_port}']}}]
"#
    );
    if let Some(p) = node_port {
        s.push_str(&format!(
            "  - job_name: node\n    static_configs: [{{targets: ['127.0.0.1:{p}'], labels: {{env: test}}}}]\n"
        ));
    }
    s
}

/// `labels without job/instance -> value` for every series of `job` that is not a report series.
async fn stored(base: &str, job: &str) -> BTreeMap<String, String> {
    let r = query(base, &format!("{{job=\"{job}\"}}"), now_secs()).await;
    r.as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            let n = e["metric"]["__name__"].as_str().unwrap_or("");
            n != "up" && !n.starts_with("scrape_")
        })
        .map(|e| {
            let mut m = e["metric"].as_object().unwrap().clone();
            m.remove("job");
            m.remove("instance");
            (
                Value::Object(m).to_string(),
                e["value"][1].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn expected(section: &str) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(fixtures_dir().join("expected-series.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v[section]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            // Re-serialise through a sorted map so key order matches the API's.
            let m: BTreeMap<String, String> = serde_json::from_value(e["labels"].clone()).unwrap();
            (
                serde_json::to_string(&m).unwrap(),
                e["value"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn canon(m: BTreeMap<String, String>) -> BTreeMap<String, String> {
    m.into_iter()
        .map(|(k, v)| {
            let l: BTreeMap<String, String> = serde_json::from_str(&k).unwrap();
            (serde_json::to_string(&l).unwrap(), v)
        })
        .collect()
}

/// Starts `serve-fixtures` on port 0 and reads the port it reports.
async fn start_fixtures(python: &std::path::Path, dir: &std::path::Path) -> (Proc, u16) {
    let log = dir.join("serve-fixtures.log");
    let p = Proc::spawn(
        "serve-fixtures",
        Command::new(python)
            .arg(fixtures_dir().join("serve-fixtures"))
            .arg("0"),
        &log,
    );
    let port = eventually(Duration::from_secs(30), "serve-fixtures to listen", || {
        let log = log.clone();
        async move {
            std::fs::read_to_string(&log)
                .ok()?
                .lines()
                .find_map(|l| l.strip_prefix("listening ")?.trim().parse().ok())
        }
    })
    .await;
    (p, port)
}

async fn wait_up(base: &str, job: &str) {
    let (base, job) = (base.to_string(), job.to_string());
    eventually(
        Duration::from_secs(30),
        &format!("{job} to be scraped at {base}"),
        || {
            let (base, job) = (base.clone(), job.clone());
            async move {
                let r = query(&base, &format!("up{{job=\"{job}\"}}"), now_secs()).await;
                (r.as_array().unwrap().len() == 1 && r[0]["value"][1] == "1").then_some(())
            }
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn fixtures_scraped_like_prometheus() {
    let Some(prom_bin) = tool("prometheus") else {
        return;
    };
    let Some(py) = tool("python3") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (_fx, fx_port) = start_fixtures(&py, tmp.path()).await;
    let cfg = scrape_config(fx_port, None);
    let vigil = Vigil::start(&cfg).await;
    let prom = Prometheus::start(&prom_bin, &cfg, &["--enable-feature=exemplar-storage"]).await;
    let vbase = format!("http://{}", vigil.addr());
    for job in ["fx-text", "fx-om"] {
        wait_up(&vbase, job).await;
        wait_up(&prom.base(), job).await;
    }
    for (job, section) in [("fx-text", "text"), ("fx-om", "om")] {
        let want = expected(section);
        let got = canon(stored(&vbase, job).await);
        let live = canon(stored(&prom.base(), job).await);
        assert_eq!(
            live, want,
            "the fixture file disagrees with the Prometheus running here for {job}"
        );
        assert_eq!(
            got, want,
            "Vigil stored different series or values than Prometheus for {job}"
        );
    }

    // Exemplars of the OpenMetrics page: same labels and values as Prometheus keeps.
    let ex = |base: String| async move {
        let now = now_secs();
        let v = get_json(&format!(
            "{base}/api/v1/query_exemplars?query={}&start={}&end={}",
            "%7Bjob%3D%22fx-om%22%7D",
            now - 60.0,
            now + 1.0
        ))
        .await;
        let mut out = BTreeSet::new();
        for s in v["data"].as_array().unwrap() {
            let mut labels = s["seriesLabels"].as_object().unwrap().clone();
            labels.remove("instance");
            for e in s["exemplars"].as_array().unwrap() {
                out.insert(format!(
                    "{} {} {}",
                    Value::Object(labels.clone()),
                    e["labels"],
                    e["value"]
                ));
            }
        }
        out
    };
    let want = ex(prom.base()).await;
    assert_eq!(want.len(), 3, "Prometheus exemplars: {want:?}");
    assert_eq!(ex(vbase.clone()).await, want);

    // Report series: same names and sample counts as Prometheus writes for each target.
    for job in ["fx-text", "fx-om"] {
        for m in [
            "scrape_samples_scraped",
            "scrape_samples_post_metric_relabeling",
            "up",
        ] {
            let q = format!("{m}{{job=\"{job}\"}}");
            let p = query(&prom.base(), &q, now_secs()).await;
            let v = query(&vbase, &q, now_secs()).await;
            assert_eq!(p[0]["value"][1], v[0]["value"][1], "{q}");
            assert_eq!(p[0]["metric"], v[0]["metric"], "{q}");
        }
    }
}

/// Metrics of node_exporter whose values do not change between two scrapes a second apart.
const STABLE: &[&str] = &[
    "node_boot_time_seconds",
    "node_memory_MemTotal_bytes",
    "node_uname_info",
    "node_exporter_build_info",
    "node_filesystem_size_bytes",
    "node_network_mtu_bytes",
    "node_os_info",
];

#[tokio::test(flavor = "multi_thread")]
async fn node_exporter_scraped_like_prometheus() {
    let Some(prom_bin) = tool("prometheus") else {
        return;
    };
    let Some(node) = tool("prometheus-node-exporter") else {
        return;
    };
    let Some(py) = tool("python3") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let mut node = Proc::spawn(
        "node_exporter",
        Command::new(node).arg("--web.listen-address=127.0.0.1:0"),
        &tmp.path().join("node_exporter.log"),
    );
    let node_port = crate::peers::port_of(&mut node, Duration::from_secs(30)).await;
    let _node = node;
    let (_fx, fx_port) = start_fixtures(&py, tmp.path()).await;
    let cfg = scrape_config(fx_port, Some(node_port));
    let vigil = Vigil::start(&cfg).await;
    let prom = Prometheus::start(&prom_bin, &cfg, &[]).await;
    let vbase = format!("http://{}", vigil.addr());
    wait_up(&vbase, "node").await;
    wait_up(&prom.base(), "node").await;
    // Both have scraped a few times now.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let names = |m: &BTreeMap<String, String>| -> BTreeSet<String> { m.keys().cloned().collect() };
    // The set of series is the same (node_exporter exposes a stable set between scrapes, apart from a
    // few scrape-duration series per collector which exist in both).
    let (v, p) = (
        stored(&vbase, "node").await,
        stored(&prom.base(), "node").await,
    );
    assert!(
        p.len() > 200,
        "Prometheus stored only {} node series",
        p.len()
    );
    let only_p: Vec<_> = names(&p).difference(&names(&v)).take(10).cloned().collect();
    let only_v: Vec<_> = names(&v).difference(&names(&p)).take(10).cloned().collect();
    assert!(
        only_p.is_empty() && only_v.is_empty(),
        "series only in Prometheus: {only_p:?}\nonly in Vigil: {only_v:?}"
    );
    let mut compared = 0;
    for (k, pv) in &p {
        let name: Value = serde_json::from_str(k).unwrap();
        if STABLE.contains(&name["__name__"].as_str().unwrap_or("")) {
            assert_eq!(Some(pv), v.get(k), "{k}");
            compared += 1;
        }
    }
    assert!(compared >= 5, "only {compared} stable series compared");
    // Every label value including the env label from static_configs.
    let q = "node_uname_info{env=\"test\"}";
    assert_eq!(
        sorted(&query(&prom.base(), q, now_secs()).await)[0]["metric"],
        sorted(&query(&vbase, q, now_secs()).await)[0]["metric"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn reload_applies_scrape_changes_and_marks_removed_targets_stale() {
    let Some(py) = tool("python3") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (_fx, fx_port) = start_fixtures(&py, tmp.path()).await;
    let mut vigil = Vigil::start(&scrape_config(fx_port, None)).await;
    let vbase = format!("http://{}", vigil.addr());
    wait_up(&vbase, "fx-text").await;
    wait_up(&vbase, "fx-om").await;

    // Drop the OpenMetrics job and reload over HTTP.
    let only_text = scrape_config(fx_port, None)
        .split("  - job_name: fx-om")
        .next()
        .unwrap()
        .to_string();
    std::fs::write(vigil.config_path(), &only_text).unwrap();
    let r = client().post(vigil.url("/-/reload")).send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    // The removed target's series end with staleness markers: an instant query no longer finds them.
    eventually(Duration::from_secs(20), "fx-om series to go stale", || {
        let vbase = vbase.clone();
        async move {
            let r = query(&vbase, "{job=\"fx-om\"}", now_secs()).await;
            r.as_array().unwrap().is_empty().then_some(())
        }
    })
    .await;
    let t = vigil.get_json("/api/v1/targets").await;
    let active = t["data"]["activeTargets"].as_array().unwrap();
    assert_eq!(active.len(), 1, "{t}");
    assert_eq!(active[0]["labels"]["job"], "fx-text");
    // The kept job still scrapes.
    wait_up(&vbase, "fx-text").await;
    let n = query(&vbase, "{job=\"fx-text\"}", now_secs())
        .await
        .as_array()
        .unwrap()
        .len();
    assert!(n > 29, "fx-text has {n} series");

    // A broken file on SIGHUP is refused; the running configuration stays.
    std::fs::write(
        vigil.config_path(),
        "scrape_configs:\n  - job_name: x\n    scrape_interval: never\n",
    )
    .unwrap();
    vigil.proc.as_ref().unwrap().signal("HUP");
    eventually(
        Duration::from_secs(10),
        "the reload failure to be logged",
        || async {
            vigil
                .log()
                .contains("configuration reload failed")
                .then_some(())
        },
    )
    .await;
    assert!(vigil.log().contains("line 3"), "{}", vigil.log());
    let t = vigil.get_json("/api/v1/targets").await;
    assert_eq!(t["data"]["activeTargets"].as_array().unwrap().len(), 1);
    assert!(
        vigil.proc.as_mut().unwrap().exited().is_none(),
        "Vigil exited on a bad reload"
    );
}
