//! The report as one self-contained HTML page: inline CSS and SVG, a few lines of inline script
//! for filtering and sorting the device table, nothing loaded from the network. Semantic HTML
//! (landmarks, tables with headers, figures with captions), charts with text alternatives, and a
//! print style so it reads as a PDF.

use super::{FleetReport, Report, TABLE_LIMIT};
use std::fmt::Write;

/// What the page is of: one ledger, or a run directory of many tenants.
#[derive(Debug, Clone, Copy)]
pub enum Page<'a> {
    One(&'a Report),
    Fleet(&'a FleetReport),
}

pub(super) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
:root { --fg:#1b1f24; --muted:#57606a; --line:#d0d7de; --ok:#1a7f37; --bad:#cf222e; --warn:#9a6700; --info:#0969da; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); margin: 0 auto; max-width: 1100px; padding: 24px; }
h1 { font-size: 1.6em; margin: 0 0 4px; } h2 { font-size: 1.2em; margin: 28px 0 8px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 8px 0; }
dl.meta dt { color: var(--muted); } dl.meta dd { margin: 0; overflow-wrap: anywhere; }
ul.tiles { display: flex; flex-wrap: wrap; gap: 10px; list-style: none; padding: 0; margin: 8px 0; }
ul.tiles li { border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; min-width: 120px; }
ul.tiles .n { display: block; font-size: 1.7em; font-weight: 600; }
ul.tiles .rotated .n, ul.tiles .done .n { color: var(--ok); } ul.tiles .failed .n { color: var(--bad); }
ul.tiles .pending .n, ul.tiles .in_doubt .n { color: var(--warn); }
table { border-collapse: collapse; width: 100%; margin: 8px 0; font-size: 0.92em; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; cursor: pointer; } td.num, th.num { text-align: right; }
figure { margin: 8px 0; } figcaption { color: var(--muted); font-size: 0.9em; }
svg { width: 100%; height: auto; display: block; }
.muted { color: var(--muted); } code { font-size: 0.9em; }
input[type=search] { padding: 6px 8px; width: 320px; max-width: 100%; border: 1px solid var(--line); border-radius: 6px; }
@media print { body { max-width: none; padding: 0; } input, .noprint { display: none; } th { cursor: auto; } h2 { break-after: avoid; } figure, tr { break-inside: avoid; } }
"#;

const SCRIPT: &str = r#"
(function () {
  var q = document.getElementById('filter');
  var table = document.getElementById('devices');
  if (q && table) {
    q.addEventListener('input', function () {
      var want = q.value.toLowerCase();
      var rows = table.tBodies[0].rows, shown = 0;
      for (var i = 0; i < rows.length; i++) {
        var hit = rows[i].textContent.toLowerCase().indexOf(want) !== -1;
        rows[i].hidden = !hit; if (hit) shown++;
      }
      document.getElementById('shown').textContent = shown;
    });
  }
  document.querySelectorAll('table.sortable th').forEach(function (th, col) {
    th.addEventListener('click', function () {
      var body = th.closest('table').tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      var asc = th.getAttribute('aria-sort') !== 'ascending';
      rows.sort(function (a, b) {
        var x = a.cells[col].textContent, y = b.cells[col].textContent;
        var nx = parseFloat(x), ny = parseFloat(y);
        var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
        return asc ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
      th.parentNode.querySelectorAll('th').forEach(function (h) { h.removeAttribute('aria-sort'); });
      th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
    });
  });
  document.querySelectorAll('figure svg').forEach(function (svg) {
    var r = svg.getBoundingClientRect();
    svg.setAttribute('data-rendered-size', Math.round(r.width) + 'x' + Math.round(r.height));
  });
})();
"#;

/// The whole page.
pub fn render(page: Page<'_>, version: &str) -> String {
    let mut h = String::new();
    let title = match page {
        Page::One(r) => format!("{} rotation, tenant {}", r.header.action, r.header.tenant),
        Page::Fleet(f) => format!("Rotation across {} tenants", f.tenants.len()),
    };
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<meta name=\"generator\" content=\"intune-rotate {}\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<header>\n<h1>{}</h1>\n",
        esc(version),
        esc(&title),
        esc(&title)
    );
    match page {
        Page::One(r) => {
            meta(&mut h, r, version);
            h.push_str("</header>\n<main>\n");
            body(&mut h, r, true, "");
        }
        Page::Fleet(f) => {
            let _ = write!(
                h,
                "<dl class=\"meta\"><dt>Run directory</dt><dd><code>{}</code></dd><dt>Tool</dt><dd>intune-rotate {}</dd></dl>\n</header>\n<main>\n",
                esc(&f.dir.display().to_string()),
                esc(version)
            );
            fleet(&mut h, f);
        }
    }
    let _ = write!(
        h,
        "</main>\n<footer class=\"muted\"><p>Made by intune-rotate {} from the ledger; it loads nothing from the network.</p></footer>\n<script>{SCRIPT}</script>\n</body>\n</html>\n",
        esc(version)
    );
    h
}

fn meta(h: &mut String, r: &Report, version: &str) {
    let who = r
        .header
        .signed_in_as
        .clone()
        .or_else(|| r.header.client_id.clone().map(|c| format!("app {c}")))
        .unwrap_or_else(|| "not recorded".into());
    let rows = [
        (
            "Tenant",
            match &r.tenant_name {
                Some(n) => format!("{n} ({})", r.header.tenant),
                None => r.header.tenant.clone(),
            },
        ),
        (
            "Action",
            format!("{} ({})", r.header.action, r.header.action.graph_name()),
        ),
        ("Source", r.header.source.clone()),
        ("Signed in as", who),
        ("Started", r.started.clone().unwrap_or_default()),
        ("Finished", r.finished.clone().unwrap_or_default()),
        ("Pace", format!("{} per app", r.header.rate)),
        ("Tool", format!("intune-rotate {version}")),
        (
            "Ledger",
            format!("{} ({} rows)", r.ledger.display(), r.rows),
        ),
    ];
    h.push_str("<dl class=\"meta\">\n");
    for (k, v) in rows {
        let _ = writeln!(h, "<dt>{k}</dt><dd>{}</dd>", esc(&v));
    }
    h.push_str("</dl>\n");
}

fn tiles(h: &mut String, label: &str, items: &[(String, u64)]) {
    let _ = writeln!(h, "<ul class=\"tiles\" aria-label=\"{}\">", esc(label));
    for (k, n) in items {
        let _ = writeln!(
            h,
            "<li class=\"{k}\" data-tile=\"{k}\" data-count=\"{n}\"><span class=\"n\">{n}</span>{}</li>",
            esc(&k.replace('_', " "))
        );
    }
    h.push_str("</ul>\n");
}

/// A report's sections; `p` prefixes their ids, unique per tenant on a run directory's page.
fn body(h: &mut String, r: &Report, with_devices: bool, p: &str) {
    let _ = writeln!(
        h,
        "<section aria-labelledby=\"{p}outcomes\"><h2 id=\"{p}outcomes\">Outcomes</h2>"
    );
    let order = ["rotated", "failed", "skipped", "pending", "in_doubt"];
    let items: Vec<(String, u64)> = order
        .iter()
        .map(|k| (k.to_string(), r.states.get(*k).copied().unwrap_or(0)))
        .collect();
    tiles(h, "device outcomes", &items);
    if !r.verified.is_empty() {
        h.push_str("<h3>Verified on the devices</h3>\n");
        let v: Vec<(String, u64)> = r
            .verified
            .iter()
            .map(|(k, v)| (format!("verified-{k}"), *v))
            .collect();
        tiles(h, "verified states", &v);
    } else {
        h.push_str("<p class=\"muted\">Not verified yet: `intune-rotate verify` records what each device reports.</p>\n");
    }
    if !r.skip_reasons.is_empty() {
        h.push_str("<h3>Skipped, by reason</h3>\n<table><thead><tr><th>reason</th><th class=\"num\">devices</th></tr></thead><tbody>\n");
        for (reason, n) in &r.skip_reasons {
            let _ = writeln!(
                h,
                "<tr data-skip=\"{}\"><td>{}</td><td class=\"num\">{n}</td></tr>",
                esc(reason),
                esc(reason)
            );
        }
        h.push_str("</tbody></table>\n");
    }
    h.push_str("</section>\n");
    views(h, r, p);
    timeline(h, r, p);
    latency(h, r, p);
    if !r.resumes.is_empty() {
        let _ = writeln!(
            h,
            "<section aria-labelledby=\"{p}resumes\"><h2 id=\"{p}resumes\">Interruptions and resumes</h2>"
        );
        h.push_str("<table><thead><tr><th>at</th><th>command</th><th class=\"num\">devices in doubt</th><th>treated by</th></tr></thead><tbody>\n");
        for p in &r.resumes {
            let _ = writeln!(
                h,
                "<tr data-resume><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
                esc(&p.at),
                esc(&p.command),
                p.in_doubt,
                esc(&p.policy)
            );
        }
        h.push_str("</tbody></table></section>\n");
    }
    if !r.on_device_failures.is_empty() {
        let total: u64 = r.on_device_failures.values().sum();
        let _ = writeln!(
            h,
            "<section aria-labelledby=\"{p}ondevice\"><h2 id=\"{p}ondevice\">Failed on the device ({total})</h2>\n<p>Graph accepted the action, and the device then reported it failed: these need someone at the device, not another run.</p>\n<table><thead><tr><th>device's error code</th><th class=\"num\">devices</th></tr></thead><tbody>"
        );
        for (code, n) in &r.on_device_failures {
            let _ = writeln!(
                h,
                "<tr data-on-device=\"{}\" data-count=\"{n}\"><td><code>{}</code></td><td class=\"num\">{n}</td></tr>",
                esc(code),
                esc(code)
            );
        }
        h.push_str("</tbody></table></section>\n");
    }
    let _ = writeln!(
        h,
        "<section aria-labelledby=\"{p}failures\"><h2 id=\"{p}failures\">Failures, by Graph's error code</h2>"
    );
    if r.failures.is_empty() {
        h.push_str("<p>No device failed.</p>\n");
    } else {
        h.push_str("<table><thead><tr><th>code</th><th class=\"num\">devices</th><th>a message</th><th>request ids</th><th>what to do</th></tr></thead><tbody>\n");
        for f in &r.failures {
            let _ = writeln!(
                h,
                "<tr data-failure=\"{}\" data-count=\"{}\"><td><code>{}</code></td><td class=\"num\">{}</td><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
                esc(&f.code),
                f.count,
                esc(&f.code),
                f.count,
                esc(&truncate(&f.sample_message, 300)),
                esc(&f.request_ids.join(" ")),
                esc(&f.advice)
            );
        }
        h.push_str("</tbody></table>\n");
    }
    if !r.retry_causes.is_empty() {
        h.push_str("<h3>Retries, by cause</h3>\n<table><thead><tr><th>cause</th><th class=\"num\">retries</th></tr></thead><tbody>\n");
        for (c, n) in &r.retry_causes {
            let _ = writeln!(
                h,
                "<tr data-retry=\"{}\"><td>{}</td><td class=\"num\">{n}</td></tr>",
                esc(c.label()),
                esc(c.label())
            );
        }
        h.push_str("</tbody></table>\n");
    }
    h.push_str("</section>\n");
    if with_devices {
        devices(h, r);
    }
}

/// Each read of a device's secret beside the rotation that answered it (a run over views).
fn views(h: &mut String, r: &Report, p: &str) {
    if r.views_total == 0 {
        return;
    }
    let _ = writeln!(
        h,
        "<section aria-labelledby=\"{p}views\"><h2 id=\"{p}views\">Views → rotations</h2>"
    );
    let _ = writeln!(
        h,
        "<p>{} device(s) whose secret was read after their last rotation{}.</p>",
        r.views_total,
        if r.views.len() as u64 == r.views_total {
            String::new()
        } else {
            format!("; the first {} are listed", r.views.len())
        }
    );
    h.push_str("<table><thead><tr><th>device</th><th>name</th><th>read at</th><th>read by</th><th>answered by</th></tr></thead><tbody>\n");
    for v in &r.views {
        let _ = writeln!(
            h,
            "<tr data-view><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            v.id,
            esc(&v.name),
            esc(&v.viewed_at),
            esc(&v.viewed_by),
            esc(&v.answer)
        );
    }
    h.push_str("</tbody></table></section>\n");
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n).collect::<String>() + "…"
    }
}

/// Items sent per window of the quota (20 s at Intune's) against it, with 429s, 5xx and network
/// errors marked.
fn timeline(h: &mut String, r: &Report, p: &str) {
    let _ = writeln!(
        h,
        "<section aria-labelledby=\"{p}pace\"><h2 id=\"{p}pace\">Pace against the tenant's limit</h2>"
    );
    if r.windows.is_empty() {
        h.push_str("<p>Nothing was sent.</p></section>\n");
        return;
    }
    let (w, ht, pad) = (1000.0, 260.0, 40.0);
    let n = r.windows.len() as f64;
    let max = r
        .windows
        .iter()
        .map(|x| x.sent as f64)
        .fold(r.quota_per_window, f64::max)
        .max(1.0)
        * 1.1;
    let bw = (w - 2.0 * pad) / n;
    let y = |v: f64| ht - pad - v / max * (ht - 2.0 * pad);
    let total: u64 = r.windows.iter().map(|x| x.sent).sum();
    let (t429, t5xx, tnet): (u64, u64, u64) = r.windows.iter().fold((0, 0, 0), |(a, b, c), x| {
        (a + x.throttled, b + x.server_errors, c + x.network_errors)
    });
    let peak = r.windows.iter().map(|x| x.sent).max().unwrap_or(0);
    let desc = format!(
        "{total} items sent over {} windows of {} s; at most {peak} in one window against a quota of {:.0}; {t429} answered 429, {t5xx} server errors, {tnet} lost answers.",
        r.windows.len(),
        r.window_ms as f64 / 1000.0,
        r.quota_per_window
    );
    let _ = write!(
        h,
        "<figure><svg id=\"{p}chart-pace\" viewBox=\"0 0 {w} {ht}\" role=\"img\" aria-labelledby=\"{p}pace-t {p}pace-d\" data-windows=\"{}\" data-items=\"{total}\" data-throttled=\"{t429}\"><title id=\"{p}pace-t\">Items sent per window of the quota</title><desc id=\"{p}pace-d\">{}</desc>",
        r.windows.len(),
        esc(&desc)
    );
    let _ = writeln!(
        h,
        "<line x1=\"{pad}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#d0d7de\"/>",
        ht - pad,
        w - pad,
        ht - pad
    );
    for (i, x) in r.windows.iter().enumerate() {
        let x0 = pad + i as f64 * bw;
        let top = y(x.sent as f64);
        let _ = writeln!(
            h,
            "<rect x=\"{x0:.1}\" y=\"{top:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#0969da\"><title>{} items sent from {}</title></rect>",
            (bw - 1.0).max(0.5),
            (ht - pad - top).max(0.0),
            x.sent,
            iso(x.start_ms)
        );
        let marks = [
            (x.throttled, "#cf222e", "429"),
            (x.server_errors, "#9a6700", "5xx"),
            (x.network_errors, "#8250df", "lost answers"),
        ];
        for (k, (count, color, what)) in marks.iter().enumerate() {
            if *count > 0 {
                let _ = writeln!(
                    h,
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"{color}\"><title>{count} {what}</title></circle>",
                    x0 + bw / 2.0,
                    pad - 12.0 + k as f64 * 9.0
                );
            }
        }
    }
    let qy = y(r.quota_per_window);
    let _ = writeln!(
        h,
        "<line x1=\"{pad}\" y1=\"{qy:.1}\" x2=\"{}\" y2=\"{qy:.1}\" stroke=\"#cf222e\" stroke-dasharray=\"6 4\"/><text x=\"{}\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"end\" fill=\"#cf222e\">quota {:.0} per {} s</text>",
        w - pad,
        w - pad,
        qy - 4.0,
        r.quota_per_window,
        r.window_ms as f64 / 1000.0
    );
    let _ = writeln!(
        h,
        "<text x=\"{pad}\" y=\"{}\" font-size=\"12\" fill=\"#57606a\">{}</text><text x=\"{}\" y=\"{}\" font-size=\"12\" text-anchor=\"end\" fill=\"#57606a\">{}</text>",
        ht - 10.0,
        iso(r.windows[0].start_ms),
        w - pad,
        ht - 10.0,
        iso(r.windows[r.windows.len() - 1].start_ms + r.window_ms)
    );
    let _ = writeln!(
        h,
        "</svg><figcaption>{} Bars: items sent in each window; dashed line: the quota; dots: red 429, amber 5xx, purple lost answers.</figcaption></figure>\n</section>",
        esc(&desc)
    );
}

/// Mean and longest round trip per window.
fn latency(h: &mut String, r: &Report, p: &str) {
    let points: Vec<(usize, f64, f64)> = r
        .windows
        .iter()
        .enumerate()
        .filter(|(_, w)| w.rtt_count > 0)
        .map(|(i, w)| {
            (
                i,
                w.rtt_sum_ms as f64 / w.rtt_count as f64,
                w.rtt_max_ms as f64,
            )
        })
        .collect();
    let _ = writeln!(
        h,
        "<section aria-labelledby=\"{p}latency\"><h2 id=\"{p}latency\">Round trips</h2>"
    );
    if points.is_empty() {
        h.push_str("<p>No answer was timed.</p></section>\n");
        return;
    }
    let (w, ht, pad) = (1000.0, 200.0, 40.0);
    let n = r.windows.len().max(2) as f64 - 1.0;
    let max = points.iter().map(|p| p.2).fold(1.0, f64::max) * 1.1;
    let x = |i: usize| pad + i as f64 / n * (w - 2.0 * pad);
    let y = |v: f64| ht - pad - v / max * (ht - 2.0 * pad);
    let mean: f64 = points.iter().map(|p| p.1).sum::<f64>() / points.len() as f64;
    let longest = points.iter().map(|p| p.2).fold(0.0, f64::max);
    let desc = format!("Mean round trip {mean:.0} ms across the run; the longest {longest:.0} ms.");
    let _ = write!(
        h,
        "<figure><svg id=\"{p}chart-latency\" viewBox=\"0 0 {w} {ht}\" role=\"img\" aria-labelledby=\"{p}lat-t {p}lat-d\"><title id=\"{p}lat-t\">Round trip per window</title><desc id=\"{p}lat-d\">{}</desc>",
        esc(&desc)
    );
    let line = |sel: fn(&(usize, f64, f64)) -> f64| {
        points
            .iter()
            .map(|p| format!("{:.1},{:.1}", x(p.0), y(sel(p))))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let _ = writeln!(
        h,
        "<polyline points=\"{}\" fill=\"none\" stroke=\"#0969da\" stroke-width=\"2\"/>",
        line(|p| p.1)
    );
    let _ = writeln!(
        h,
        "<polyline points=\"{}\" fill=\"none\" stroke=\"#9a6700\" stroke-width=\"1\" stroke-dasharray=\"4 3\"/>",
        line(|p| p.2)
    );
    let _ = writeln!(
        h,
        "<text x=\"{pad}\" y=\"{}\" font-size=\"12\" fill=\"#57606a\">{max:.0} ms</text>",
        pad - 8.0
    );
    let _ = writeln!(
        h,
        "</svg><figcaption>{} Solid: mean per window; dashed: longest.</figcaption></figure>\n</section>",
        esc(&desc)
    );
}

fn devices(h: &mut String, r: &Report) {
    h.push_str("<section aria-labelledby=\"devs\"><h2 id=\"devs\">Devices</h2>\n");
    if !r.table_complete {
        let _ = writeln!(
            h,
            "<p>The run has {} devices, more than the {TABLE_LIMIT} a page shows: below are the failures and a sample. Every device is in the export: <code>intune-rotate export --ledger {} --out devices.csv</code>.</p>",
            r.devices,
            esc(&r.ledger.display().to_string())
        );
    }
    let _ = writeln!(
        h,
        "<p class=\"noprint\"><label for=\"filter\">Filter </label><input type=\"search\" id=\"filter\" placeholder=\"id, name, serial, outcome, error\"> <span id=\"shown\">{}</span> shown</p>",
        r.table.len()
    );
    h.push_str("<table id=\"devices\" class=\"sortable\"><thead><tr><th scope=\"col\">device id</th><th scope=\"col\">name</th><th scope=\"col\">serial</th><th scope=\"col\">outcome</th><th scope=\"col\">verified</th><th scope=\"col\" class=\"num\">attempts</th><th scope=\"col\">last error</th></tr></thead><tbody>\n");
    for d in &r.table {
        let _ = writeln!(
            h,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            d.id,
            esc(&d.name),
            esc(&d.serial),
            esc(&d.outcome),
            esc(&d.verified),
            d.attempts,
            esc(&truncate(&d.last_error, 200))
        );
    }
    h.push_str("</tbody></table></section>\n");
}

fn fleet(h: &mut String, f: &FleetReport) {
    let mut total: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    for (_, r) in &f.tenants {
        if let Some(r) = r {
            for (k, v) in &r.states {
                *total.entry(k.clone()).or_default() += v;
            }
        }
    }
    h.push_str("<section aria-labelledby=\"all\"><h2 id=\"all\">All tenants</h2>\n");
    let order = ["rotated", "failed", "skipped", "pending", "in_doubt"];
    let items: Vec<(String, u64)> = order
        .iter()
        .map(|k| (k.to_string(), total.get(*k).copied().unwrap_or(0)))
        .collect();
    tiles(h, "device outcomes across tenants", &items);
    h.push_str("<table class=\"sortable\" id=\"tenants\"><thead><tr><th scope=\"col\">tenant</th><th scope=\"col\">name</th><th scope=\"col\">state</th>");
    for k in order {
        let _ = write!(
            h,
            "<th scope=\"col\" class=\"num\">{}</th>",
            k.replace('_', " ")
        );
    }
    h.push_str("<th scope=\"col\">reason</th></tr></thead><tbody>\n");
    for (t, r) in &f.tenants {
        let _ = write!(
            h,
            "<tr data-tenant=\"{}\"><td><code>{}</code></td><td>{}</td><td>{}</td>",
            t.tenant.tenant_id,
            t.tenant.tenant_id,
            esc(&t.tenant.name),
            t.state.name()
        );
        for k in order {
            let n = r
                .as_ref()
                .and_then(|r| r.states.get(k))
                .copied()
                .unwrap_or(0);
            let _ = write!(h, "<td class=\"num\">{n}</td>");
        }
        let why = [t.reason.clone(), t.advice.clone()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" — ");
        let _ = writeln!(h, "<td>{}</td></tr>", esc(&truncate(&why, 400)));
    }
    h.push_str("</tbody></table></section>\n");
    for (k, (t, r)) in f.tenants.iter().enumerate() {
        if let Some(r) = r {
            let _ = writeln!(
                h,
                "<section class=\"tenant\"><h2>{} <span class=\"muted\">{}</span></h2>",
                esc(&t.tenant.name),
                t.tenant.tenant_id
            );
            body(h, r, false, &format!("t{k}-"));
            h.push_str("</section>\n");
        }
    }
}

fn iso(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_seconds(t).to_string()
}
