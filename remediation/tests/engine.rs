//! An execution end to end on real parts: a WAT runbook restarts a declared process through its
//! binding's grant, the policy admits it, and verification reads the `ALERTS` series of a real
//! storage: cleared means `verified`, still firing means failed, a dry run acts on nothing, and an
//! alert that resolved before the action is not acted on.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use vigil_model::{Labels, Sample};
use vigil_remediation::capability::Registry;
use vigil_remediation::capability::process::ProcessCapabilities;
use vigil_remediation::engine::{AlertsSeries, Binding, Engine};
use vigil_remediation::execution::{ExecutionStore, Outcome};
use vigil_remediation::offline::Checked;
use vigil_remediation::policy::Policy;
use vigil_remediation::sandbox::{Sandbox, SandboxConfig};
use vigil_storage::{MetricsAppender, SeriesBatch, StorageConfig, StorageMetrics, Tsdb};

/// Calls process.restart {"name": "web"} and returns 0, or the negative status it got.
const RESTART: &str = r#"(module
  (import "vigil" "call" (func $call (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "process.restart")
  (data (i32.const 32) "{\"name\":\"web\"}")
  (func (export "vigil_runbook_v1") (result i32) (local $s i32)
    (local.set $s (call $call (i32.const 0) (i32.const 15) (i32.const 32) (i32.const 14)))
    (if (result i32) (i32.lt_s (local.get $s) (i32.const 0))
      (then (local.get $s)) (else (i32.const 0)))))"#;

fn alerts_labels(instance: &str) -> Labels {
    Labels::from_pairs([
        ("__name__", "ALERTS"),
        ("alertname", "WebDown"),
        ("alertstate", "firing"),
        ("instance", instance),
    ])
}

fn write(db: &Tsdb, instance: &str, v: f64) {
    db.append(&[SeriesBatch {
        labels: alerts_labels(instance),
        samples: vec![Sample {
            t: vigil_model::now_ms(),
            v,
        }],
    }])
    .unwrap();
}

fn alert(instance: &str) -> Value {
    json!({"labels": {"alertname": "WebDown", "instance": instance},
           "annotations": {}, "startsAt": "2026-12-04T10:00:00Z",
           "fingerprint": format!("fp-{instance}")})
}

struct Setup {
    engine: Engine,
    db: Arc<Tsdb>,
    marker: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let db = Tsdb::open(
        StorageConfig {
            data_dir: dir.path().join("data"),
            section: Default::default(),
        },
        Arc::new(StorageMetrics::default()),
    )
    .await
    .unwrap();
    let marker = dir.path().join("restarted");
    let mut registry = Registry::new();
    registry.register(Arc::new(
        ProcessCapabilities::new(
            serde_yaml_ng::from_str(&format!(
                "web: {{command: [touch, '{}']}}\n",
                marker.display()
            ))
            .unwrap(),
        )
        .unwrap(),
    ));
    let sandbox = Arc::new(Sandbox::new(SandboxConfig::default()).unwrap());
    let runbook = sandbox.load(RESTART.as_bytes()).unwrap();
    let manifest = vigil_remediation::manifest::Manifest::parse(
        "name: restart-web\nversion: 1.0.0\nabi: 1\ncapabilities: [process.restart]\n",
    )
    .unwrap();
    let annotate = vigil_remediation::manifest::Manifest::parse(
        "name: annotate\nversion: 1.0.0\nabi: 1\ncapabilities: [alert.annotate]\n",
    )
    .unwrap();
    let annotate_rb = sandbox
        .load(
            &std::fs::read(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/ok.wat"
            ))
            .unwrap(),
        )
        .unwrap();
    let runbooks = BTreeMap::from([
        ("restart-web".to_string(), Checked { manifest, runbook }),
        (
            "annotate".to_string(),
            Checked {
                manifest: annotate,
                runbook: annotate_rb,
            },
        ),
    ]);
    let engine = Engine {
        sandbox,
        registry,
        policy: Policy::new(serde_yaml_ng::from_str("cooldown: 0s\n").unwrap()),
        runbooks,
        store: Arc::new(ExecutionStore::open(Some(&dir.path().join("runbooks")), 100).unwrap()),
        alerts: Arc::new(AlertsSeries::new(db.clone(), Default::default())),
        escalator: None,
        verify_every: Duration::from_millis(100),
        metrics: Default::default(),
        pending: Default::default(),
        admins: Default::default(),
    };
    Setup {
        engine,
        db,
        marker,
        _dir: dir,
    }
}

fn binding(y: &str) -> Binding {
    serde_yaml_ng::from_str(&format!(
        "runbook: restart-web\ngrants: [{{capability: process.restart}}]\ntarget: web\n{y}"
    ))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fix_that_clears_the_alert_is_verified() {
    let s = setup().await;
    write(&s.db, "web-1", 1.0);
    // The "service" recovers once the restart ran: the rule engine ends the ALERTS series.
    let (db, marker) = (s.db.clone(), s.marker.clone());
    let recover = tokio::spawn(async move {
        while !marker.exists() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        write(&db, "web-1", vigil_model::stale_nan());
    });
    let e = s
        .engine
        .execute(
            "hook/restart-web",
            &binding("verify_within: 10s\n"),
            alert("web-1"),
        )
        .await;
    recover.await.unwrap();
    assert_eq!(e.outcome, Outcome::Verified, "{e:#?}");
    assert!(s.marker.exists());
    let t = &e.times;
    assert_eq!(
        t.detected,
        Some(vigil_model::parse_api_time("2026-12-04T10:00:00Z").unwrap())
    );
    assert!(
        t.started.is_some() && t.acted.is_some() && t.recovered.is_some(),
        "{t:?}"
    );
    assert!(t.acted.unwrap() <= t.recovered.unwrap());
    let calls: Vec<&Value> = e
        .steps
        .iter()
        .filter(|x| x.kind == "call")
        .map(|x| &x.detail)
        .collect();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["capability"], "process.restart");
    assert_eq!(calls[0]["status"], "ok");
    assert!(
        e.steps
            .iter()
            .any(|x| x.kind == "verify" && x.detail["cleared"] == true)
    );
    // The record is on disk, at its last version.
    let again = ExecutionStore::open(s.engine.store.path().unwrap().parent(), 10).unwrap();
    assert_eq!(again.get(&e.id).unwrap().outcome, Outcome::Verified);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fix_that_does_not_clear_the_alert_fails_verification() {
    let s = setup().await;
    write(&s.db, "web-2", 1.0);
    let e = s
        .engine
        .execute(
            "hook/restart-web",
            &binding("verify_within: 1s\n"),
            alert("web-2"),
        )
        .await;
    assert_eq!(e.outcome, Outcome::Failed, "{e:#?}");
    assert_eq!(
        e.reason.as_deref(),
        Some("the runbook succeeded but the alert still fires after 1s")
    );
    assert!(s.marker.exists(), "the action itself ran");
    assert_eq!(e.times.recovered, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_acts_on_nothing_and_a_resolved_alert_is_not_acted_on() {
    let s = setup().await;
    write(&s.db, "web-3", 1.0);
    let e = s
        .engine
        .execute(
            "hook/restart-web",
            &binding("dry_run: true\n"),
            alert("web-3"),
        )
        .await;
    assert_eq!(e.outcome, Outcome::Succeeded, "{e:#?}");
    assert!(!s.marker.exists(), "a dry run ran the command");
    assert_eq!(e.times.acted, None);
    // No ALERTS series for web-4: the alert resolved before the action.
    let e = s
        .engine
        .execute("hook/restart-web", &binding(""), alert("web-4"))
        .await;
    assert_eq!(e.outcome, Outcome::Failed, "{e:#?}");
    let call = &e.steps.iter().find(|x| x.kind == "call").unwrap().detail;
    assert_eq!(call["status"], "resolved");
    assert!(!s.marker.exists());
    // An execution whose binding requires an approval waits for it, recorded as pending.
    let e = s
        .engine
        .execute(
            "hook/restart-web",
            &binding("require_approval: true\n"),
            alert("web-3"),
        )
        .await;
    assert_eq!(e.outcome, Outcome::Pending);
    assert_eq!(s.engine.store.list().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notes_of_alert_annotate_are_kept_with_the_execution() {
    let s = setup().await;
    write(&s.db, "web-5", 1.0);
    let b: Binding = serde_yaml_ng::from_str(
        "runbook: annotate\ngrants: [{capability: alert.annotate}]\nverify_within: 300ms\n",
    )
    .unwrap();
    let e = s.engine.execute("hook/annotate", &b, alert("web-5")).await;
    assert_eq!(e.notes, vec!["restarted".to_string()], "{e:#?}");
    let call = &e.steps.iter().find(|x| x.kind == "call").unwrap().detail;
    assert_eq!(call["result"]["annotated"], true);
    // Without the grant the note is refused.
    let b: Binding = serde_yaml_ng::from_str("runbook: annotate\nverify_within: 300ms\n").unwrap();
    let e = s.engine.execute("hook/annotate", &b, alert("web-5")).await;
    assert!(e.notes.is_empty());
    assert_eq!(e.outcome, Outcome::Failed);
}
