//! The SQL the vault speaks, over either store: an embedded SQLite file or a
//! PostgreSQL database shared by several daemons.
//!
//! Why a shim and not a trait of vault operations: the vault's rules live
//! inside its transactions (the default connection's handover, the
//! compare-and-swap on a refresh token, the one-time initialisation of the
//! data key), and two copies of those rules would drift. The SQL itself is
//! portable (`ON CONFLICT … DO UPDATE`, `RETURNING`, partial unique
//! indexes), so the vault writes each statement once with `?N`
//! placeholders; for PostgreSQL they become `$N`. Encryption stays above
//! this module, so a sealed field is the same bytes in either store.
//!
//! Everything here is blocking: the vault is called from `spawn_blocking`
//! (or a plain thread), never on an async worker.

use std::borrow::Cow;

pub(crate) use crate::error::DbError;
use crate::error::{Error, Result};

/// A parameter or a column value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Null,
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
}

impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Int(v)
    }
}
impl From<u32> for Value {
    fn from(v: u32) -> Value {
        Value::Int(v.into())
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Int(v.into())
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Text(v.to_string())
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Value {
        Value::Text(v.clone())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Text(v)
    }
}
impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Value {
        Value::Blob(v)
    }
}
impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Value {
        Value::Blob(v.to_vec())
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Null, Into::into)
    }
}
impl From<&Option<String>> for Value {
    fn from(v: &Option<String>) -> Value {
        v.as_deref().into()
    }
}
impl From<&Option<Vec<u8>>> for Value {
    fn from(v: &Option<Vec<u8>>) -> Value {
        v.as_deref().into()
    }
}

/// Builds a `&[Value]` parameter list: `params![a, b, c]`.
macro_rules! params {
    ($($v:expr),* $(,)?) => { &[$($crate::vault::db::Value::from($v)),*][..] };
}
pub(crate) use params;

/// One result row. Getters take the column index and say which column was
/// not what was expected, instead of panicking.
#[derive(Debug)]
pub(crate) struct Row(pub(crate) Vec<Value>);

impl Row {
    fn at(&self, i: usize) -> Result<&Value> {
        self.0.get(i).ok_or_else(|| bad_column(i, "missing"))
    }

    pub(crate) fn i64(&self, i: usize) -> Result<i64> {
        match self.at(i)? {
            Value::Int(v) => Ok(*v),
            other => Err(bad_column(i, kind(other))),
        }
    }

    pub(crate) fn opt_i64(&self, i: usize) -> Result<Option<i64>> {
        match self.at(i)? {
            Value::Null => Ok(None),
            Value::Int(v) => Ok(Some(*v)),
            other => Err(bad_column(i, kind(other))),
        }
    }

    pub(crate) fn u32(&self, i: usize) -> Result<u32> {
        let v = self.i64(i)?;
        u32::try_from(v).map_err(|_err| bad_column(i, "out of range"))
    }

    pub(crate) fn bool(&self, i: usize) -> Result<bool> {
        Ok(self.i64(i)? != 0)
    }

    pub(crate) fn str(&self, i: usize) -> Result<String> {
        match self.at(i)? {
            Value::Text(v) => Ok(v.clone()),
            other => Err(bad_column(i, kind(other))),
        }
    }

    pub(crate) fn opt_str(&self, i: usize) -> Result<Option<String>> {
        match self.at(i)? {
            Value::Null => Ok(None),
            Value::Text(v) => Ok(Some(v.clone())),
            other => Err(bad_column(i, kind(other))),
        }
    }

    pub(crate) fn opt_blob(&self, i: usize) -> Result<Option<Vec<u8>>> {
        match self.at(i)? {
            Value::Null => Ok(None),
            Value::Blob(v) => Ok(Some(v.clone())),
            other => Err(bad_column(i, kind(other))),
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Int(_) => "an integer",
        Value::Text(_) => "text",
        Value::Blob(_) => "bytes",
    }
}

fn bad_column(i: usize, found: &str) -> Error {
    Error::Corrupt {
        what: format!("a stored row (column {i} is {found})"),
    }
}

/// What changed, for the other daemons sharing a store. Sent inside the
/// writing transaction, so it is delivered exactly when the change commits
/// (PostgreSQL); a single SQLite file has no one else to tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Topic {
    /// A connection of this provider changed.
    Provider(String),
    /// The catalogue of custom providers changed.
    Providers,
}

/// One statement-level view of the store, inside a transaction that
/// [`super::Vault::write`] or [`super::Vault::read`] opened. Every error
/// carries the context the transaction was opened with.
pub(crate) struct Tx<'c> {
    pub(super) inner: TxInner<'c>,
    pub(super) what: &'c str,
}

pub(super) enum TxInner<'c> {
    Sqlite(&'c rusqlite::Connection),
}

impl Tx<'_> {
    fn err(&self, e: impl Into<DbError>) -> Error {
        Error::db(self.what, e.into())
    }

    /// Runs a statement that returns rows.
    pub(crate) fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>> {
        match &self.inner {
            TxInner::Sqlite(c) => sqlite_query(c, sql, params).map_err(|e| self.err(e)),
        }
    }

    /// The first row, if any.
    pub(crate) fn query_opt(&mut self, sql: &str, params: &[Value]) -> Result<Option<Row>> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// Exactly one row.
    pub(crate) fn query_one(&mut self, sql: &str, params: &[Value]) -> Result<Row> {
        self.query_opt(sql, params)?.ok_or_else(|| Error::Corrupt {
            what: format!("the store ({}: no row)", self.what),
        })
    }

    /// Runs a statement; the number of rows it changed.
    pub(crate) fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64> {
        match &self.inner {
            TxInner::Sqlite(c) => {
                let mut st = c.prepare_cached(sql).map_err(|e| self.err(e))?;
                let n = st
                    .execute(rusqlite::params_from_iter(params.iter()))
                    .map_err(|e| self.err(e))?;
                Ok(n as u64)
            }
        }
    }

    /// Tells the other daemons on this store, when the transaction commits.
    pub(crate) fn notify(&mut self, _topic: &Topic) -> Result<()> {
        match &self.inner {
            TxInner::Sqlite(_) => Ok(()),
        }
    }

    /// Serialises writers on `key` until the transaction ends. SQLite's
    /// write transaction already holds the whole file.
    pub(crate) fn lock_key(&mut self, _key: &str) -> Result<()> {
        match &self.inner {
            TxInner::Sqlite(_) => Ok(()),
        }
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Int(v) => ValueRef::Integer(*v),
            Value::Text(v) => ValueRef::Text(v.as_bytes()),
            Value::Blob(v) => ValueRef::Blob(v),
        }))
    }
}

fn sqlite_query(
    c: &rusqlite::Connection,
    sql: &str,
    params: &[Value],
) -> std::result::Result<Vec<Row>, rusqlite::Error> {
    use rusqlite::types::ValueRef;
    let mut st = c.prepare_cached(sql)?;
    let n = st.column_count();
    let mut rows = st.query(rusqlite::params_from_iter(params.iter()))?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let mut row = Vec::with_capacity(n);
        for i in 0..n {
            row.push(match r.get_ref(i)? {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(v) => Value::Int(v),
                // The vault stores no floats; keep one readable rather than fail.
                ValueRef::Real(v) => Value::Text(v.to_string()),
                ValueRef::Text(v) => Value::Text(String::from_utf8_lossy(v).into_owned()),
                ValueRef::Blob(v) => Value::Blob(v.to_vec()),
            });
        }
        out.push(Row(row));
    }
    Ok(out)
}

/// `?N` placeholders as PostgreSQL's `$N`, outside quoted text.
#[allow(dead_code)] // used by the PostgreSQL store
pub(crate) fn dollar_placeholders(sql: &str) -> Cow<'_, str> {
    if !sql.contains('?') {
        return Cow::Borrowed(sql);
    }
    let mut out = String::with_capacity(sql.len());
    let mut quote: Option<char> = None;
    for ch in sql.chars() {
        match quote {
            Some(q) if ch == q => quote = None,
            Some(_) => {}
            None if ch == '\'' || ch == '"' => quote = Some(ch),
            None if ch == '?' => {
                out.push('$');
                continue;
            }
            None => {}
        }
        out.push(ch);
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_dollars_outside_quotes_only() {
        assert_eq!(
            dollar_placeholders("SELECT a FROM t WHERE b = ?1 AND c = '?2' AND \"d?\" = ?10"),
            "SELECT a FROM t WHERE b = $1 AND c = '?2' AND \"d?\" = $10"
        );
        assert_eq!(dollar_placeholders("SELECT 1"), "SELECT 1");
        // a doubled quote inside text stays inside the text
        assert_eq!(
            dollar_placeholders("SELECT 'it''s ?' , ?2"),
            "SELECT 'it''s ?' , $2"
        );
    }

    #[test]
    fn row_getters_name_the_column_instead_of_panicking() {
        let r = Row(vec![Value::Int(5), Value::Null, Value::Text("x".into())]);
        assert_eq!(r.i64(0).unwrap(), 5);
        assert!(r.bool(0).unwrap());
        assert_eq!(r.opt_str(1).unwrap(), None);
        assert_eq!(r.str(2).unwrap(), "x");
        let err = r.i64(2).unwrap_err().to_string();
        assert!(err.contains("column 2 is text"), "{err}");
        assert!(r.str(1).is_err());
        assert!(r.u32(9).is_err());
    }
}
