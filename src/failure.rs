//! A command's error with the exit status it ends the process with.

use crate::exit_status::ExitStatus;
use rotation::RotationError;

/// An error with the exit status it ends the process with.
pub struct Failure(pub ExitStatus, pub anyhow::Error);

impl From<RotationError> for Failure {
    fn from(e: RotationError) -> Self {
        Failure(ExitStatus::of_error(&e), e.into())
    }
}

impl From<crate::connect_error::ConnectError> for Failure {
    fn from(e: crate::connect_error::ConnectError) -> Self {
        match e {
            crate::connect_error::ConnectError::Usage(e) => Failure(ExitStatus::Usage, e),
            crate::connect_error::ConnectError::Auth(e) => Failure(ExitStatus::Auth, e),
        }
    }
}

pub fn usage(e: anyhow::Error) -> Failure {
    Failure(ExitStatus::Usage, e)
}

/// An output or other local failure after the work was done.
pub fn failed(e: impl Into<anyhow::Error>) -> Failure {
    Failure(ExitStatus::Incomplete, e.into())
}
