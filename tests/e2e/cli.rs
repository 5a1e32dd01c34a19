//! The command line: `vigil check config` and the defaults of `vigil serve`.

use std::process::Command;
use std::time::Duration;

use crate::harness::*;

fn check(yaml: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("vigil.yml");
    std::fs::write(&f, yaml).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["check", "config"])
        .arg(&f)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn check_config_names_the_line() {
    let (ok, out) = check(
        "global:\n  scrape_interval: 15s\nscrape_configs:\n  - job_name: node\n    static_configs:\n      - targets: ['localhost:9100']\n",
    );
    assert!(ok, "{out}");
    assert!(out.contains("SUCCESS"), "{out}");

    let (ok, out) = check(
        "scrape_configs:\n  - job_name: node\n    scrape_interval: 15s\n    metrics_pth: /m\n",
    );
    assert!(!ok);
    assert!(
        out.contains("line 4") && out.contains("metrics_pth"),
        "{out}"
    );

    let (ok, out) = check(
        "scrape_configs:\n  - job_name: a\n    relabel_configs:\n      - action: replace\n        regex: '('\n",
    );
    assert!(!ok);
    assert!(out.contains("line 5") || out.contains("line 4"), "{out}");

    // The alertmanager.yml a configuration names is checked too.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("am.yml"),
        "route:\n  receiver: nope\nreceivers: [{name: a}]\n",
    )
    .unwrap();
    let f = dir.path().join("vigil.yml");
    std::fs::write(&f, "alertmanager_config: am.yml\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["check", "config"])
        .arg(&f)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success() && text.contains("undefined receiver"),
        "{text}"
    );

    let (ok, out) = check("storage:\n  tsdb:\n    retention_size: lots\n");
    assert!(!ok);
    assert!(out.contains("line 3") && out.contains("lots"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_with_defaults_scrapes_itself_and_stops_cleanly() {
    // No config file: embedded defaults (the self-scrape job); only listen and data dir are overridden.
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigil"));
    cmd.current_dir(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"]);
    let mut p = Proc::spawn("vigil", &mut cmd, &dir.path().join("vigil.log"));
    let port = reported_port(&mut p, Duration::from_secs(60)).await;
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&mut p, &format!("{base}/-/ready"), Duration::from_secs(60)).await;
    let h = client()
        .get(format!("{base}/-/healthy"))
        .send()
        .await
        .unwrap();
    assert_eq!(h.status(), 200);
    // The default data directory is ./data.
    assert!(dir.path().join("data/wal").is_dir());
    let t = get_json(&format!("{base}/api/v1/targets")).await;
    let targets = t["data"]["activeTargets"].as_array().unwrap();
    assert_eq!(targets.len(), 1, "{t}");
    assert_eq!(targets[0]["labels"]["job"], "vigil");
    assert_eq!(targets[0]["scrapeInterval"], "15s");
    // The built-in rules for Vigil's own health are loaded.
    let r = get_json(&format!("{base}/api/v1/rules")).await;
    let g = &r["data"]["groups"][0];
    assert_eq!(g["name"], "vigil-self", "{r}");
    assert!(g["rules"].as_array().unwrap().len() >= 5);
    // Without --web.enable-lifecycle, reload and quit over HTTP are refused as Prometheus refuses them
    // (403), the server keeps running, and SIGHUP still reloads (with no file, it says there is nothing to
    // reload).
    for path in ["/-/reload", "/-/quit"] {
        let r = client().post(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 403, "{path}");
        assert_eq!(r.text().await.unwrap(), "Lifecycle API is not enabled.");
        let r = client().get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 405, "GET {path}");
    }
    assert!(p.exited().is_none(), "/-/quit stopped the server");
    let log = dir.path().join("vigil.log");
    assert!(
        !std::fs::read_to_string(&log)
            .unwrap()
            .contains("nothing to reload"),
        "an HTTP request reloaded"
    );
    p.signal("HUP");
    eventually(Duration::from_secs(20), "SIGHUP to reload", || {
        let log = log.clone();
        async move {
            std::fs::read_to_string(&log)
                .ok()?
                .contains("nothing to reload")
                .then_some(())
        }
    })
    .await;
    let h = client()
        .get(format!("{base}/-/healthy"))
        .send()
        .await
        .unwrap();
    assert_eq!(h.status(), 200);
    p.signal("TERM");
    let st = p.wait(Duration::from_secs(30));
    assert!(st.success(), "exit status {st}");
}
