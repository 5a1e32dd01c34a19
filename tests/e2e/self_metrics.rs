//! Vigil's metrics about its own process and allocator, read from the real binary after an ingest.

use crate::harness::{Vigil, client};
use crate::push::{series, write_v1};

fn value(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing from /metrics"))
}

#[tokio::test(flavor = "multi_thread")]
async fn process_and_allocator_metrics_follow_the_head() {
    let v = Vigil::start("builtin_rules: false\nscrape_configs: []\n").await;
    let before = v.metrics_text().await;
    let allocated_before = value(&before, "vigil_allocator_allocated_bytes");

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let names: Vec<String> = (0..5000).map(|i| format!("host-{i:05}")).collect();
    for batch in names.chunks(1000) {
        let s: Vec<_> = batch
            .iter()
            .map(|h| {
                series(
                    &[
                        ("__name__", "self_metrics_test"),
                        ("instance", h),
                        ("job", "t"),
                    ],
                    vec![(now - 30_000, 1.0), (now - 15_000, 2.0), (now, 3.0)],
                )
            })
            .collect();
        let (status, body) = write_v1(&v.url("/api/v1/write"), &s).await;
        assert_eq!(status, 204, "{body}");
    }
    let r = v
        .query("count(self_metrics_test)", now as f64 / 1000.0)
        .await;
    assert_eq!(r[0]["value"][1], "5000", "{r}");

    let text = v.metrics_text().await;
    let rss = value(&text, "process_resident_memory_bytes");
    let vsize = value(&text, "process_virtual_memory_bytes");
    assert!(rss > 1e6 && vsize >= rss, "rss {rss} vsize {vsize}");
    assert!(value(&text, "process_open_fds") >= 3.0);
    let max_fds = value(&text, "process_max_fds");
    assert!(max_fds == -1.0 || max_fds >= value(&text, "process_open_fds"));
    assert!(value(&text, "process_cpu_seconds_total") > 0.0);
    assert!(value(&text, "vigil_process_threads") >= 2.0);
    let start = value(&text, "process_start_time_seconds");
    let now_s = now as f64 / 1000.0;
    assert!(
        start <= now_s + 1.0 && start > now_s - 600.0,
        "start {start} now {now_s}"
    );
    // Counters and gauges in the OpenMetrics exposition, with their types.
    assert!(
        text.contains("# TYPE process_cpu_seconds counter"),
        "{text}"
    );
    assert!(text.contains("# TYPE vigil_allocator_resident_bytes gauge"));

    let allocated = value(&text, "vigil_allocator_allocated_bytes");
    let active = value(&text, "vigil_allocator_active_bytes");
    let resident = value(&text, "vigil_allocator_resident_bytes");
    let mapped = value(&text, "vigil_allocator_mapped_bytes");
    assert!(value(&text, "vigil_allocator_metadata_bytes") > 0.0);
    assert!(value(&text, "vigil_allocator_retained_bytes") >= 0.0);
    // 5,000 new series with their labels, postings and chunks are live heap.
    assert!(
        allocated > allocated_before + 5000.0 * 100.0,
        "{allocated_before} -> {allocated}"
    );
    assert!(
        allocated <= active && active <= mapped && active <= resident,
        "{text}"
    );
    assert!(
        resident as f64 <= rss * 1.05,
        "allocator resident {resident} > process rss {rss}"
    );

    // The statistics page lists the default arenas and the head's own.
    let page = client()
        .get(v.url("/debug/allocator"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(page.contains("Allocated:"), "{page}");
    let arenas = page.matches("\narenas[").count();
    assert!(
        arenas >= 3,
        "expected two default arenas and the head's, got {arenas}"
    );
    // The head's arena (the one created last) holds the series: their MemSeries, labels, chunks.
    let head = page.rsplit("\narenas[").next().unwrap();
    let small: f64 = head
        .lines()
        .find(|l| l.starts_with("small:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no small: line in the last arena: {head}"));
    assert!(
        small > 5000.0 * 128.0,
        "head arena holds {small} bytes of small allocations"
    );
}
