//! Why a connection cannot be made: bad usage (exit 2) or credentials (exit 3).

/// Why a connection cannot be made: bad usage (exit 2) or credentials (exit 3).
pub enum ConnectError {
    Usage(anyhow::Error),
    Auth(anyhow::Error),
}

impl From<anyhow::Error> for ConnectError {
    fn from(e: anyhow::Error) -> Self {
        ConnectError::Usage(e)
    }
}
