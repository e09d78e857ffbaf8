//! How the simulated service reads `$filter`, as the real one does (docs/graph-facts.md §7): a few
//! clauses are applied, and the rest is either refused (400) or, as Intune usually does, silently
//! dropped, so the listing answers with more than the filter asked for. An `or` the service does
//! not support drops the whole filter: every item comes back, never an empty page.

use std::time::SystemTime;

/// What the service does with a clause it does not support.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum FilterMode {
    /// Drop it and apply the rest (the service's usual behaviour).
    #[default]
    Ignore,
    /// Answer 400 "Invalid filter clause".
    Refuse,
}

/// A value of an item's property, as the applied clauses compare it (and `$orderby` sorts it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FieldValue<'a> {
    Text(&'a str),
    Bool(bool),
    Time(SystemTime),
}

/// The clauses the service applies to one collection: `(property, operator)` pairs.
pub type Supported = &'static [(&'static str, Op)];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Text compared without case, as Intune and the directory compare most properties.
    Eq,
    /// Text compared with case, as the audit log's activity names are.
    EqCase,
    Lt,
    Ge,
    Le,
}

impl Op {
    fn word(self) -> &'static str {
        match self {
            Op::Eq | Op::EqCase => "eq",
            Op::Lt => "lt",
            Op::Ge => "ge",
            Op::Le => "le",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Text(String),
    Bool(bool),
    Time(SystemTime),
}

#[derive(Debug, Clone, PartialEq)]
struct Clause {
    property: &'static str,
    op: Op,
    value: Value,
}

/// The part of a filter the service applies; an item matches when every clause does.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Applied {
    clauses: Vec<Clause>,
    /// Clauses dropped unread (in `Ignore` mode).
    pub ignored: usize,
}

impl Applied {
    pub fn matches<'a>(&self, field: impl Fn(&str) -> Option<FieldValue<'a>>) -> bool {
        self.clauses.iter().all(|c| {
            let Some(v) = field(c.property) else {
                return false;
            };
            match (c.op, &c.value, v) {
                (Op::Eq, Value::Text(t), FieldValue::Text(s)) => s.eq_ignore_ascii_case(t),
                (Op::EqCase, Value::Text(t), FieldValue::Text(s)) => s == t,
                (Op::Eq, Value::Bool(b), FieldValue::Bool(x)) => *b == x,
                (Op::Lt, Value::Time(t), FieldValue::Time(x)) => x < *t,
                (Op::Ge, Value::Time(t), FieldValue::Time(x)) => x >= *t,
                (Op::Le, Value::Time(t), FieldValue::Time(x)) => x <= *t,
                _ => false,
            }
        })
    }
}

/// Reads `filter` for a collection that applies `supported`; `Err` is the 400 message.
pub fn read(
    filter: Option<&str>,
    supported: Supported,
    mode: FilterMode,
) -> Result<Applied, String> {
    let Some(filter) = filter.map(str::trim).filter(|f| !f.is_empty()) else {
        return Ok(Applied::default());
    };
    let refuse = || {
        format!(
            "Invalid filter clause: the filter '{filter}' is not supported. Supported: {}, joined by 'and'.",
            supported
                .iter()
                .map(|(p, op)| format!("{p} {}", op.word()))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let (parts, has_or) = split(filter);
    if has_or {
        return match mode {
            FilterMode::Refuse => Err(refuse()),
            FilterMode::Ignore => Ok(Applied {
                clauses: Vec::new(),
                ignored: parts.len(),
            }),
        };
    }
    let mut applied = Applied::default();
    for part in parts {
        match clause(part, supported) {
            Some(c) => applied.clauses.push(c),
            None if mode == FilterMode::Refuse => return Err(refuse()),
            None => applied.ignored += 1,
        }
    }
    Ok(applied)
}

/// One `property op literal` clause the collection supports, or `None`.
fn clause(part: &str, supported: Supported) -> Option<Clause> {
    let part = part.trim();
    let (property, rest) = part.split_once(char::is_whitespace)?;
    let (op, value) = rest.trim_start().split_once(char::is_whitespace)?;
    let op = op.to_ascii_lowercase();
    let &(property, op) = supported
        .iter()
        .find(|(p, o)| p.eq_ignore_ascii_case(property) && o.word() == op)?;
    let value = value.trim();
    let value = if let Some(s) = value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
        if s.replace("''", "").contains('\'') {
            return None;
        }
        Value::Text(s.replace("''", "'"))
    } else if value == "true" || value == "false" {
        Value::Bool(value == "true")
    } else {
        Value::Time(humantime::parse_rfc3339_weak(value.trim_end_matches('Z')).ok()?)
    };
    Some(Clause {
        property,
        op,
        value,
    })
}

/// Splits at top-level `and`/`or` (outside quotes and parentheses); says whether an `or` was seen.
fn split(filter: &str) -> (Vec<&str>, bool) {
    let mut parts = Vec::new();
    let mut has_or = false;
    let (mut depth, mut quoted, mut start) = (0i32, false, 0usize);
    let bytes = filter.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\'' => quoted = !quoted,
            b'(' if !quoted => depth += 1,
            b')' if !quoted => depth -= 1,
            b' ' if !quoted && depth == 0 => {
                let rest = &filter[i..];
                let word = |w: &str| {
                    rest.len() > w.len() + 1
                        && rest[1..]
                            .get(..w.len())
                            .is_some_and(|x| x.eq_ignore_ascii_case(w))
                        && rest.as_bytes()[w.len() + 1] == b' '
                };
                if word("and") || word("or") {
                    has_or |= word("or");
                    parts.push(&filter[start..i]);
                    let skip = if word("and") { 5 } else { 4 };
                    start = i + skip;
                    i = start;
                    continue;
                }
            }
            _ => {}
        }
        i += 1;
    }
    parts.push(&filter[start..]);
    (parts, has_or)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEVICES: Supported = &[("operatingSystem", Op::Eq), ("lastSyncDateTime", Op::Lt)];

    #[test]
    fn supported_clauses_apply_and_the_rest_is_dropped_or_refused() {
        let f = read(
            Some("operatingSystem eq 'macOS' and deviceEnrollmentType eq 'userEnrollment'"),
            DEVICES,
            FilterMode::Ignore,
        )
        .unwrap();
        assert_eq!((f.clauses.len(), f.ignored), (1, 1));
        assert!(f.matches(|_| Some(FieldValue::Text("MACOS"))));
        assert!(
            read(
                Some("deviceEnrollmentType eq 'x'"),
                DEVICES,
                FilterMode::Refuse
            )
            .is_err()
        );
    }

    #[test]
    fn an_or_drops_the_whole_filter_in_ignore_mode() {
        let f = read(
            Some("operatingSystem eq 'macOS' or operatingSystem eq 'iOS'"),
            DEVICES,
            FilterMode::Ignore,
        )
        .unwrap();
        assert!(
            f.matches(|_| Some(FieldValue::Text("Windows"))),
            "everything comes back"
        );
        assert!(
            read(
                Some("operatingSystem eq 'a' or operatingSystem eq 'b'"),
                DEVICES,
                FilterMode::Refuse
            )
            .is_err()
        );
    }

    #[test]
    fn quoted_and_or_are_text_not_operators() {
        let (parts, has_or) = split("displayName eq 'Sales and Ops or more'");
        assert_eq!((parts.len(), has_or), (1, false));
    }

    #[test]
    fn last_sync_lt_compares_times() {
        let f = read(
            Some("lastSyncDateTime lt 2026-01-01T00:00:00Z"),
            DEVICES,
            FilterMode::Refuse,
        )
        .unwrap();
        let early = humantime::parse_rfc3339("2025-12-31T00:00:00Z").unwrap();
        let late = humantime::parse_rfc3339("2026-01-02T00:00:00Z").unwrap();
        assert!(f.matches(|_| Some(FieldValue::Time(early))));
        assert!(!f.matches(|_| Some(FieldValue::Time(late))));
    }
}
