//! Evaluating a filter against one listed `managedDevice` object. A property the object lacks is
//! null: it equals only `null`, and every ordering against it is false, as in OData.

use super::parser::parse_datetime;
use super::{CompareOp, Filter, Kind, Literal, TextFunction};
use serde_json::Value;
use std::cmp::Ordering;

pub(super) fn matches(filter: &Filter, device: &Value) -> bool {
    match filter {
        Filter::Or(a, b) => matches(a, device) || matches(b, device),
        Filter::And(a, b) => matches(a, device) && matches(b, device),
        Filter::Not(a) => !matches(a, device),
        Filter::Compare {
            property,
            op,
            value,
        } => {
            let field = field(device, property.name);
            compare(property.kind, field, *op, value)
        }
        Filter::Call {
            function,
            property,
            value,
        } => {
            let Some(Value::String(s)) = field(device, property.name) else {
                return false;
            };
            let (s, v) = (s.to_lowercase(), value.to_lowercase());
            match function {
                TextFunction::StartsWith => s.starts_with(&v),
                TextFunction::EndsWith => s.ends_with(&v),
                TextFunction::Contains => s.contains(&v),
            }
        }
    }
}

/// The property's value, its name matched without regard to case; JSON null counts as absent.
fn field<'a>(device: &'a Value, name: &str) -> Option<&'a Value> {
    let obj = device.as_object()?;
    obj.get(name)
        .or_else(|| {
            obj.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        })
        .filter(|v| !v.is_null())
}

fn compare(kind: Kind, field: Option<&Value>, op: CompareOp, value: &Literal) -> bool {
    let ordering = match (field, value) {
        (None, Literal::Null) => return op == CompareOp::Eq,
        (Some(_), Literal::Null) => return op == CompareOp::Ne,
        (None, _) => return false,
        (Some(f), v) => order(kind, f, v),
    };
    // A value of another shape than the property's type matches nothing (not even `ne`), so an
    // odd answer from the service can only narrow the run.
    let Some(o) = ordering else { return false };
    match op {
        CompareOp::Eq => o == Ordering::Equal,
        CompareOp::Ne => o != Ordering::Equal,
        CompareOp::Gt => o == Ordering::Greater,
        CompareOp::Ge => o != Ordering::Less,
        CompareOp::Lt => o == Ordering::Less,
        CompareOp::Le => o != Ordering::Greater,
    }
}

/// How the device's value orders against the literal, or `None` when they cannot be compared.
fn order(kind: Kind, field: &Value, literal: &Literal) -> Option<Ordering> {
    match (kind, literal) {
        (Kind::Text | Kind::Enum, Literal::Text(t))
        | (Kind::Enum, Literal::Enum { member: t, .. }) => {
            let s = field.as_str()?;
            Some(s.to_lowercase().cmp(&t.to_lowercase()))
        }
        (Kind::Bool, Literal::Bool(b)) => {
            let f = match field {
                Value::Bool(f) => *f,
                Value::String(s) if s.eq_ignore_ascii_case("true") => true,
                Value::String(s) if s.eq_ignore_ascii_case("false") => false,
                _ => return None,
            };
            Some(f.cmp(b))
        }
        (Kind::Number, Literal::Number(n)) => {
            let f = match field {
                Value::Number(x) => x.as_i64()?,
                Value::String(s) => s.parse().ok()?,
                _ => return None,
            };
            Some(f.cmp(n))
        }
        (Kind::DateTime, Literal::DateTime(t)) => {
            let f = parse_datetime(field.as_str()?)?;
            Some(f.cmp(t))
        }
        _ => None,
    }
}
