//! The client's own reading of a `--query` OData `$filter` over `managedDevice` properties.
//!
//! Intune's listing drops clauses it does not support and returns every device
//! (docs/graph-facts.md §7), so the filter is still sent to narrow the listing but every listed
//! device is checked here too: the service's answer can only ever shrink a run, never widen it.
//! Grammar (docs/sources.md):
//!
//! ```text
//! or      := and ("or" and)*
//! and     := unary ("and" unary)*
//! unary   := "not" unary | "(" or ")" | compare | call
//! compare := property ("eq"|"ne"|"gt"|"ge"|"lt"|"le") literal
//! call    := ("startswith"|"endswith"|"contains") "(" property "," 'text' ")"
//! literal := 'text' | true | false | null | 123 | 2026-01-31T00:00:00Z | 2026-01-31
//!          | namespace.enumType'member'
//! ```

mod eval;
mod parser;
mod properties;

pub use properties::{Kind, PROPERTIES, Property};

use std::fmt;

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Or(Box<Filter>, Box<Filter>),
    And(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    Compare {
        property: Property,
        op: CompareOp,
        value: Literal,
    },
    Call {
        function: TextFunction,
        property: Property,
        value: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextFunction {
    StartsWith,
    EndsWith,
    Contains,
}

/// A literal, already checked against the type of the property it is compared with.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Null,
    Bool(bool),
    Number(i64),
    Text(String),
    /// `namespace.type'member'` (a plain string is kept as `Text`).
    Enum {
        type_name: String,
        member: String,
    },
    DateTime(time::OffsetDateTime),
}

/// Why a filter was refused, at a character column (1-based) of the filter text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct FilterError {
    pub column: usize,
    pub message: String,
}

impl Filter {
    /// Parses `text`, refusing unknown properties, operators a property's type cannot take, and
    /// anything the grammar does not hold.
    pub fn parse(text: &str) -> Result<Filter, FilterError> {
        parser::parse(text)
    }

    /// Whether a listed `managedDevice` object satisfies the filter.
    pub fn matches(&self, device: &serde_json::Value) -> bool {
        eval::matches(self, device)
    }

    /// Every property the filter reads, once each, for `$select`.
    pub fn properties(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        self.visit(&mut |p| {
            if !out.contains(&p.name) {
                out.push(p.name);
            }
        });
        out
    }

    fn visit(&self, f: &mut impl FnMut(Property)) {
        match self {
            Filter::Or(a, b) | Filter::And(a, b) => {
                a.visit(f);
                b.visit(f);
            }
            Filter::Not(a) => a.visit(f),
            Filter::Compare { property, .. } | Filter::Call { property, .. } => f(*property),
        }
    }

    fn precedence(&self) -> u8 {
        match self {
            Filter::Or(..) => 1,
            Filter::And(..) => 2,
            _ => 3,
        }
    }

    /// Writes `self`, parenthesised when its precedence is below `min`.
    fn write(&self, f: &mut fmt::Formatter<'_>, min: u8) -> fmt::Result {
        let paren = self.precedence() < min;
        if paren {
            f.write_str("(")?;
        }
        match self {
            // Left-associative: the right operand of the same operator needs parentheses.
            Filter::Or(a, b) => {
                a.write(f, 1)?;
                f.write_str(" or ")?;
                b.write(f, 2)?;
            }
            Filter::And(a, b) => {
                a.write(f, 2)?;
                f.write_str(" and ")?;
                b.write(f, 3)?;
            }
            Filter::Not(a) => {
                f.write_str("not ")?;
                a.write(f, 3)?;
            }
            Filter::Compare {
                property,
                op,
                value,
            } => write!(f, "{} {} {value}", property.name, op.keyword())?,
            Filter::Call {
                function,
                property,
                value,
            } => write!(
                f,
                "{}({},{})",
                function.keyword(),
                property.name,
                quoted(value)
            )?,
        }
        if paren {
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// The filter in canonical form, which parses back to the same filter.
impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, 0)
    }
}

impl CompareOp {
    pub const ALL: [CompareOp; 6] = [
        CompareOp::Eq,
        CompareOp::Ne,
        CompareOp::Gt,
        CompareOp::Ge,
        CompareOp::Lt,
        CompareOp::Le,
    ];

    pub fn keyword(self) -> &'static str {
        match self {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Gt => "gt",
            CompareOp::Ge => "ge",
            CompareOp::Lt => "lt",
            CompareOp::Le => "le",
        }
    }
}

impl TextFunction {
    pub const ALL: [TextFunction; 3] = [
        TextFunction::StartsWith,
        TextFunction::EndsWith,
        TextFunction::Contains,
    ];

    pub fn keyword(self) -> &'static str {
        match self {
            TextFunction::StartsWith => "startswith",
            TextFunction::EndsWith => "endswith",
            TextFunction::Contains => "contains",
        }
    }
}

fn quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Null => f.write_str("null"),
            Literal::Bool(b) => write!(f, "{b}"),
            Literal::Number(n) => write!(f, "{n}"),
            Literal::Text(s) => f.write_str(&quoted(s)),
            Literal::Enum { type_name, member } => write!(f, "{type_name}{}", quoted(member)),
            Literal::DateTime(t) => f.write_str(
                &t.format(&time::format_description::well_known::Rfc3339)
                    .map_err(|_| fmt::Error)?,
            ),
        }
    }
}

#[cfg(test)]
mod tests;
