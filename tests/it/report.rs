//! `report`: the page of a run with faults, skips, a crash and its resume, and a verify pass holds
//! every section, with the figures `status` gives.

use crate::util::*;
use graph_sim::SimConfig;
use std::time::Duration;

/// `data-tile="NAME" data-count="N"` of the page's outcome tiles.
fn tile(html: &str, name: &str) -> Option<u64> {
    let key = format!("data-tile=\"{name}\" data-count=\"");
    let at = html.find(&key)? + key.len();
    html[at..].split('"').next()?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_of_a_faulty_crashed_resumed_verified_run_holds_every_section_and_status_figures()
 {
    let env = Env::new(SimConfig {
        p429: 0.05,
        p503: 0.05,
        complete_after: Duration::from_millis(500),
        post_limit: graph_sim::Quota::new(300, Duration::from_secs(1)),
        tenant_post_limit: graph_sim::Quota::new(600, Duration::from_secs(1)),
        latency: Duration::from_millis(20),
        ..fast(400)
    })
    .await;
    // The tenant's export (Windows devices are skipped), plus three devices it does not know.
    let mut text = std::fs::read_to_string(env.devices_csv()).unwrap();
    let header = text.lines().next().unwrap().to_string();
    let columns = header.split(',').count();
    for n in 1..=3 {
        let mut row = vec![String::new(); columns];
        row[0] = format!("6d1f0000-0000-4000-8000-{n:012x}");
        let col = |name: &str| header.split(',').position(|h| h == name).unwrap();
        row[col("OS")] = "macOS".into();
        row[col("Ownership")] = "Corporate".into();
        row[col("Encrypted")] = "Yes".into();
        text.push_str(&row.join(","));
        text.push('\n');
    }
    let (csv, ledger, page) = (
        env.path("mixed.csv"),
        env.path("run.jsonl"),
        env.path("report.html"),
    );
    std::fs::write(&csv, text).unwrap();
    let args = ["--rate", "300/1s", "--lost-answer-recheck", "3s"];
    let killed = env
        .rotate_killed(&csv, &ledger, &args, KillAt::SentRows(60))
        .await;
    assert!(killed, "the run was killed part-way");
    let r = env
        .run(&[
            "resume",
            "--ledger",
            &s(&ledger),
            "--yes",
            "--rate",
            "300/1s",
            "--lost-answer-recheck",
            "3s",
        ])
        .await;
    assert_eq!(code(&r), 1, "three unknown devices fail: {}", stderr(&r));
    tokio::time::sleep(Duration::from_millis(700)).await;
    let v = env.run(&["verify", "--ledger", &s(&ledger)]).await;
    assert!(code(&v) <= 1, "{}", stderr(&v));
    let o = env
        .run(&["report", "--ledger", &s(&ledger), "--out", &s(&page)])
        .await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let html = std::fs::read_to_string(&page).unwrap();
    let st = env
        .run(&["status", "--ledger", &s(&ledger), "--json"])
        .await;
    let st: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    for name in ["rotated", "failed", "skipped", "pending", "in_doubt"] {
        assert_eq!(tile(&html, name), st[name].as_u64(), "{name}: {st}");
    }
    assert_eq!(st["failed"], 3);
    assert!(
        tile(&html, "verified-done").unwrap_or(0) > 0,
        "a verify pass shows"
    );
    // Every section, with what it must hold.
    for must in [
        "<h2 id=\"outcomes\">",
        "<h2 id=\"pace\">",
        "<svg id=\"chart-pace\"",
        "<svg id=\"chart-latency\"",
        "<h2 id=\"resumes\">",
        "<tr data-resume>",
        "<h2 id=\"failures\">",
        "data-failure=\"ResourceNotFound\" data-count=\"3\"",
        "<table id=\"devices\"",
        "Signed in as",
        "app sim-client",
    ] {
        assert!(html.contains(must), "the page has {must}");
    }
    for (reason, n) in st["skip_reasons"].as_object().unwrap() {
        assert!(
            html.contains(&format!(
                "<tr data-skip=\"{reason}\"><td>{reason}</td><td class=\"num\">{n}</td>"
            )),
            "skip {reason}"
        );
    }
    let throttled = env.sim.stats().statuses.get(&429).copied().unwrap_or(0);
    assert!(throttled > 0);
    assert!(
        html.contains("429 throttled"),
        "retries by cause name the 429s"
    );
    // Self-contained: nothing from the network.
    assert!(
        !html.contains("http://") && !html.contains("https://") && !html.contains("src="),
        "no external resource"
    );
    let rows = html.matches("<tr><td><code>").count() as u64;
    assert_eq!(
        rows,
        st["devices"].as_u64().unwrap(),
        "every device in the table"
    );
    // The same figures as JSON.
    let j = env
        .run(&["report", "--ledger", &s(&ledger), "--format", "json"])
        .await;
    let j: serde_json::Value = serde_json::from_slice(&j.stdout).unwrap();
    assert_eq!(j["states"]["rotated"], st["rotated"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_that_failed_on_the_device_are_counted_by_their_code_and_listed_first() {
    let env = Env::new(SimConfig {
        fail_share: 0.2,
        complete_after: Duration::from_millis(300),
        ..fast(300)
    })
    .await;
    let ledger = env.path("bitlocker.jsonl");
    let o = env
        .run(&[
            "rotate",
            "--action",
            "bitlocker",
            "--query",
            "--ledger",
            &s(&ledger),
            "--yes",
            "--rate",
            "4000/1s",
            "--verify-after",
            "30s",
        ])
        .await;
    assert_eq!(code(&o), 1, "some failed on the device: {}", stderr(&o));
    let r = rotation::build_report(&ledger).unwrap();
    let on_device: u64 = r.on_device_failures.values().sum();
    assert!(on_device > 0, "{:?}", r.on_device_failures);
    assert!(
        r.on_device_failures.keys().all(|k| k.contains("(0x8031")),
        "BitLocker's HRESULTs: {:?}",
        r.on_device_failures
    );
    let (first, rest) = r.table.split_at(on_device as usize);
    assert!(
        first
            .iter()
            .all(|d| d.outcome == "rotated" && d.verified == "failed")
    );
    assert!(
        rest.iter().all(|d| d.verified != "failed"),
        "none left further down"
    );
    let html = rotation::render_report(rotation::ReportPage::One(&r), "test");
    assert!(
        html.contains("Failed on the device"),
        "the page has the section"
    );
}
