//! `http.request` through a binding's grant: only under the granted URL prefixes (compared on the
//! normalised URL), with the shared client, answering status, headers and body to the runbook.

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use serde_json::{Value, json};
use vigil_remediation::capability::http::HttpCapability;
use vigil_remediation::capability::{Grant, Registry};
use vigil_remediation::grants::GrantedDispatcher;
use vigil_remediation::sandbox::{CallError, Dispatcher};

async fn server() -> String {
    let app = Router::new()
        .route(
            "/ops/scale",
            post(|body: String| async move {
                let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                axum::Json(json!({"scaled_to": v["replicas"]}))
            }),
        )
        .route(
            "/ops/fail",
            get(|| async { (axum::http::StatusCode::SERVICE_UNAVAILABLE, "busy") }),
        )
        .route("/secret", get(|| async { "secret" }));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    format!("http://{addr}")
}

fn dispatcher(grants: &str) -> GrantedDispatcher {
    vigil_http::install_crypto_provider();
    let client = vigil_http::HttpClient::plain(&Default::default()).unwrap();
    let mut reg = Registry::new();
    reg.register(Arc::new(HttpCapability::new(client)));
    let grants: Vec<Grant> = serde_yaml_ng::from_str(grants).unwrap();
    GrantedDispatcher::new(reg, grants, false, None)
}

#[tokio::test]
async fn requests_go_only_under_the_granted_prefixes() {
    let base = server().await;
    let d = dispatcher(&format!(
        "- capability: http.request\n  scope: {{url_prefixes: ['{base}/ops/']}}\n"
    ));
    let r = d
        .call(
            "http.request",
            json!({"method": "POST", "url": format!("{base}/ops/scale"), "json": {"replicas": 3}}),
        )
        .await
        .unwrap();
    assert_eq!(r["status"], 200, "{r}");
    assert_eq!(r["json"], json!({"scaled_to": 3}));
    // A failing answer is a result the runbook reads, not a failed call.
    let r = d
        .call("http.request", json!({"url": format!("{base}/ops/fail")}))
        .await
        .unwrap();
    assert_eq!(r["status"], 503);
    assert_eq!(r["body"], "busy");
    // Outside the prefix, directly or by a dot-segment, is denied before anything is sent.
    for url in [format!("{base}/secret"), format!("{base}/ops/../secret")] {
        let e = d
            .call("http.request", json!({"url": url}))
            .await
            .unwrap_err();
        assert!(
            matches!(&e, CallError::Denied(m) if m.contains("outside the grant's URL prefixes")),
            "{url}: {e:?}"
        );
    }
    let e = d
        .call(
            "http.request",
            json!({"url": format!("{base}/ops/scale"), "headers": {"Authorization": "Bearer x"}}),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, CallError::BadRequest(_)), "{e:?}");
    let e = d
        .call("http.request", json!({"url": "file:///etc/passwd"}))
        .await
        .unwrap_err();
    assert!(matches!(e, CallError::BadRequest(_)), "{e:?}");
    // A grant without URL prefixes allows no URL at all.
    let open = dispatcher("- capability: http.request\n");
    let e = open
        .call("http.request", json!({"url": format!("{base}/ops/scale")}))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, CallError::Denied(m) if m.contains("without scope.url_prefixes")),
        "{e:?}"
    );
}
