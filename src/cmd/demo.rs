//! `intune-rotate demo`: a simulated tenant in-process, and a real rotation of its Macs through the
//! same code path as `rotate`, with a few injected 429s and 503s and a demo-scale throttle.

use super::{Failure, failed, summarize};
use crate::exit_status::ExitStatus;
use crate::progress::{Logs, reporter};
use graph_client::{Cloud, Credential, Endpoints, GraphClient, SecretString};
use graph_sim::{Quota, SimConfig};
use rotation::{DeviceList, DispatchOptions, InDoubt, RotateRequest, RunHeader};
use std::time::Duration;

pub async fn run(a: crate::cli::DemoArgs, logs: Logs) -> Result<ExitStatus, Failure> {
    let err = |e: std::io::Error| failed(e);
    std::fs::create_dir_all(&a.out_dir).map_err(err)?;
    let ledger = a.out_dir.join("ledger.jsonl");
    let devices_csv = a.out_dir.join("devices.csv");
    let export_csv = a.out_dir.join("result.csv");
    let report_html = a.out_dir.join("report.html");
    for p in [&ledger, &devices_csv, &export_csv, &report_html] {
        let _ = std::fs::remove_file(p);
    }
    let demo_rate = Quota::new(300, Duration::from_secs(2));
    let config = SimConfig {
        devices: a.devices,
        post_limit: demo_rate,
        tenant_post_limit: Quota::new(600, Duration::from_secs(2)),
        any_limit: Quota::new(3000, Duration::from_secs(2)),
        latency: Duration::from_millis(40),
        p429: 0.002,
        p503: 0.005,
        complete_after: Duration::from_secs(5),
        ..SimConfig::default()
    };
    let sim = graph_sim::start(config.clone()).await.map_err(err)?;
    println!(
        "simulated tenant {} with {} devices at {}",
        config.tenant, a.devices, sim.base_url
    );
    std::fs::write(&devices_csv, sim.tenant().devices_csv()).map_err(err)?;
    println!(
        "device list (Intune export shape): {}",
        devices_csv.display()
    );
    let endpoints =
        Endpoints::new(Cloud::Global, Some(&sim.base_url), Some(&sim.base_url)).map_err(failed)?;
    let credential = Credential::ClientSecret {
        tenant: config.tenant.clone(),
        client_id: config.client_id.clone(),
        secret: SecretString::from(config.client_secret.clone()),
    };
    let client = GraphClient::new(endpoints, credential, "beta").map_err(failed)?;
    let connected = crate::connect::Connected {
        client,
        tenant: config.tenant.clone(),
        client_id: Some(config.client_id.clone()),
        credential: graph_client::CredentialKind::Secret,
        passed_over: Vec::new(),
    };
    crate::connect::preflight(&connected, rotation::Action::FileVault, false).await?;
    let signed_in_as = crate::connect::signed_in_as(&connected).await;
    let client = connected.client;
    let header = RunHeader {
        signed_in_as,
        client_id: Some(config.client_id.clone()),
        ..RunHeader::new(
            config.tenant.clone(),
            rotation::Action::FileVault,
            format!("csv:{}", devices_csv.display()),
            demo_rate,
        )
    };
    let source = rotation::Plan::check(DeviceList::open(&devices_csv.to_string_lossy())?)?;
    let options = DispatchOptions {
        rate: demo_rate,
        in_doubt: InDoubt::Resend,
        ..DispatchOptions::default()
    };
    let (progress, span) = reporter(logs);
    let _enter = span.enter();
    let stop = super::stop_on_signal(std::time::Duration::from_secs(10));
    let outcome = rotation::rotate(
        &client,
        RotateRequest {
            header,
            source,
            policy: rotation::Policy::for_action(rotation::Action::FileVault),
            ledger: ledger.clone(),
            options,
            max_devices: None,
        },
        progress,
        stop,
    )
    .await?;
    drop(_enter);
    if let Some(plan) = &outcome.plan {
        for (reason, n) in &plan.skipped {
            println!("skipped {n} device(s): {reason}");
        }
    }
    let mut out = std::fs::File::create(&export_csv).map_err(err)?;
    rotation::export(&ledger, rotation::ExportFormat::Csv, &mut out)?;
    let code = summarize(&outcome, None)?;
    // What the Macs report, watched until done (the simulated ones finish in seconds).
    let watch = rotation::VerifyOptions {
        watch: true,
        timeout: Some(Duration::from_secs(20)),
        interval: Duration::from_secs(2),
        ..rotation::VerifyOptions::default()
    };
    let verified = super::verify::run_verify(&client, &ledger, &watch).await?;
    let line: Vec<String> = verified
        .counts
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    println!("verified: {}", line.join(", "));
    let report = rotation::build_report(&ledger)?;
    let page = rotation::render_report(
        rotation::ReportPage::One(&report),
        env!("CARGO_PKG_VERSION"),
    );
    std::fs::write(&report_html, page).map_err(err)?;
    let stats = sim.stats();
    println!("  export    {}", export_csv.display());
    println!("  report    {}", report_html.display());
    println!(
        "simulator: {} HTTP requests, {} Graph requests, {} answered 429, {} Macs accepted the rotation ({} more than once)",
        stats.http_requests,
        stats.requests,
        stats.throttled,
        stats.devices_accepted("rotateFileVaultKey"),
        stats.devices_accepted_twice("rotateFileVaultKey")
    );
    sim.shutdown().await;
    Ok(code)
}
