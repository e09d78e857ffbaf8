//! Everything that makes a batch invalid before it is sent, or an answer unreadable.

use thiserror::Error;

/// Why a batch cannot be sent as it is, or why an answer could not be read.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum BatchError {
    #[error("batch size must be between 1 and 20, got {0}")]
    InvalidBatchSize(usize),
    #[error("a batch holds at most 20 requests, this one has {0}")]
    TooManyRequests(usize),
    #[error("a batch must hold at least one request")]
    Empty,
    #[error("request id {0:?} appears more than once (ids are compared ignoring case)")]
    DuplicateId(String),
    #[error("request id must not be empty")]
    EmptyId,
    #[error(
        "request {id:?}: url {url:?} must be relative to the Graph version (like /deviceManagement/...)"
    )]
    AbsoluteUrl { id: String, url: String },
    #[error("request {id:?}: method {method:?} is not an HTTP method Graph batches accept")]
    InvalidMethod { id: String, method: String },
    #[error("request {id:?} has a body but no Content-Type header")]
    BodyWithoutContentType { id: String },
    #[error(
        "request {id:?} depends on {depends_on:?}, which is not an earlier request in this batch"
    )]
    UnknownDependency { id: String, depends_on: String },
    #[error("request {id:?} depends on {count} requests; Graph allows one")]
    TooManyDependencies { id: String, count: usize },
    #[error(
        "dependsOn must make the batch fully parallel, fully serial, or all depend on one request; this batch mixes them"
    )]
    MixedDependencies,
    #[error("batch response is not valid JSON: {0}")]
    ResponseJson(String),
}
