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
    /// The team's members or grants changed.
    Team,
}

/// The channel daemons sharing a PostgreSQL store listen on.
pub(crate) const CHANNEL: &str = "authsome_changes";

/// This process's id among the daemons sharing a store, so each can skip
/// the notifications it sent itself.
pub(crate) fn replica_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        let mut b = [0u8; 8];
        let _ignored = crate::secret::fill_random(&mut b);
        b.iter().map(|x| format!("{x:02x}")).collect()
    })
}

impl Topic {
    /// The notification's text: small JSON, far below PostgreSQL's 8000 bytes.
    pub(crate) fn payload(&self) -> String {
        let v = match self {
            Topic::Provider(p) => {
                serde_json::json!({"v": 1, "topic": "provider", "provider": p, "from": replica_id()})
            }
            Topic::Providers => {
                serde_json::json!({"v": 1, "topic": "providers", "from": replica_id()})
            }
            Topic::Team => serde_json::json!({"v": 1, "topic": "team", "from": replica_id()}),
        };
        v.to_string()
    }

    /// Reads a notification's text; `None` for one this build does not know
    /// (a newer replica's), and for this process's own.
    pub(crate) fn parse(payload: &str) -> Option<Topic> {
        let v: serde_json::Value = serde_json::from_str(payload).ok()?;
        if v.get("from").and_then(|f| f.as_str()) == Some(replica_id()) {
            return None;
        }
        match v.get("topic")?.as_str()? {
            "provider" => Some(Topic::Provider(v.get("provider")?.as_str()?.to_string())),
            "providers" => Some(Topic::Providers),
            "team" => Some(Topic::Team),
            _ => None,
        }
    }
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
    Pg(postgres::Transaction<'c>),
}

impl Tx<'_> {
    /// Runs a statement that returns rows.
    pub(crate) fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>> {
        match &mut self.inner {
            TxInner::Sqlite(c) => sqlite_query(c, sql, params).map_err(|e| Error::db(self.what, e)),
            TxInner::Pg(tx) => pg_query(tx, sql, params).map_err(|e| Error::db(self.what, e)),
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
        let what = self.what;
        match &mut self.inner {
            TxInner::Sqlite(c) => {
                let mut st = c.prepare_cached(sql).map_err(|e| Error::db(what, e))?;
                let n = st
                    .execute(rusqlite::params_from_iter(params.iter()))
                    .map_err(|e| Error::db(what, e))?;
                Ok(n as u64)
            }
            TxInner::Pg(tx) => {
                let refs = pg_params(params);
                tx.execute(dollar_placeholders(sql).as_ref(), &refs)
                    .map_err(|e| Error::db(what, e))
            }
        }
    }

    /// Tells the other daemons on this store, when the transaction commits.
    pub(crate) fn notify(&mut self, topic: &Topic) -> Result<()> {
        match &self.inner {
            TxInner::Sqlite(_) => Ok(()),
            TxInner::Pg(_) => {
                let payload = topic.payload();
                self.execute(
                    "SELECT pg_notify(?1, ?2)",
                    &[Value::from(CHANNEL), Value::from(payload)],
                )
                .map(drop)
            }
        }
    }

    /// Serialises writers on `key` until the transaction ends. SQLite's
    /// write transaction already holds the whole file.
    pub(crate) fn lock_key(&mut self, key: &str) -> Result<()> {
        match &self.inner {
            TxInner::Sqlite(_) => Ok(()),
            TxInner::Pg(_) => self
                .execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended(?1, 0))",
                    &[Value::from(key)],
                )
                .map(drop),
        }
    }

    /// Runs several `;`-separated statements without parameters (a migration).
    pub(crate) fn batch(&mut self, sql: &str) -> Result<()> {
        let what = self.what;
        match &mut self.inner {
            TxInner::Sqlite(c) => c.execute_batch(sql).map_err(|e| Error::db(what, e)),
            TxInner::Pg(tx) => tx.batch_execute(sql).map_err(|e| Error::db(what, e)),
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

impl postgres::types::ToSql for Value {
    fn to_sql(
        &self,
        ty: &postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>>
    {
        use postgres::types::{IsNull, Type};
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(v) => match *ty {
                Type::INT8 => v.to_sql(ty, out),
                Type::INT4 => i32::try_from(*v)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*v)?.to_sql(ty, out),
                Type::BOOL => (*v != 0).to_sql(ty, out),
                Type::TEXT | Type::VARCHAR => v.to_string().to_sql(ty, out),
                _ => Err(format!("an integer cannot be sent as {ty}").into()),
            },
            Value::Text(v) => v.as_str().to_sql(ty, out),
            Value::Blob(v) => v.as_slice().to_sql(ty, out),
        }
    }

    fn accepts(_ty: &postgres::types::Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

fn pg_params(params: &[Value]) -> Vec<&(dyn postgres::types::ToSql + Sync)> {
    params
        .iter()
        .map(|p| p as &(dyn postgres::types::ToSql + Sync))
        .collect()
}

fn pg_query(
    tx: &mut postgres::Transaction<'_>,
    sql: &str,
    params: &[Value],
) -> std::result::Result<Vec<Row>, postgres::Error> {
    use postgres::types::Type;
    let rows = tx.query(dollar_placeholders(sql).as_ref(), &pg_params(params))?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let mut row = Vec::with_capacity(r.len());
        for (i, col) in r.columns().iter().enumerate() {
            let v = match *col.type_() {
                Type::INT8 => r.try_get::<_, Option<i64>>(i)?.map(Value::Int),
                Type::INT4 => r
                    .try_get::<_, Option<i32>>(i)?
                    .map(|v| Value::Int(v.into())),
                Type::INT2 => r
                    .try_get::<_, Option<i16>>(i)?
                    .map(|v| Value::Int(v.into())),
                Type::BOOL => r.try_get::<_, Option<bool>>(i)?.map(Value::from),
                Type::BYTEA => r.try_get::<_, Option<Vec<u8>>>(i)?.map(Value::Blob),
                // TEXT, VARCHAR, NAME, and anything else the server can send as text
                _ => r.try_get::<_, Option<String>>(i)?.map(Value::Text),
            };
            row.push(v.unwrap_or(Value::Null));
        }
        out.push(Row(row));
    }
    Ok(out)
}

/// `?N` placeholders as PostgreSQL's `$N`, outside quoted text.
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
