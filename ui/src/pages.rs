//! The pages: one layout (navigation, a main area, the page's script) and each page's structure.
//! Everything a page shows of the system comes from its script, through the JSON APIs.

/// One page.
pub struct Page {
    pub path: &'static str,
    pub title: &'static str,
    /// The navigation entry it highlights.
    pub nav: &'static str,
    pub body: &'static str,
    pub script: &'static str,
}

const NAV: &[(&str, &str, &str)] = &[
    ("home", "/", "Overview"),
    ("explore", "/explore", "Explore"),
    ("alerts", "/alerts", "Alerts"),
    ("rules", "/rules", "Rules"),
    ("targets", "/targets", "Targets & probes"),
    ("runbooks", "/runbooks", "Runbooks"),
    ("recovery", "/recovery", "Recovery"),
];

pub const PAGES: &[Page] = &[
    Page {
        path: "/",
        title: "Overview",
        nav: "home",
        script: "home.js",
        body: r##"<h1>Overview</h1>
<section class="cards" id="health">
  <a class="card" href="/explore?q=sum(rate(vigil_storage_samples_appended_total%5B1m%5D))"><span class="label">Samples ingested</span><span class="value" id="ingest-rate">…</span><span class="unit">per second</span></a>
  <a class="card" href="/alerts"><span class="label">Firing alerts</span><span class="value" id="firing">…</span><span class="unit" id="pending"></span></a>
  <a class="card" href="/runbooks"><span class="label">Runbooks running</span><span class="value" id="running">…</span><span class="unit" id="pending-approval"></span></a>
  <a class="card" href="/targets"><span class="label">Failing probes</span><span class="value" id="failing-probes">…</span><span class="unit" id="probes-total"></span></a>
  <a class="card" href="/targets"><span class="label">Scrape targets down</span><span class="value" id="targets-down">…</span><span class="unit" id="targets-total"></span></a>
</section>
<section>
  <h2>Firing now</h2>
  <table class="list"><thead><tr><th>Alert</th><th>Labels</th><th>Since</th></tr></thead><tbody id="firing-list"><tr><td colspan="3" class="muted">Loading…</td></tr></tbody></table>
</section>
<section>
  <h2>Latest runbook executions</h2>
  <table class="list"><thead><tr><th>Runbook</th><th>Alert</th><th>Outcome</th><th>Started</th></tr></thead><tbody id="executions"><tr><td colspan="4" class="muted">Loading…</td></tr></tbody></table>
</section>"##,
    },
    Page {
        path: "/explore",
        title: "Explore",
        nav: "explore",
        script: "explore.js",
        body: r##"<h1>Explore</h1>
<form id="query-form" class="query" autocomplete="off">
  <div class="expr-wrap">
    <textarea id="expr" name="q" rows="2" spellcheck="false" placeholder="PromQL, e.g. rate(vigil_ingest_samples_total[1m]); LogQL, e.g. {job=&quot;nginx&quot;} |= &quot;error&quot;" aria-label="Query expression"></textarea>
    <ul id="suggest" class="suggest" role="listbox" hidden></ul>
  </div>
  <div class="controls">
    <label>Language <select id="lang" name="lang">
      <option value="promql" selected>PromQL</option><option value="logql">LogQL</option>
    </select></label>
    <label>Range <select id="range" name="range">
      <option>5m</option><option>15m</option><option selected>1h</option><option>3h</option><option>6h</option><option>12h</option><option>1d</option><option>2d</option><option>7d</option>
    </select></label>
    <label>End <input id="end" name="end" type="datetime-local" step="1"></label>
    <label>Step <input id="step" name="step" size="5" placeholder="auto"></label>
    <button type="submit" id="run">Run</button>
    <button type="button" id="live" hidden title="Stream new lines as they arrive (live tail)">Live</button>
    <a id="share" href="#" title="This query's address">Link</a>
  </div>
</form>
<div class="tabs" role="tablist">
  <button type="button" role="tab" id="tab-graph" class="active" aria-selected="true">Graph</button>
  <button type="button" role="tab" id="tab-table" aria-selected="false">Table</button>
</div>
<p id="query-error" class="error" hidden></p>
<p id="query-info" class="muted"></p>
<div id="graph" class="chart-box"></div>
<div id="table" hidden><table class="list"><thead><tr><th>Series</th><th>Value</th></tr></thead><tbody id="table-body"></tbody></table></div>
<div id="logs" hidden>
  <div id="volume" class="chart-box small"></div>
  <p id="live-info" class="muted" hidden></p>
  <table class="list logs"><thead><tr><th>Time</th><th>Labels</th><th>Line</th></tr></thead><tbody id="log-lines"></tbody></table>
</div>"##,
    },
    Page {
        path: "/alerts",
        title: "Alerts",
        nav: "alerts",
        script: "alerts.js",
        body: r##"<h1>Alerts</h1>
<p class="muted">Grouped as the router groups them. <label><input type="checkbox" id="show-silenced" checked> silenced</label> <label><input type="checkbox" id="show-inhibited" checked> inhibited</label></p>
<div id="groups"><p class="muted">Loading…</p></div>
<h2 id="silences-title">Silences</h2>
<div class="toolbar"><button type="button" id="new-silence">New silence</button> <label><input type="checkbox" id="show-expired"> expired</label></div>
<table class="list"><thead><tr><th>Matchers</th><th>State</th><th>Ends</th><th>Created by</th><th>Comment</th><th></th></tr></thead><tbody id="silences"></tbody></table>
<dialog id="silence-dialog">
  <form id="silence-form" method="dialog">
    <h2 id="silence-form-title">New silence</h2>
    <input type="hidden" id="silence-id">
    <fieldset><legend>Matchers</legend><div id="matchers"></div><button type="button" id="add-matcher">Add matcher</button></fieldset>
    <label>Duration <input id="silence-duration" value="2h" size="8"></label>
    <label>Created by <input id="silence-author" required></label>
    <label class="wide">Comment <input id="silence-comment" required></label>
    <p id="silence-error" class="error" hidden></p>
    <div class="toolbar"><button type="submit" id="silence-save" value="save">Save</button> <button type="button" id="silence-cancel">Cancel</button></div>
  </form>
</dialog>"##,
    },
    Page {
        path: "/rules",
        title: "Rules",
        nav: "rules",
        script: "status.js",
        body: r##"<h1>Rules</h1>
<div id="rules" data-view="rules"><p class="muted">Loading…</p></div>"##,
    },
    Page {
        path: "/targets",
        title: "Targets & probes",
        nav: "targets",
        script: "status.js",
        body: r##"<h1>Targets &amp; probes</h1>
<h2>Scrape targets</h2>
<table class="list" data-view="targets"><thead><tr><th>Job</th><th>Endpoint</th><th>Health</th><th>Last scrape</th><th>Duration</th><th>Error</th></tr></thead><tbody id="targets"><tr><td colspan="6" class="muted">Loading…</td></tr></tbody></table>
<h2>Probes</h2>
<table class="list"><thead><tr><th>Job</th><th>Target</th><th>Module</th><th>Health</th><th>Last probe</th><th>Latency</th><th>Error</th></tr></thead><tbody id="probes"><tr><td colspan="7" class="muted">Loading…</td></tr></tbody></table>"##,
    },
    Page {
        path: "/runbooks",
        title: "Runbooks",
        nav: "runbooks",
        script: "runbooks.js",
        body: r##"<h1>Runbooks</h1>
<h2>Catalog</h2>
<div id="catalog" class="catalog"><p class="muted">Loading…</p></div>
<h2>Executions</h2>
<div class="toolbar"><label>Outcome <select id="outcome-filter"><option value="">any</option><option>pending</option><option>running</option><option>verified</option><option>succeeded</option><option>failed</option><option>escalated</option><option>denied</option><option>timed_out</option></select></label></div>
<table class="list"><thead><tr><th>Execution</th><th>Runbook</th><th>Alert</th><th>Outcome</th><th>Created</th><th>Detect → act → recover</th><th></th></tr></thead><tbody id="executions"><tr><td colspan="7" class="muted">Loading…</td></tr></tbody></table>
<dialog id="run-dialog"><form id="run-form" method="dialog">
  <h2>Run <span id="run-name"></span></h2>
  <label class="wide">Parameters (JSON) <textarea id="run-params" rows="4">{}</textarea></label>
  <label class="wide">Target (for the lock) <input id="run-target"></label>
  <label><input type="checkbox" id="run-dry" checked> dry run</label>
  <p id="run-error" class="error" hidden></p>
  <div class="toolbar"><button type="submit" id="run-go">Run</button> <button type="button" id="run-cancel">Cancel</button></div>
</form></dialog>"##,
    },
    Page {
        path: "/recovery",
        title: "Recovery",
        nav: "recovery",
        script: "recovery.js",
        body: r##"<h1>Recovery <span id="scenario" class="muted"></span></h1>
<form id="recovery-form" class="controls">
  <label>Scenario <input id="scenario-input" name="scenario" placeholder="any"></label>
  <label>Last <select id="window" name="window"><option>5m</option><option selected>15m</option><option>1h</option><option>6h</option></select></label>
  <label><input type="checkbox" id="live" checked> live</label>
  <button type="submit">Show</button>
  <span id="live-state" class="badge"></span>
</form>
<section class="cards">
  <div class="card"><span class="label">Fault</span><span class="value" id="t-fault">–</span><span class="unit" id="t-fault-what"></span></div>
  <div class="card"><span class="label">Time to detect</span><span class="value" id="t-detect">–</span><span class="unit" id="t-detect-what"></span></div>
  <div class="card"><span class="label">Time to remediate</span><span class="value" id="t-remediate">–</span><span class="unit" id="t-remediate-what"></span></div>
  <div class="card"><span class="label">Time to recover</span><span class="value" id="t-recover">–</span><span class="unit" id="t-recover-what"></span></div>
</section>
<section><h2>Requests per second</h2><div id="c-rate" class="chart-box small"></div></section>
<section><h2>Error ratio</h2><div id="c-errors" class="chart-box small"></div></section>
<section><h2>Latency</h2><div id="c-latency" class="chart-box small"></div></section>
<section><h2>Probes</h2><div id="c-probes" class="chart-box small"></div></section>
<section><h2>Alerts</h2><div id="c-alerts" class="chart-box small"></div></section>
<section><h2>Timeline</h2><ol id="timeline" class="timeline"></ol></section>"##,
    },
];

/// An execution's page (its id is read from the address by the script).
pub const EXECUTION: Page = Page {
    path: "/runbooks/executions/{id}",
    title: "Execution",
    nav: "runbooks",
    script: "runbooks.js",
    body: r##"<h1>Execution <span id="execution-id" class="muted"></span></h1>
<div id="execution" data-view="execution"><p class="muted">Loading…</p></div>"##,
};

/// The whole page.
pub fn render(p: &Page) -> String {
    let nav: String = NAV
        .iter()
        .map(|(key, href, label)| {
            let current = if *key == p.nav {
                r#" class="active" aria-current="page""#
            } else {
                ""
            };
            format!(r#"<a href="{href}"{current}>{label}</a>"#)
        })
        .collect();
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · Vigil</title>
<link rel="icon" href="/ui/static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/ui/static/vigil.css">
</head>
<body data-page="{nav_key}">
<header class="top"><a class="brand" href="/">Vigil</a><nav>{nav}</nav></header>
<main>
{body}
</main>
<script src="/ui/static/vigil.js"></script>
<script src="/ui/static/chart.js"></script>
<script src="/ui/static/{script}"></script>
</body>
</html>
"#,
        title = p.title,
        nav_key = p.nav,
        body = p.body,
        script = p.script,
    )
}
