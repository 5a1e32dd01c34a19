//! The web UI in a real browser: headless Chromium (Debian's `chromium`) driven over WebDriver
//! (`chromedriver`) by fantoccini. Every page loads at 1280 px and at a phone's width with no
//! console error, and is photographed into `target/ui-screenshots/`; Explore draws a query and
//! completes names; a silence made in the UI silences the alert (checked through the v2 API); an
//! approval in the UI lets a pending runbook run; the Recovery view follows an incident without a
//! reload.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::harness::*;

/// chromedriver's legacy log endpoint: the browser's console, errors included.
#[derive(Debug)]
struct BrowserLog;

impl fantoccini::wd::WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.into()))
    }
}

/// A headless Chromium session, its chromedriver stopped when dropped.
pub struct Browser {
    pub c: Client,
    _driver: Proc,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// None (skipped outside CI) without chromium and chromedriver.
    pub async fn start() -> Option<Browser> {
        let driver = tool("chromedriver")?;
        let chromium = tool("chromium")?;
        let port = reserved_port();
        let profile = tempfile::tempdir().unwrap();
        let proc = Proc::spawn(
            "chromedriver",
            Command::new(driver).arg(format!("--port={port}")),
            &profile.path().join("chromedriver.log"),
        );
        eventually(
            Duration::from_secs(20),
            "chromedriver listening",
            || async move {
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .ok()
                    .map(|_| ())
            },
        )
        .await;
        let caps: serde_json::Map<String, Value> = serde_json::from_value(json!({
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,900", format!("--user-data-dir={}", profile.path().join("chrome").display())],
            },
            "goog:loggingPrefs": {"browser": "ALL"},
        }))
        .unwrap();
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let c = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a WebDriver session with chromium");
        Some(Browser {
            c,
            _driver: proc,
            _profile: profile,
        })
    }

    /// Console messages at SEVERE level since the last call.
    pub async fn console_errors(&self) -> Vec<String> {
        let log = self.c.issue_cmd(BrowserLog).await.unwrap_or(Value::Null);
        log.as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Saves a screenshot as `target/ui-screenshots/NAME.png`.
    pub async fn shot(&self, name: &str) {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/ui-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let png = self.c.screenshot().await.unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    /// Waits for an element matching `css`, answers it.
    pub async fn wait_for(&self, css: &str, limit: Duration) -> fantoccini::elements::Element {
        eventually(limit, &format!("an element {css}"), || async {
            self.c.find(Locator::Css(css)).await.ok()
        })
        .await
    }

    /// Waits until `js` (an expression) is true in the page.
    pub async fn until(&self, js: &str, limit: Duration) {
        eventually(limit, js, || async {
            let v = self
                .c
                .execute(&format!("return !!({js});"), vec![])
                .await
                .ok()?;
            (v == Value::Bool(true)).then_some(())
        })
        .await
    }

    pub async fn text(&self, css: &str) -> String {
        match self.c.find(Locator::Css(css)).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }
}

const RULES: &str = "groups:\n  - name: ui\n    interval: 1s\n    rules:\n      - record: ui:up:sum\n        expr: vector(1)\n      - alert: AlwaysFiring\n        expr: vector(1)\n        labels: {service: checkout, severity: page}\n        annotations: {summary: 'checkout is on fire'}\n";
const AM: &str = "route:\n  receiver: heal\n  group_by: [alertname, service]\n  group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: heal\n    runbook_configs:\n      - runbook: pretend-fix\n        params: {service: '{{ $labels.service }}'}\n        target: 'service:{{ $labels.service }}'\n        require_approval: true\n        verify_within: 1s\n";
const MANIFEST: &str = "name: pretend-fix\nversion: 1.0.0\ndescription: Pretends to fix a service.\nabi: 1\ncapabilities: [log]\nparams:\n  service: {type: string, required: true}\n";

/// Vigil with a firing alert routed to a runbook that needs approval, a recording rule, and a
/// probe job on its own /-/healthy.
async fn vigil() -> (Vigil, tempfile::TempDir) {
    crate::runbooks::with_runbook_and(
        AM,
        RULES,
        "pretend-fix",
        crate::runbooks::PRETEND,
        MANIFEST,
        "",
        None,
    )
    .await
}

/// Every page at 1280 px and at 390 px: loaded (its script filled it), no console error, a
/// screenshot each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_loads_without_console_errors() {
    let Some(b) = Browser::start().await else {
        return;
    };
    let (v, _dir) = vigil().await;
    // Something to show: a pending execution, rules evaluated.
    eventually(Duration::from_secs(30), "a pending execution", || async {
        let r = v
            .get_json("/api/v1/runbooks/executions?outcome=pending")
            .await;
        (!r["data"].as_array()?.is_empty()).then_some(())
    })
    .await;
    let pending = v.get_json("/api/v1/runbooks/executions").await["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let pages = [
        (
            "overview",
            "/".to_string(),
            "document.getElementById('firing').textContent === '1'",
        ),
        (
            "explore",
            "/explore?q=ALERTS&range=5m".to_string(),
            "document.querySelector('#graph svg path')",
        ),
        (
            "alerts",
            "/alerts".to_string(),
            "document.querySelector('.alert-row')",
        ),
        (
            "rules",
            "/rules".to_string(),
            "document.querySelector('#rules table')",
        ),
        (
            "targets",
            "/targets".to_string(),
            "!document.getElementById('targets').textContent.includes('Loading')",
        ),
        (
            "runbooks",
            "/runbooks".to_string(),
            "document.querySelector('[data-runbook=\"pretend-fix\"]') && document.querySelector('[data-execution]')",
        ),
        (
            "execution",
            format!("/runbooks/executions/{pending}"),
            "document.getElementById('outcome')",
        ),
        (
            "recovery",
            "/recovery".to_string(),
            "document.getElementById('live-state').textContent === 'live'",
        ),
    ];
    for (width, height, size) in [(1280, 900, "desktop"), (390, 844, "phone")] {
        b.c.set_window_size(width, height).await.unwrap();
        for (name, path, ready) in &pages {
            b.c.goto(&v.url(path)).await.unwrap();
            b.until(ready, Duration::from_secs(20)).await;
            // Nothing wider than the window at a phone's width.
            if size == "phone" {
                b.until(
                    "document.documentElement.scrollWidth <= window.innerWidth + 1",
                    Duration::from_secs(5),
                )
                .await;
            }
            b.shot(&format!("{name}-{size}")).await;
            let errors = b.console_errors().await;
            assert!(errors.is_empty(), "{name} at {size}: {errors:?}");
        }
    }
}

/// Explore: the graph draws a query's series with a legend, the table lists them, the address
/// carries the query, and typing completes a metric name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explore_draws_a_query_and_completes_names() {
    let Some(b) = Browser::start().await else {
        return;
    };
    let (v, _dir) = vigil().await;
    eventually(
        Duration::from_secs(30),
        "the recording rule's series",
        || async {
            (v.query("count_over_time(ui:up:sum[1m]) >= 10", now_secs())
                .await
                .as_array()?
                .len()
                == 1)
                .then_some(())
        },
    )
    .await;
    b.c.goto(&v.url("/explore?q=ALERTS&range=5m"))
        .await
        .unwrap();
    b.until(
        "document.querySelector('#graph svg path')",
        Duration::from_secs(20),
    )
    .await;
    let legend = b.text("#graph .chart-legend").await;
    assert!(legend.contains("alertname=\"AlwaysFiring\""), "{legend}");
    let d: Value = b
        .c
        .execute("return [...document.querySelectorAll('#graph svg path')].map(p => p.getAttribute('d')).sort((a, b) => b.length - a.length)[0]", vec![])
        .await
        .unwrap();
    // The firing series: a line through its samples (the pending one has a single point).
    assert!(d.as_str().unwrap().matches('L').count() > 3, "a line: {d}");
    b.c.find(Locator::Id("tab-table"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.until("document.querySelectorAll('#table-body tr').length === 1 && document.getElementById('table-body').textContent.includes('AlwaysFiring')", Duration::from_secs(10)).await;
    let url = b.c.current_url().await.unwrap();
    assert!(url.query().unwrap().contains("tab=table"), "{url}");
    // Completion: "ui:u" offers the recorded series' name.
    let expr = b.c.find(Locator::Id("expr")).await.unwrap();
    expr.clear().await.unwrap();
    expr.send_keys("ui:u").await.unwrap();
    b.until("!document.getElementById('suggest').hidden && document.getElementById('suggest').textContent.includes('ui:up:sum')", Duration::from_secs(10)).await;
    expr.send_keys("\t").await.unwrap();
    let value: Value =
        b.c.execute("return document.getElementById('expr').value", vec![])
            .await
            .unwrap();
    assert_eq!(value, "ui:up:sum");
    let errors = b.console_errors().await;
    assert!(errors.is_empty(), "{errors:?}");
}

/// A silence made from the alert in the UI: its matchers come prefilled from the alert's labels;
/// after saving, the v2 API shows the alert suppressed by it; expiring it in the UI ends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silence_created_in_the_ui_silences_the_alert() {
    let Some(b) = Browser::start().await else {
        return;
    };
    let (v, _dir) = vigil().await;
    b.c.goto(&v.url("/alerts")).await.unwrap();
    let button = b
        .wait_for(".alert-row .silence-btn", Duration::from_secs(30))
        .await;
    button.click().await.unwrap();
    b.until(
        "document.getElementById('silence-dialog').open",
        Duration::from_secs(5),
    )
    .await;
    let names: Value = b
        .c
        .execute("return [...document.querySelectorAll('#matchers .m-name')].map(e => e.value + '=' + e.parentElement.querySelector('.m-value').value)", vec![])
        .await
        .unwrap();
    assert_eq!(
        names,
        json!([
            "alertname=AlwaysFiring",
            "service=checkout",
            "severity=page"
        ])
    );
    b.c.find(Locator::Id("silence-author"))
        .await
        .unwrap()
        .send_keys("ui-test")
        .await
        .unwrap();
    let comment = b.c.find(Locator::Id("silence-comment")).await.unwrap();
    assert_eq!(
        comment.prop("value").await.unwrap().as_deref(),
        Some("Silenced from the UI: AlwaysFiring"),
        "the comment is prefilled"
    );
    comment.clear().await.unwrap();
    comment.send_keys("maintenance").await.unwrap();
    b.c.find(Locator::Id("silence-save"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let alert = eventually(Duration::from_secs(20), "the alert silenced", || async {
        let r = get_json(&v.url("/api/v2/alerts")).await;
        r.as_array()?
            .iter()
            .find(|a| {
                a["labels"]["alertname"] == "AlwaysFiring"
                    && a["status"]["silencedBy"]
                        .as_array()
                        .is_some_and(|s| !s.is_empty())
            })
            .cloned()
    })
    .await;
    assert_eq!(alert["status"]["state"], "suppressed");
    let id = alert["status"]["silencedBy"][0]
        .as_str()
        .unwrap()
        .to_string();
    let silence = get_json(&v.url(&format!("/api/v2/silence/{id}"))).await;
    assert_eq!(silence["createdBy"], "ui-test");
    assert_eq!(silence["comment"], "maintenance");
    // The page marks it silenced, and lists the silence; expiring it there ends it.
    b.until(
        "document.querySelector('.alert-row .badge.silenced')",
        Duration::from_secs(15),
    )
    .await;
    b.shot("alerts-silenced").await;
    let expire = b
        .wait_for(
            &format!("tr[data-silence=\"{id}\"] button.danger"),
            Duration::from_secs(10),
        )
        .await;
    expire.click().await.unwrap();
    b.c.accept_alert().await.unwrap();
    eventually(Duration::from_secs(15), "the silence expired", || async {
        let s = get_json(&v.url(&format!("/api/v2/silence/{id}"))).await;
        (s["status"]["state"] == "expired").then_some(())
    })
    .await;
    let errors = b.console_errors().await;
    assert!(errors.is_empty(), "{errors:?}");
}

/// An execution waiting for approval is approved in the UI: it leaves `pending` and runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_in_the_ui_lets_a_pending_runbook_run() {
    let Some(b) = Browser::start().await else {
        return;
    };
    let (v, _dir) = vigil().await;
    let id = eventually(Duration::from_secs(30), "a pending execution", || async {
        let r = v
            .get_json("/api/v1/runbooks/executions?outcome=pending")
            .await;
        r["data"][0]["id"].as_str().map(str::to_string)
    })
    .await;
    b.c.goto(&v.url("/runbooks")).await.unwrap();
    let approve = b
        .wait_for(
            &format!("tr[data-execution=\"{id}\"] button.approve"),
            Duration::from_secs(20),
        )
        .await;
    approve.click().await.unwrap();
    let e = eventually(
        Duration::from_secs(30),
        "the approved execution ran",
        || async {
            let e = v
                .get_json(&format!("/api/v1/runbooks/executions/{id}"))
                .await;
            (e["data"]["outcome"] != "pending" && e["data"]["outcome"] != "running")
                .then(|| e["data"].clone())
        },
    )
    .await;
    assert_eq!(e["approved_by"], "anonymous", "{e:#}");
    assert!(
        e["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["kind"] == "approval"),
        "{e:#}"
    );
    b.until(
        &format!(
            "document.querySelector('tr[data-execution=\"{id}\"]').dataset.outcome !== 'pending'"
        ),
        Duration::from_secs(15),
    )
    .await;
    let errors = b.console_errors().await;
    assert!(errors.is_empty(), "{errors:?}");
}

/// The Recovery view, opened before an incident, follows it without a reload: a load test runs
/// against a local server and injects a fault; the page shows the fault and the request rate as
/// they come in, and the page that shows them is the one loaded first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recovery_view_updates_live_during_an_incident() {
    let Some(b) = Browser::start().await else {
        return;
    };
    let (v, _dir) = vigil().await;
    let port = crate::loadtest::delay_server(Duration::from_millis(5)).await;
    b.c.goto(&v.url("/recovery?scenario=live&window=5m"))
        .await
        .unwrap();
    b.until(
        "document.getElementById('live-state').textContent === 'live'",
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(b.text("#t-fault").await, "–");
    b.c.execute("window.__loadedOnce = true", vec![])
        .await
        .unwrap();
    let scenario = format!(
        "name: live\nvigil: {{url: '{}'}}\ntargets: [{{name: s, url: 'http://127.0.0.1:{port}/'}}]\n\
         load: {{rate: 20, duration: 12s}}\nfaults: [{{at: 4s, kind: exec, command: ['true']}}]\n",
        v.url("")
    );
    let run =
        tokio::task::spawn_blocking(move || crate::loadtest::loadtest(&scenario, &["--quiet"]));
    b.until(
        "document.querySelector('#c-rate svg path[stroke]:not([stroke=\"currentColor\"])')",
        Duration::from_secs(30),
    )
    .await;
    b.until(
        "document.getElementById('t-fault').textContent !== '–'",
        Duration::from_secs(30),
    )
    .await;
    let loaded_once: Value =
        b.c.execute("return window.__loadedOnce === true", vec![])
            .await
            .unwrap();
    assert_eq!(loaded_once, true, "the page reloaded");
    assert_eq!(b.text("#t-fault-what").await, "exec");
    b.shot("recovery-live").await;
    let report = run.await.unwrap();
    assert_eq!(report["faults"][0]["kind"], "exec");
    let errors = b.console_errors().await;
    assert!(errors.is_empty(), "{errors:?}");
}

/// With a web configuration, the pages need its credentials like every other route.
#[tokio::test(flavor = "multi_thread")]
async fn the_pages_follow_the_web_configuration() {
    let hash = bcrypt::hash("pass", 4).unwrap();
    let web = format!("basic_auth_users:\n  admin: '{hash}'\n");
    let dir = tempfile::tempdir().unwrap();
    let web_file = dir.path().join("web.yml");
    std::fs::write(&web_file, web).unwrap();
    let v = Vigil::start_with_args(
        "scrape_configs: []\n",
        &[],
        &["--web.config.file", web_file.to_str().unwrap()],
    )
    .await;
    for path in ["/", "/explore", "/ui/static/vigil.js", "/ui/events"] {
        let r = client().get(v.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path}");
    }
    let r = client()
        .get(v.url("/alerts"))
        .basic_auth("admin", Some("pass"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("<h1>Alerts</h1>"));
}

/// Explore with LogQL: a log query shows its lines (newest first) under a volume histogram, a metric
/// query draws a graph, and Live streams a line pushed after it was switched on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explore_shows_logs_volume_and_live_tail() {
    let Some(b) = Browser::start().await else {
        return;
    };
    let v = Vigil::start("scrape_configs: []\n").await;
    let push = |lines: Vec<(i64, String)>| {
        let v = &v;
        async move {
            let values: Vec<Value> = lines
                .into_iter()
                .map(|(t, l)| json!([t.to_string(), l]))
                .collect();
            let r = client()
                .post(v.url("/loki/api/v1/push"))
                .header("Content-Type", "application/json")
                .body(
                    json!({"streams": [{"stream": {"app": "ui-shop"}, "values": values}]})
                        .to_string(),
                )
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 204);
        }
    };
    let now = vigil_model::now_ns();
    push(
        (0..30)
            .map(|i| {
                (
                    now - (30 - i) * 10_000_000_000,
                    format!("level=info msg=\"order {i}\""),
                )
            })
            .collect(),
    )
    .await;
    let q = form_urlencoded::Serializer::new(String::new())
        .append_pair("q", r#"{app="ui-shop"} |= "order""#)
        .append_pair("lang", "logql")
        .append_pair("range", "15m")
        .finish();
    b.c.goto(&v.url(&format!("/explore?{q}"))).await.unwrap();
    b.until(
        "document.querySelectorAll('#log-lines tr').length === 30",
        Duration::from_secs(20),
    )
    .await;
    let first = b.text("#log-lines tr:first-child td.line").await;
    assert_eq!(first, "level=info msg=\"order 29\"", "newest first");
    // The histogram: one line through every step of the range (steps without a line are 0).
    b.until(
        "document.querySelector('#volume svg path')",
        Duration::from_secs(10),
    )
    .await;
    let d: Value = b
        .c
        .execute("return [...document.querySelectorAll('#volume svg path')].map(p => p.getAttribute('d')).sort((a, b) => b.length - a.length)[0]", vec![])
        .await
        .unwrap();
    assert!(
        d.as_str().unwrap().matches('L').count() >= 50,
        "a line over the range: {d}"
    );
    let tabs_hidden: Value =
        b.c.execute(
            "return getComputedStyle(document.querySelector('.tabs')).display === 'none'",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(tabs_hidden, true);
    b.shot("explore-logs").await;

    // Live: a line pushed now appears on top without a reload.
    b.c.find(Locator::Id("live"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.until(
        "document.getElementById('live-info').textContent.includes('waiting')",
        Duration::from_secs(10),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    push(vec![(
        vigil_model::now_ns(),
        "level=error msg=\"order live\"".into(),
    )])
    .await;
    b.until(
        "document.querySelector('#log-lines tr:first-child td.line').textContent.includes('order live')",
        Duration::from_secs(15),
    )
    .await;
    let info = b.text("#live-info").await;
    assert_eq!(info, "Live: 1 new line");
    b.c.find(Locator::Id("live"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

    // A metric query draws a graph through the Loki API.
    let expr = b.c.find(Locator::Id("expr")).await.unwrap();
    expr.clear().await.unwrap();
    expr.send_keys(r#"sum(count_over_time({app="ui-shop"}[1m]))"#)
        .await
        .unwrap();
    b.c.find(Locator::Id("run"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.until(
        "!document.getElementById('graph').hidden && document.querySelector('#graph svg path')",
        Duration::from_secs(15),
    )
    .await;
    let errors = b.console_errors().await;
    assert!(errors.is_empty(), "{errors:?}");
}
