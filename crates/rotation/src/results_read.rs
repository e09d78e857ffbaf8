//! How a plan read devices' `deviceActionResults`. Real tenants have been seen to leave them out
//! of list answers and fill them only on a single-device GET (graph-facts §11), so the plan says
//! which it trusted and why, and the ledger header keeps it for the audit trail.

use serde::{Deserialize, Serialize};

/// Where the results came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResultsSource {
    /// The device listing, which a sample of single-device GETs agreed with.
    Listing,
    /// One GET per device, in paced `$batch`es, before the plan was written.
    PerDevice,
    /// One GET per device, in paced `$batch`es, just before the device is sent: the reads run
    /// beside the sending (their quota is apart from the actions'), so they add almost nothing to
    /// the run's time, and `resume` reads every device not yet sent the same way.
    BeforeSending,
}

/// The rules a device's action results are held to when they are read just before it is sent:
/// the plan's own, kept in the ledger header so that `resume` holds unsent devices to them too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendTimeRules {
    /// A device with one of our actions still pending or active is skipped.
    pub skip_pending: bool,
    /// A device whose last rotation is more recent than this many seconds is skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotated_within_secs: Option<u64>,
    /// How a result that cannot be read counts.
    pub eligibility: crate::Eligibility,
}

/// Why that source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResultsReason {
    /// The listing showed results, and a GET of each sampled device showed no more.
    SampleAgreed,
    /// A GET showed results the listing left out.
    ListingOmits,
    /// The listing showed no result on any device, which is what a tenant that leaves them out
    /// answers too.
    ListingEmpty,
}

/// What the plan read, for its notes and the ledger header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultsRead {
    pub source: ResultsSource,
    pub reason: ResultsReason,
    /// Devices read by GET to test the listing.
    pub sampled: usize,
    /// Devices read by GET in all (the sample included).
    pub read: usize,
    /// Devices whose results could not be read at all.
    #[serde(default)]
    pub unread: usize,
    /// Where the results are read just before each device is sent: the rules they are held to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before_sending: Option<SendTimeRules>,
}

impl ResultsRead {
    /// One sentence for the plan's notes.
    pub fn describe(&self) -> String {
        let why = match self.reason {
            ResultsReason::SampleAgreed => format!(
                "the device listing carries them on this tenant (a GET of {} device(s) showed nothing it left out)",
                self.sampled
            ),
            ResultsReason::ListingOmits => format!(
                "the device listing leaves them out on this tenant (a GET of {} sampled device(s) showed results it did not)",
                self.sampled
            ),
            ResultsReason::ListingEmpty => {
                "the device listing showed none on any device, as a tenant that leaves them out answers".to_string()
            }
        };
        let how = match self.source {
            ResultsSource::Listing => "read from the device listing".to_string(),
            ResultsSource::PerDevice => format!("read by GET, one per device ({} read)", self.read),
            ResultsSource::BeforeSending => {
                "read by GET, one per device, just before each is sent (beside the sending, under the read quota); a device found with an action pending, or rotated recently, is skipped then".to_string()
            }
        };
        let mut s = format!("devices' action results were {how}: {why}");
        if self.unread > 0 {
            s.push_str(&format!(
                "; warning: {} device(s) could not be read, and what they show was not checked",
                self.unread
            ));
        }
        s
    }
}
