//! Progress on stderr: a bar on a terminal (logs print above it), a log line every few seconds otherwise.

use indicatif::ProgressStyle;
use rotation::Counters;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing_indicatif::IndicatifLayer;
use tracing_indicatif::span_ext::IndicatifSpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, fmt};

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

/// A progress callback for the engine, and the span that owns the bar.
pub fn reporter(logs: Logs) -> (rotation::Progress, tracing::Span) {
    let span = tracing::info_span!("rotate");
    if logs.bar {
        span.pb_set_style(
            &ProgressStyle::with_template(
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
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let s = span.clone();
        let cb = move |c: &Counters| {
            s.pb_set_length(c.to_send as u64);
            s.pb_set_position(done_this_run(c));
            s.pb_set_message(&format!(
                "retries {} · 429s {} · failed {}",
                c.retries, c.throttled, c.failed
            ));
        };
        (Arc::new(cb), span)
    } else {
        let last = Mutex::new(Instant::now());
        let cb = move |c: &Counters| {
            let mut l = last.lock().unwrap_or_else(|p| p.into_inner());
            if l.elapsed() >= Duration::from_secs(5) {
                *l = Instant::now();
                tracing::info!(
                    done = c.finished,
                    of = c.to_send,
                    retries = c.retries,
                    throttled = c.throttled,
                    "progress"
                );
            }
        };
        (Arc::new(cb), span)
    }
}

fn done_this_run(c: &Counters) -> u64 {
    c.finished as u64
}
