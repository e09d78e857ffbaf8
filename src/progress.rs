//! Progress on stderr, for one tenant and many alike: a bar on a terminal (logs print above it),
//! a log line every few seconds otherwise, and a line per tenant as it ends in a run over many.

use indicatif::ProgressStyle;
use rotation::fleet::{Reporter, TenantEnd};
use rotation::{Counters, TenantEntry};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing_indicatif::IndicatifLayer;
use tracing_indicatif::span_ext::IndicatifSpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, fmt};
use uuid::Uuid;

/// Whether a bar can be drawn.
#[derive(Debug, Clone, Copy)]
pub struct Logs {
    pub bar: bool,
}

/// Sets up tracing (`RUST_LOG`, default info) writing through the bar's writer.
pub fn init_logging() -> Logs {
    let bar = std::io::stderr().is_terminal();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    if bar {
        let layer = IndicatifLayer::new();
        let _ = tracing_subscriber::registry()
            .with(filter)
            .with(
                fmt::layer()
                    .with_writer(layer.get_stderr_writer())
                    .with_target(false),
            )
            .with(layer)
            .try_init();
    } else {
        let _ = tracing_subscriber::registry()
            .with(filter)
            .with(
                fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_target(false)
                    .with_ansi(false),
            )
            .try_init();
    }
    Logs { bar }
}

/// A run's progress: each tenant's latest counters, summed into one bar or log line.
pub struct RunProgress {
    span: tracing::Span,
    bar: bool,
    /// Tenants in the run; `None` for a run of one tenant.
    tenants: Option<usize>,
    per: Mutex<HashMap<Uuid, Counters>>,
    done: AtomicUsize,
    last_log: Mutex<Instant>,
}

impl RunProgress {
    /// One tenant's run.
    pub fn one(logs: Logs) -> Arc<RunProgress> {
        Self::new(logs, None)
    }

    /// A run over `tenants` tenants.
    pub fn many(logs: Logs, tenants: usize) -> Arc<RunProgress> {
        Self::new(logs, Some(tenants))
    }

    fn new(logs: Logs, tenants: Option<usize>) -> Arc<RunProgress> {
        let span = tracing::info_span!("rotate");
        if logs.bar {
            span.pb_set_style(&style());
        }
        Arc::new(RunProgress {
            span,
            bar: logs.bar,
            tenants,
            per: Mutex::new(HashMap::new()),
            done: AtomicUsize::new(0),
            last_log: Mutex::new(Instant::now()),
        })
    }

    /// The span that owns the bar: entered for the run's length.
    pub fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// The engine's callback for a run of one tenant.
    pub fn callback(self: &Arc<Self>) -> rotation::Progress {
        let me = self.clone();
        Arc::new(move |c: &Counters| me.progress(Uuid::nil(), c))
    }

    fn show(&self, sum: &Counters) {
        let tenants = self
            .tenants
            .map(|n| format!(" · tenants {}/{n}", self.done.load(Ordering::Relaxed)))
            .unwrap_or_default();
        if self.bar {
            self.span.pb_set_length(sum.to_send as u64);
            self.span.pb_set_position(sum.finished as u64);
            self.span.pb_set_message(&format!(
                "retries {} · 429s {} · failed {}{tenants}",
                sum.retries, sum.throttled, sum.failed
            ));
            return;
        }
        let mut last = self.last_log.lock().unwrap_or_else(|p| p.into_inner());
        if last.elapsed() >= Duration::from_secs(5) {
            *last = Instant::now();
            tracing::info!(
                done = sum.finished,
                of = sum.to_send,
                retries = sum.retries,
                throttled = sum.throttled,
                tenants_done = self.done.load(Ordering::Relaxed),
                "progress"
            );
        }
    }
}

fn style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} {rate} ETA {eta} {msg}",
    )
    .map(|style| {
        // indicatif's own {per_sec} prints four decimals; devices a second need one.
        style.with_key(
            "rate",
            |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{:.1}/s", state.per_sec());
            },
        )
    })
    .unwrap_or_else(|_| ProgressStyle::default_bar())
}

impl Reporter for RunProgress {
    fn progress(&self, tenant: Uuid, c: &Counters) {
        let sum = {
            let mut per = self.per.lock().unwrap_or_else(|p| p.into_inner());
            per.insert(tenant, c.clone());
            let mut sum = Counters::default();
            for c in per.values() {
                sum.add(c);
            }
            sum
        };
        self.show(&sum);
    }

    fn plan_notes(&self, tenant: &TenantEntry, notes: &[String]) {
        for note in notes {
            tracing::info!(tenant = %tenant.tenant_id, "{note}");
        }
    }

    fn tenant_ended(&self, t: &TenantEntry, end: &TenantEnd) {
        let n = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        let state = end.state().name();
        let what = match end.counters() {
            Some(c) => format!(
                "{state}: rotated {}, failed {}, skipped {}, pending {}",
                c.rotated,
                c.failed,
                c.skipped,
                c.pending + c.in_doubt
            ),
            None => format!("{state}: {}", end.reason().unwrap_or("")),
        };
        let of = self.tenants.unwrap_or(1);
        let line = format!("tenant {n}/{of} {} ({}) {what}", t.name, t.tenant_id);
        if self.bar {
            tracing_indicatif::indicatif_println!("{line}");
        } else {
            println!("{line}");
        }
    }
}

/// A progress callback for a run of one tenant, and the span that owns the bar.
pub fn reporter(logs: Logs) -> (rotation::Progress, tracing::Span) {
    let p = RunProgress::one(logs);
    (p.callback(), p.span().clone())
}
