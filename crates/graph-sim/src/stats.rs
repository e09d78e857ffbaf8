//! What the simulator saw and accepted, served at `/_sim/stats`.

use serde::Serialize;
use std::collections::BTreeMap;

/// Counters; `actions` counts only accepted (204) action calls, per action and device.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct Stats {
    /// HTTP requests received (a `$batch` is one).
    pub http_requests: u64,
    /// Graph requests, each `$batch` item counted on its own.
    pub requests: u64,
    /// Graph requests answered 429 (items and whole batches).
    pub throttled: u64,
    /// Of `throttled`, those that arrived before an earlier Retry-After had passed.
    pub penalised: u64,
    /// Of `throttled`, the writes (actions) refused by the app's or the tenant's limit.
    #[serde(default)]
    pub throttled_writes: u64,
    pub batches: u64,
    pub token_requests: u64,
    /// Answers per status code.
    pub statuses: BTreeMap<u16, u64>,
    /// `$filter` clauses a listing dropped unread (`--filter-mode ignore`).
    #[serde(default)]
    pub filter_clauses_ignored: u64,
    /// HTTP requests dropped whose actions were carried out later (`--late`).
    #[serde(default)]
    pub late_requests: u64,
    /// Actions carried out although their item was answered 429 (`--ghost-429`).
    #[serde(default)]
    pub ghost_429: u64,
    /// Requests to the directory audit log, and those it answered 429.
    #[serde(default)]
    pub audit_requests: u64,
    #[serde(default)]
    pub audit_throttled: u64,
    /// Audit events recorded by `POST /_sim/views`.
    #[serde(default)]
    pub views: u64,
    /// Messages accepted by `sendMail`.
    #[serde(default)]
    pub mails_sent: u64,
    /// action name -> device id -> times accepted.
    pub actions: BTreeMap<String, BTreeMap<String, u64>>,
}

impl Stats {
    /// Adds another tenant's counters to these (`/_sim/stats` of a many-tenant simulator).
    pub fn add(&mut self, o: &Stats) {
        self.http_requests += o.http_requests;
        self.requests += o.requests;
        self.throttled += o.throttled;
        self.penalised += o.penalised;
        self.throttled_writes += o.throttled_writes;
        self.batches += o.batches;
        self.mails_sent += o.mails_sent;
        self.token_requests += o.token_requests;
        self.filter_clauses_ignored += o.filter_clauses_ignored;
        self.late_requests += o.late_requests;
        self.ghost_429 += o.ghost_429;
        self.audit_requests += o.audit_requests;
        self.audit_throttled += o.audit_throttled;
        self.views += o.views;
        for (status, n) in &o.statuses {
            *self.statuses.entry(*status).or_default() += n;
        }
        for (action, devices) in &o.actions {
            let mine = self.actions.entry(action.clone()).or_default();
            for (device, n) in devices {
                *mine.entry(device.clone()).or_default() += n;
            }
        }
    }

    /// Records one Graph request's answer.
    pub fn count(&mut self, status: u16) {
        *self.statuses.entry(status).or_default() += 1;
        if status == 429 {
            self.throttled += 1;
        }
    }

    /// How many times `action` was accepted for `device`.
    pub fn accepted(&self, action: &str, device: &str) -> u64 {
        self.actions
            .get(action)
            .and_then(|m| m.get(device))
            .copied()
            .unwrap_or(0)
    }

    /// Devices that accepted `action` at least once.
    pub fn devices_accepted(&self, action: &str) -> usize {
        self.actions.get(action).map_or(0, BTreeMap::len)
    }

    /// Devices that accepted `action` more than once.
    pub fn devices_accepted_twice(&self, action: &str) -> usize {
        self.actions
            .get(action)
            .map_or(0, |m| m.values().filter(|&&n| n > 1).count())
    }
}
