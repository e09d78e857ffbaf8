//! The Microsoft Graph JSON `$batch` wire format, as pure data and rules.
//!
//! Graph offers the Intune rotate actions only as one POST per device; `$batch` packs up to 20 of them
//! into one HTTP round trip. This crate builds those batches (ids allocated for the caller), validates
//! them the way the service does, and parses the answers — per-item status, case-insensitive headers,
//! `Retry-After` in all its observed forms, and Graph error bodies. It does no I/O, so every rule is
//! testable without a network.
//!
//! ```
//! use graph_batch::{BatchBuilder, Request, BatchResponse, ItemClass};
//!
//! let mut builder = BatchBuilder::new(20).unwrap();
//! for device in ["3f0c5d8e-0000-4000-8000-000000000001", "3f0c5d8e-0000-4000-8000-000000000002"] {
//!     let url = format!("/deviceManagement/managedDevices/{device}/rotateFileVaultKey");
//!     builder.push(device.to_string(), Request::action_post(url));
//! }
//! let batches = builder.finish();
//! assert_eq!(batches.len(), 1);
//! let wire = serde_json::to_string(&batches[0].body).unwrap();
//! assert!(wire.contains("rotateFileVaultKey"));
//!
//! let answer = r#"{"responses":[{"id":"2","status":429,"headers":{"retry-after":"3"}},{"id":"1","status":204}]}"#;
//! let parsed = BatchResponse::parse(answer.as_bytes()).unwrap();
//! let throttled = parsed.item("2").unwrap();
//! assert!(matches!(throttled.classify(std::time::SystemTime::now()), ItemClass::Throttled { .. }));
//! assert_eq!(batches[0].key_of("1"), Some(&"3f0c5d8e-0000-4000-8000-000000000001".to_string()));
//! ```

mod builder;
mod classify;
mod error;
mod graph_error;
mod headers;
mod quota;
mod request;
mod response;
mod retry_after;

pub use builder::{Batch, BatchBuilder};
pub use classify::ItemClass;
pub use error::BatchError;
pub use graph_error::{GraphError, InnerError};
pub use headers::Headers;
pub use quota::{Quota, QuotaParseError};
pub use request::{BatchRequestBody, BodilessPost, Request, RequestItem, validate_batch};
pub use response::{BatchResponse, ItemBody, ItemResponse};
pub use retry_after::{parse_retry_after, retry_wait};

/// The most requests Graph accepts in one `$batch`.
pub const MAX_BATCH_SIZE: usize = 20;
