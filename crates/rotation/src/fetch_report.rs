//! What a Graph source read: the figures and notes the plan reports of it.

/// What was read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchReport {
    pub devices: usize,
    /// The listing failed part-way and `allow_partial` kept what was read.
    pub partial: Option<String>,
    /// Devices the service listed, before the client's own check of a `--query` filter.
    pub listed: usize,
    /// What the plan should say about the source (names resolved, filters the service ignored,
    /// where group members came from).
    pub notes: Vec<String>,
}
