//! A source opened: its file read or its listing's filter parsed, so bad input fails before
//! anything connects; then materialised into one device list to plan from.

use crate::{Action, DeviceList, GraphSource, MatchBy, Matching, RotationError, SourceSpec};
use graph_client::GraphClient;

/// A source ready to be read.
#[derive(Debug)]
pub enum OpenSource {
    /// A file whose rows are the devices.
    File(DeviceList),
    /// A file whose rows are matched to the tenant's devices.
    Match(DeviceList, MatchBy, Matching),
    /// A Graph listing.
    Graph(GraphSource),
}

/// The devices read, and what the plan should say of how.
#[derive(Debug)]
pub struct Materialized {
    pub list: DeviceList,
    pub notes: Vec<String>,
}

impl OpenSource {
    /// Opens `spec`: an input file now (a bad path fails here), a filter parsed.
    pub fn open(spec: &SourceSpec) -> Result<OpenSource, RotationError> {
        if let SourceSpec::Input {
            path,
            match_by,
            matching,
        } = spec
        {
            let csv = DeviceList::open(path)?;
            return Ok(match match_by {
                Some(by) => OpenSource::Match(csv, *by, *matching),
                None => OpenSource::File(csv),
            });
        }
        Ok(OpenSource::Graph(
            spec.graph()?
                .expect("a source that is not a file is a listing"),
        ))
    }

    /// Delegated permissions the source reads with beyond the device listing.
    pub fn scopes(&self) -> &'static [crate::Permission] {
        use crate::Permission;
        match self {
            OpenSource::Graph(GraphSource::Groups { .. }) => {
                &[Permission::GroupMemberRead, Permission::DeviceRead]
            }
            OpenSource::Graph(GraphSource::Script { .. }) => &[Permission::ConfigurationRead],
            _ => &[],
        }
    }

    /// Whether the source reads devices from Graph (and so needs the read permission).
    pub fn lists_devices(&self) -> bool {
        !matches!(self, OpenSource::File(_))
    }

    /// The rows of a plain file, its every id checked now: bad input fails before connecting.
    /// `None` for the sources read from Graph, which are checked once read.
    pub fn check_early(&self) -> Result<Option<usize>, RotationError> {
        match self {
            OpenSource::File(csv) => crate::Plan::check_source(csv).map(Some),
            _ => Ok(None),
        }
    }

    /// The device list to plan from; `client` is needed unless the source is a plain file.
    pub async fn materialize(
        self,
        client: Option<&GraphClient>,
        action: Action,
        allow_partial: bool,
    ) -> Result<Materialized, RotationError> {
        let need = || client.ok_or(RotationError::NoConnection);
        match self {
            OpenSource::File(list) => Ok(Materialized {
                list,
                notes: Vec::new(),
            }),
            OpenSource::Match(csv, by, matching) => {
                let strict = matching == Matching::Strict;
                let (list, report) = crate::resolve(need()?, &csv, by, strict).await?;
                tracing::info!(
                    matched = report.matched,
                    unmatched = report.unmatched.len(),
                    ambiguous = report.ambiguous.len(),
                    "input rows matched to devices"
                );
                Ok(Materialized {
                    list,
                    notes: Vec::new(),
                })
            }
            OpenSource::Graph(g) => {
                let (list, report) = g.fetch(need()?, action, allow_partial).await?;
                let mut notes = report.notes;
                if let Some(why) = &report.partial {
                    notes.push(format!(
                        "warning: the device listing stopped part-way ({why}); {} device(s) read are planned",
                        report.devices
                    ));
                }
                Ok(Materialized { list, notes })
            }
        }
    }
}
