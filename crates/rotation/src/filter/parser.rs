//! Tokens and a recursive-descent parser for the grammar in `mod.rs`. Every error carries the
//! column where the filter went wrong; nesting is bounded so no input can exhaust the stack.

use super::properties::{self, Kind, Property};
use super::{CompareOp, Filter, FilterError, Literal, TextFunction};

/// Deeper than any filter a person writes; keeps arbitrary input from overflowing the stack.
const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open,
    Close,
    Comma,
    /// A name or keyword.
    Word(String),
    /// `'text'`, with `''` read as one quote.
    Text(String),
    /// `namespace.type'member'`.
    Enum(String, String),
    /// Starts with a digit or a sign: a number, a date or a date-time.
    Bare(String),
    End,
}

struct Lexed {
    token: Token,
    /// Byte offset in the filter.
    at: usize,
}

fn column(text: &str, at: usize) -> usize {
    text.get(..at).map_or(at, |s| s.chars().count()) + 1
}

fn lex(text: &str) -> Result<Vec<Lexed>, FilterError> {
    let err = |at: usize, message: String| FilterError {
        column: column(text, at),
        message,
    };
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    // Reads a quoted string starting at the quote `i`; returns it and the offset after it.
    let quoted = |start: usize| -> Result<(String, usize), FilterError> {
        let mut s = String::new();
        let mut j = start + 1;
        loop {
            let Some(c) = text[j..].chars().next() else {
                return Err(err(start, "a quoted string is not closed".into()));
            };
            j += c.len_utf8();
            if c == '\'' {
                if text[j..].starts_with('\'') {
                    s.push('\'');
                    j += 1;
                } else {
                    return Ok((s, j));
                }
            } else {
                s.push(c);
            }
        }
    };
    while i < bytes.len() {
        let c = text[i..].chars().next().expect("in bounds");
        let start = i;
        match c {
            ' ' | '\t' | '\r' | '\n' => {
                i += 1;
                continue;
            }
            '(' => {
                out.push(Lexed {
                    token: Token::Open,
                    at: start,
                });
                i += 1;
            }
            ')' => {
                out.push(Lexed {
                    token: Token::Close,
                    at: start,
                });
                i += 1;
            }
            ',' => {
                out.push(Lexed {
                    token: Token::Comma,
                    at: start,
                });
                i += 1;
            }
            '\'' => {
                let (s, next) = quoted(i)?;
                out.push(Lexed {
                    token: Token::Text(s),
                    at: start,
                });
                i = next;
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || b"_.".contains(&bytes[i]))
                {
                    i += 1;
                }
                let word = text[start..i].to_string();
                if i < bytes.len() && bytes[i] == b'\'' {
                    let (member, next) = quoted(i)?;
                    out.push(Lexed {
                        token: Token::Enum(word, member),
                        at: start,
                    });
                    i = next;
                } else {
                    out.push(Lexed {
                        token: Token::Word(word),
                        at: start,
                    });
                }
            }
            c if c.is_ascii_digit() || c == '-' || c == '+' => {
                i += 1;
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || b":.+-".contains(&bytes[i]))
                {
                    i += 1;
                }
                out.push(Lexed {
                    token: Token::Bare(text[start..i].to_string()),
                    at: start,
                });
            }
            other => return Err(err(start, format!("unexpected character '{other}'"))),
        }
    }
    out.push(Lexed {
        token: Token::End,
        at: text.len(),
    });
    Ok(out)
}

struct Parser<'a> {
    text: &'a str,
    tokens: Vec<Lexed>,
    next: usize,
    depth: usize,
}

pub(super) fn parse(text: &str) -> Result<Filter, FilterError> {
    let mut p = Parser {
        text,
        tokens: lex(text)?,
        next: 0,
        depth: 0,
    };
    if p.peek() == &Token::End {
        return Err(p.error_here("the filter is empty".into()));
    }
    let f = p.or()?;
    match p.peek() {
        Token::End => Ok(f),
        Token::Close => Err(p.error_here("a ')' without its '('".into())),
        _ => Err(p.error_here(format!(
            "expected 'and', 'or' or the end of the filter, found {}",
            p.describe()
        ))),
    }
}

fn is_word(t: &Token, kw: &str) -> bool {
    matches!(t, Token::Word(w) if w.eq_ignore_ascii_case(kw))
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        &self.tokens[self.next].token
    }

    fn at(&self) -> usize {
        self.tokens[self.next].at
    }

    fn bump(&mut self) -> Token {
        let t = self.tokens[self.next].token.clone();
        if self.next + 1 < self.tokens.len() {
            self.next += 1;
        }
        t
    }

    fn error_at(&self, at: usize, message: String) -> FilterError {
        FilterError {
            column: column(self.text, at),
            message,
        }
    }

    fn error_here(&self, message: String) -> FilterError {
        self.error_at(self.at(), message)
    }

    fn describe(&self) -> String {
        match self.peek() {
            Token::Open => "'('".into(),
            Token::Close => "')'".into(),
            Token::Comma => "','".into(),
            Token::Word(w) => format!("'{w}'"),
            Token::Text(s) => format!("the string '{s}'"),
            Token::Enum(t, m) => format!("{t}'{m}'"),
            Token::Bare(b) => format!("'{b}'"),
            Token::End => "the end of the filter".into(),
        }
    }

    fn or(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.and()?;
        while is_word(self.peek(), "or") {
            self.bump();
            let right = self.and()?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.unary()?;
        while is_word(self.peek(), "and") {
            self.bump();
            let right = self.unary()?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Filter, FilterError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error_here(format!("nested more than {MAX_DEPTH} deep")));
        }
        let r = self.unary_inner();
        self.depth -= 1;
        r
    }

    fn unary_inner(&mut self) -> Result<Filter, FilterError> {
        if is_word(self.peek(), "not") {
            self.bump();
            return Ok(Filter::Not(Box::new(self.unary()?)));
        }
        if self.peek() == &Token::Open {
            let open = self.at();
            self.bump();
            let inner = self.or()?;
            if self.peek() != &Token::Close {
                return Err(self.error_at(open, "this '(' is never closed".into()));
            }
            self.bump();
            return Ok(inner);
        }
        let Token::Word(word) = self.peek().clone() else {
            return Err(self.error_here(format!(
                "expected a property name, 'not', '(' or a function, found {}",
                self.describe()
            )));
        };
        let word_at = self.at();
        self.bump();
        if let Some(function) = TextFunction::ALL
            .into_iter()
            .find(|f| f.keyword().eq_ignore_ascii_case(&word))
            && self.peek() == &Token::Open
        {
            return self.call(function);
        }
        if [
            "any",
            "all",
            "tolower",
            "toupper",
            "substring",
            "indexof",
            "length",
        ]
        .iter()
        .any(|f| f.eq_ignore_ascii_case(&word))
            && self.peek() == &Token::Open
        {
            return Err(self.error_at(
                word_at,
                format!(
                    "the function '{word}' is not supported (startswith, endswith and contains are)"
                ),
            ));
        }
        let property = self.property(&word, word_at)?;
        self.compare(property)
    }

    fn property(&self, word: &str, at: usize) -> Result<Property, FilterError> {
        properties::lookup(word).ok_or_else(|| {
            self.error_at(
                at,
                format!("'{word}' is not a managedDevice property this tool can check (docs/sources.md lists them)"),
            )
        })
    }

    fn call(&mut self, function: TextFunction) -> Result<Filter, FilterError> {
        self.bump(); // (
        let Token::Word(word) = self.peek().clone() else {
            return Err(self.error_here(format!(
                "expected a property name as the first argument of {}, found {}",
                function.keyword(),
                self.describe()
            )));
        };
        let at = self.at();
        self.bump();
        let property = self.property(&word, at)?;
        if property.kind != Kind::Text {
            return Err(self.error_at(
                at,
                format!(
                    "{} works on text; '{}' is not text",
                    function.keyword(),
                    property.name
                ),
            ));
        }
        if self.bump() != Token::Comma {
            return Err(self.error_at(
                self.tokens[self.next.saturating_sub(1)].at,
                format!(
                    "expected ',' after {} in {}(...)",
                    property.name,
                    function.keyword()
                ),
            ));
        }
        let Token::Text(value) = self.peek().clone() else {
            return Err(self.error_here(format!(
                "expected a quoted string as the second argument of {}, found {}",
                function.keyword(),
                self.describe()
            )));
        };
        self.bump();
        if self.peek() != &Token::Close {
            return Err(self.error_here(format!(
                "expected ')' to close {}(...), found {}",
                function.keyword(),
                self.describe()
            )));
        }
        self.bump();
        Ok(Filter::Call {
            function,
            property,
            value,
        })
    }

    fn compare(&mut self, property: Property) -> Result<Filter, FilterError> {
        let op_at = self.at();
        let op = match self.peek() {
            Token::Word(w) => {
                if w.eq_ignore_ascii_case("in") || w.eq_ignore_ascii_case("has") {
                    return Err(self.error_here(format!(
                        "'{w}' is not supported: write the values out with 'or' ({} eq 'a' or {} eq 'b')",
                        property.name, property.name
                    )));
                }
                CompareOp::ALL
                    .into_iter()
                    .find(|op| op.keyword().eq_ignore_ascii_case(w))
            }
            _ => None,
        };
        let Some(op) = op else {
            return Err(self.error_here(format!(
                "expected an operator (eq ne gt ge lt le) after {}, found {}",
                property.name,
                self.describe()
            )));
        };
        self.bump();
        let value_at = self.at();
        let value = self.literal(property)?;
        let ordered = matches!(property.kind, Kind::Number | Kind::DateTime | Kind::Text);
        if !matches!(op, CompareOp::Eq | CompareOp::Ne) {
            if value == Literal::Null {
                return Err(self.error_at(value_at, "null compares with eq or ne only".into()));
            }
            if !ordered {
                return Err(self.error_at(
                    op_at,
                    format!(
                        "{} is {}: it compares with eq or ne only",
                        property.name,
                        kind_name(property.kind)
                    ),
                ));
            }
        }
        Ok(Filter::Compare {
            property,
            op,
            value,
        })
    }

    fn literal(&mut self, property: Property) -> Result<Literal, FilterError> {
        let at = self.at();
        let token = self.peek().clone();
        let mismatch = |p: &Self| {
            p.error_at(
                at,
                format!(
                    "{} is {}; {} is not {}",
                    property.name,
                    kind_name(property.kind),
                    p.describe(),
                    example(property.kind)
                ),
            )
        };
        if is_word(&token, "null") {
            self.bump();
            return Ok(Literal::Null);
        }
        let value = match (property.kind, &token) {
            (Kind::Text, Token::Text(s)) => Literal::Text(s.clone()),
            (Kind::Enum, Token::Text(s)) => Literal::Text(s.clone()),
            (Kind::Enum, Token::Enum(t, m)) => Literal::Enum {
                type_name: t.clone(),
                member: m.clone(),
            },
            (Kind::Bool, Token::Word(w)) if w.eq_ignore_ascii_case("true") => Literal::Bool(true),
            (Kind::Bool, Token::Word(w)) if w.eq_ignore_ascii_case("false") => Literal::Bool(false),
            (Kind::Number, Token::Bare(b)) => Literal::Number(
                b.parse()
                    .map_err(|_| self.error_at(at, format!("'{b}' is not a whole number")))?,
            ),
            (Kind::DateTime, Token::Bare(b)) => {
                Literal::DateTime(parse_datetime(b).ok_or_else(|| {
                    self.error_at(
                        at,
                        format!("'{b}' is not a date-time such as 2026-01-31T00:00:00Z"),
                    )
                })?)
            }
            (Kind::DateTime, Token::Text(s)) => {
                return Err(self.error_at(
                    at,
                    format!("write a date-time unquoted: {} lt {s}", property.name),
                ));
            }
            _ => return Err(mismatch(self)),
        };
        self.bump();
        Ok(value)
    }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Text => "text",
        Kind::Enum => "an enumeration",
        Kind::Bool => "true or false",
        Kind::Number => "a number",
        Kind::DateTime => "a date-time",
    }
}

fn example(kind: Kind) -> &'static str {
    match kind {
        Kind::Text => "a quoted string such as 'macOS'",
        Kind::Enum => "a quoted member such as 'company'",
        Kind::Bool => "true or false",
        Kind::Number => "a whole number",
        Kind::DateTime => "a date-time such as 2026-01-31T00:00:00Z",
    }
}

/// RFC 3339 (`2026-01-31T08:00:00Z`, `…+02:00`, any fraction) or a bare date (midnight UTC).
pub(super) fn parse_datetime(s: &str) -> Option<time::OffsetDateTime> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = time::OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t);
    }
    let (y, rest) = s.split_once('-')?;
    let (m, d) = rest.split_once('-')?;
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return None;
    }
    let month = time::Month::try_from(m.parse::<u8>().ok()?).ok()?;
    let date = time::Date::from_calendar_date(y.parse().ok()?, month, d.parse().ok()?).ok()?;
    Some(date.midnight().assume_utc())
}
