//! Progress across the tenants of a run: one bar (devices done of total, tenants done of total,
//! rate) on a terminal, a log line every few seconds otherwise, and a line per tenant as it ends.

use crate::progress::Logs;
use rotation::fleet::{Reporter, TenantEnd};
use rotation::{Counters, TenantEntry};
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use uuid::Uuid;

pub struct FleetProgress {
    /// Each tenant's devices done and to send.
    per: Mutex<HashMap<Uuid, (usize, usize)>>,
    tenants: usize,
    done: AtomicUsize,
    bar: Option<indicatif::ProgressBar>,
    last_log: Mutex<Instant>,
    started: Instant,
}

impl FleetProgress {
    pub fn new(logs: Logs, tenants: usize) -> Self {
        let bar = logs.bar.then(|| {
            let b = indicatif::ProgressBar::new(0);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} devices · {msg}",
            ) {
                b.set_style(style);
            }
            b
        });
        FleetProgress {
            per: Mutex::new(HashMap::new()),
            tenants,
            done: AtomicUsize::new(0),
            bar,
            last_log: Mutex::new(Instant::now()),
            started: Instant::now(),
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl Reporter for FleetProgress {
    fn progress(&self, tenant: Uuid, c: &Counters) {
        let (done, total) = {
            let mut per = self.per.lock().unwrap_or_else(|p| p.into_inner());
            per.insert(tenant, (c.finished, c.to_send));
            per.values().fold((0, 0), |(d, t), (a, b)| (d + a, t + b))
        };
        let tenants_done = self.done.load(Ordering::Relaxed);
        let rate = done as f64 / self.started.elapsed().as_secs_f64().max(0.001);
        match &self.bar {
            Some(b) => {
                b.set_length(total as u64);
                b.set_position(done as u64);
                b.set_message(format!(
                    "tenants {tenants_done}/{} · {rate:.1}/s",
                    self.tenants
                ));
            }
            None => {
                let mut last = self.last_log.lock().unwrap_or_else(|p| p.into_inner());
                if last.elapsed() >= Duration::from_secs(5) {
                    *last = Instant::now();
                    tracing::info!(
                        devices_done = done,
                        of = total,
                        tenants_done,
                        tenants = self.tenants,
                        rate = format!("{rate:.1}/s"),
                        "progress"
                    );
                }
            }
        }
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
        let line = format!(
            "tenant {n}/{} {} ({}) {what}",
            self.tenants, t.name, t.tenant_id
        );
        match &self.bar {
            Some(b) => b.println(line),
            None => println!("{line}"),
        }
    }
}
