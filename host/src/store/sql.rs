//! A small SQL text builder that writes each dialect's placeholders and binds values in order.

use serde_json::Value;
use sqlx::Any;
use sqlx::any::AnyArguments;
use sqlx::query::Query;

/// The two supported backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite: `?` placeholders, booleans as 0/1.
    Sqlite,
    /// PostgreSQL: `$n` placeholders, native booleans.
    Postgres,
}

impl Dialect {
    /// Picks the dialect from a database URL scheme.
    pub fn from_url(url: &str) -> Option<Self> {
        if url.starts_with("sqlite:") {
            Some(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Self::Postgres)
        } else {
            None
        }
    }
}

/// A value bound to a placeholder.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    /// Text (also JSON documents and timestamps), possibly NULL.
    Text(Option<String>),
    /// 64-bit integer, possibly NULL.
    Int(Option<i64>),
    /// Boolean, possibly NULL.
    Bool(Option<bool>),
}

/// SQL text plus its parameters, built left to right.
#[derive(Debug)]
pub struct Sql {
    dialect: Dialect,
    text: String,
    params: Vec<Param>,
}

impl Sql {
    /// Starts a statement.
    pub fn new(dialect: Dialect, text: &str) -> Self {
        Self {
            dialect,
            text: text.to_owned(),
            params: Vec::new(),
        }
    }

    /// Appends SQL text (never client input).
    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends a placeholder bound to `param`.
    pub fn bind(&mut self, param: Param) -> &mut Self {
        self.params.push(param);
        match self.dialect {
            Dialect::Sqlite => self.text.push('?'),
            Dialect::Postgres => {
                self.text.push('$');
                self.text.push_str(&self.params.len().to_string());
            }
        }
        self
    }

    /// Appends a text placeholder.
    pub fn bind_text(&mut self, s: impl Into<String>) -> &mut Self {
        self.bind(Param::Text(Some(s.into())))
    }

    /// The SQL text (for logs and tests).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// A sqlx query with every parameter bound.
    pub fn query(&self) -> Query<'_, Any, AnyArguments<'_>> {
        let mut q = sqlx::query(&self.text);
        for p in &self.params {
            q = match p {
                Param::Text(v) => q.bind(v.clone()),
                Param::Int(v) => q.bind(*v),
                Param::Bool(v) => q.bind(*v),
            };
        }
        q
    }
}

/// Converts a validated JSON value to the parameter for a column of `kind`.
pub fn param_for(kind: crate::domain::resource::FieldKind, value: &Value) -> Param {
    use crate::domain::resource::FieldKind::*;
    match kind {
        Int { .. } => Param::Int(value.as_i64()),
        Bool => Param::Bool(value.as_bool()),
        StringList | IntList | Object | ObjectList => Param::Text(if value.is_null() {
            None
        } else {
            Some(value.to_string())
        }),
        Text | Email | Enum(_) | Connector { .. } | Timestamp => {
            Param::Text(value.as_str().map(str::to_owned))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_follow_the_dialect() {
        let mut a = Sql::new(Dialect::Sqlite, "SELECT * FROM t WHERE a = ");
        a.bind_text("x").push(" AND b = ").bind(Param::Int(Some(1)));
        assert_eq!(a.text(), "SELECT * FROM t WHERE a = ? AND b = ?");
        let mut b = Sql::new(Dialect::Postgres, "SELECT * FROM t WHERE a = ");
        b.bind_text("x").push(" AND b = ").bind(Param::Int(Some(1)));
        assert_eq!(b.text(), "SELECT * FROM t WHERE a = $1 AND b = $2");
    }
}
