//! graph-client
