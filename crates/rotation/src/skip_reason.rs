//! Why the plan leaves a device alone, as a kind and the words that say it of that device. The
//! ledger keeps a reason as `kind: words`; the kind is read back from that text in one place.

use std::fmt;

/// A property the eligibility rules read that the source may not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Property {
    Ownership,
    OsVersion,
    Supervision,
    Architecture,
    JoinType,
}

impl Property {
    pub fn code(self) -> &'static str {
        match self {
            Property::Ownership => "ownership",
            Property::OsVersion => "os-version",
            Property::Supervision => "supervision",
            Property::Architecture => "architecture",
            Property::JoinType => "join-type",
        }
    }

    const ALL: [Property; 5] = [
        Property::Ownership,
        Property::OsVersion,
        Property::Supervision,
        Property::Architecture,
        Property::JoinType,
    ];
}

/// The kinds of skip: what `status`, the report and the plan count devices by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SkipKind {
    /// Listed in the run's exclusions.
    Excluded,
    /// Another platform than the action's.
    Platform,
    /// Known to be unencrypted: there is no key to rotate.
    NotEncrypted,
    /// Its last check-in is older than the run allows.
    Stale,
    /// Company-owned only.
    Personal,
    /// Too old a release for the action.
    OsVersion,
    NotSupervised,
    /// Not Apple silicon.
    Architecture,
    /// Not joined to Entra as the action needs.
    JoinType,
    /// The source does not say what a rule needs (strict eligibility).
    Unknown(Property),
    /// The encryption report: the key is not escrowed to Intune.
    EscrowNotEnabled,
    /// The encryption report: FileVault was turned on by the user.
    DriveEncryptedByUser,
    /// The encryption report: the user deferred FileVault.
    UserDeferredEncryption,
    /// One of our actions is still pending or active.
    Pending,
    /// Rotated more recently than the run allows.
    RotatedRecently,
    /// Its last rotation cannot be read (strict eligibility).
    UnknownKeyAge,
    /// Its secret was read, but it has rotated since (a view-driven run).
    RotatedSinceView,
}

impl SkipKind {
    /// The kind as the ledger writes it, before the reason's `:`.
    pub fn code(self) -> &'static str {
        match self {
            SkipKind::Excluded => "excluded",
            SkipKind::Platform => "platform",
            SkipKind::NotEncrypted => "not-encrypted",
            SkipKind::Stale => "stale",
            SkipKind::Personal => "personal",
            SkipKind::OsVersion => "os-version",
            SkipKind::NotSupervised => "not-supervised",
            SkipKind::Architecture => "architecture",
            SkipKind::JoinType => "join-type",
            SkipKind::Unknown(Property::Ownership) => "unknown-ownership",
            SkipKind::Unknown(Property::OsVersion) => "unknown-os-version",
            SkipKind::Unknown(Property::Supervision) => "unknown-supervision",
            SkipKind::Unknown(Property::Architecture) => "unknown-architecture",
            SkipKind::Unknown(Property::JoinType) => "unknown-join-type",
            SkipKind::EscrowNotEnabled => "escrow-not-enabled",
            SkipKind::DriveEncryptedByUser => "drive-encrypted-by-user",
            SkipKind::UserDeferredEncryption => "user-deferred-encryption",
            SkipKind::Pending => "pending",
            SkipKind::RotatedRecently => "rotated-recently",
            SkipKind::UnknownKeyAge => "unknown-key-age",
            SkipKind::RotatedSinceView => "rotated-since-view",
        }
    }

    /// Every kind, in the order the plan counts them.
    pub fn all() -> impl Iterator<Item = SkipKind> {
        [
            SkipKind::Excluded,
            SkipKind::Platform,
            SkipKind::NotEncrypted,
            SkipKind::Stale,
            SkipKind::Personal,
            SkipKind::OsVersion,
            SkipKind::NotSupervised,
            SkipKind::Architecture,
            SkipKind::JoinType,
        ]
        .into_iter()
        .chain(Property::ALL.into_iter().map(SkipKind::Unknown))
        .chain([
            SkipKind::EscrowNotEnabled,
            SkipKind::DriveEncryptedByUser,
            SkipKind::UserDeferredEncryption,
            SkipKind::Pending,
            SkipKind::RotatedRecently,
            SkipKind::UnknownKeyAge,
            SkipKind::RotatedSinceView,
        ])
    }

    /// The kind a code names; ledgers before 2026-12 wrote `not encrypted` with a space.
    pub fn from_code(code: &str) -> Option<SkipKind> {
        let code = code.trim();
        if code == "not encrypted" {
            return Some(SkipKind::NotEncrypted);
        }
        SkipKind::all().find(|k| k.code() == code)
    }

    /// Whether the rule could not be checked because the source does not say (the plan advises
    /// giving the rule what it needs).
    pub fn is_unknown(self) -> bool {
        matches!(self, SkipKind::Unknown(_) | SkipKind::UnknownKeyAge)
    }
}

impl fmt::Display for SkipKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.code())
    }
}

/// One device's skip: its kind and the words that say why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkipReason {
    pub kind: SkipKind,
    pub words: String,
}

impl SkipReason {
    pub fn new(kind: SkipKind, words: impl Into<String>) -> Self {
        SkipReason {
            kind,
            words: words.into(),
        }
    }

    /// The kind of a reason the ledger holds (`kind: words`): the one reader of that text.
    /// `None` for a kind this release does not know (a newer ledger's).
    pub fn kind_of(reason: &str) -> Option<SkipKind> {
        SkipKind::from_code(reason.split(':').next().unwrap_or(reason))
    }

    /// The kind's text of a reason the ledger holds, known or not: what counts group by.
    pub fn code_of(reason: &str) -> String {
        match SkipReason::kind_of(reason) {
            Some(kind) => kind.code().to_string(),
            None => reason
                .split(':')
                .next()
                .unwrap_or(reason)
                .trim()
                .to_string(),
        }
    }
}

impl fmt::Display for SkipReason {
    /// The ledger's form, `kind: words`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.words)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_reads_back_from_its_code() {
        for kind in SkipKind::all() {
            assert_eq!(SkipKind::from_code(kind.code()), Some(kind), "{kind}");
        }
    }

    #[test]
    fn a_reason_is_kind_then_words_and_its_kind_reads_back() {
        let r = SkipReason::new(SkipKind::Pending, "a rotateFileVaultKey started at t");
        assert_eq!(r.to_string(), "pending: a rotateFileVaultKey started at t");
        assert_eq!(SkipReason::kind_of(&r.to_string()), Some(SkipKind::Pending));
    }

    #[test]
    fn an_earlier_ledgers_not_encrypted_is_the_same_kind() {
        assert_eq!(
            SkipReason::kind_of("not encrypted: there is no key to rotate"),
            Some(SkipKind::NotEncrypted)
        );
        assert_eq!(SkipReason::code_of("not encrypted"), "not-encrypted");
    }

    #[test]
    fn a_kind_this_release_does_not_know_is_counted_by_its_text() {
        assert_eq!(SkipReason::kind_of("quarantined: a newer rule"), None);
        assert_eq!(
            SkipReason::code_of("quarantined: a newer rule"),
            "quarantined"
        );
    }
}
