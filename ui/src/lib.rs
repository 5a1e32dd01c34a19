//! The web UI, served on Vigil's one port behind the same web configuration (TLS, basic auth) as
//! every other route. Pages are rendered here (layout, navigation, forms, empty tables); small
//! hand-written scripts embedded in the binary fill them from the JSON APIs Vigil already serves to
//! Grafana, Prometheus and Alertmanager clients (so the UI shows exactly what those tools see), and
//! `/ui/events` streams what changes (server-sent events) to the pages that follow an incident live.
//!
//! This crate owns the pages, the assets and the event stream's framing; it never reads storage,
//! rules or runbooks itself: the binary hands it a [`Live`] source.

mod pages;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

/// What the event stream sends every second: the alerts now, the recent runbook executions, the
/// time. Implemented by the binary over the rule manager and the runbook engine.
pub trait Live: Send + Sync + 'static {
    fn snapshot(&self) -> serde_json::Value;
}

/// The assets, embedded: (name, content type, text).
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "vigil.css",
        "text/css; charset=utf-8",
        include_str!("../assets/vigil.css"),
    ),
    (
        "vigil.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/vigil.js"),
    ),
    (
        "chart.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/chart.js"),
    ),
    (
        "home.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/home.js"),
    ),
    (
        "explore.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/explore.js"),
    ),
    (
        "alerts.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/alerts.js"),
    ),
    (
        "status.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/status.js"),
    ),
    (
        "runbooks.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/runbooks.js"),
    ),
    (
        "recovery.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/recovery.js"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_str!("../assets/favicon.svg"),
    ),
];

/// The UI's routes: the pages, `/ui/static/<asset>`, `/ui/events`.
pub fn router(live: Arc<dyn Live>) -> Router {
    let mut r = Router::new();
    for p in pages::PAGES {
        r = r.route(p.path, get(move || async move { Html(pages::render(p)) }));
    }
    r.route(
        "/runbooks/executions/{id}",
        get(|| async { Html(pages::render(&pages::EXECUTION)) }),
    )
    .route("/ui/static/{name}", get(asset))
    .route(
        "/favicon.ico",
        get(|| asset(Path("favicon.svg".to_string()))),
    )
    .route(
        "/ui/events",
        get(move || {
            let live = live.clone();
            async move { events(live) }
        }),
    )
}

async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, ty, body)) => (
            [
                (header::CONTENT_TYPE, *ty),
                (header::CACHE_CONTROL, "no-cache"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            *body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset\n").into_response(),
    }
}

/// A `snapshot` event every second, and a keep-alive comment between.
fn events(live: Arc<dyn Live>) -> impl IntoResponse {
    let stream = futures::stream::unfold(
        (live, tokio::time::interval(Duration::from_secs(1))),
        |(live, mut tick)| async move {
            tick.tick().await;
            let data = live.snapshot().to_string();
            let ev = Event::default().event("snapshot").data(data);
            Some((Ok::<_, Infallible>(ev), (live, tick)))
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_names_only_assets_that_exist() {
        for p in pages::PAGES.iter().chain([&pages::EXECUTION]) {
            let html = pages::render(p);
            assert!(html.starts_with("<!doctype html>"), "{}", p.path);
            for part in html.split("/ui/static/").skip(1) {
                let name = &part[..part.find('"').unwrap()];
                assert!(
                    ASSETS.iter().any(|(n, _, _)| *n == name),
                    "{} links {name}",
                    p.path
                );
            }
        }
    }
}
