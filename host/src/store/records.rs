//! The generic repository behind every [`ResourceSpec`]: get, list, create, update, delete.
//!
//! Each mutation and its audit event commit in one transaction, so the trail can never
//! miss a change nor record one that did not happen.

use rand::RngCore as _;
use serde_json::{Map, Value};
use sqlx::any::AnyRow;
use sqlx::{Any, Row as _, Transaction};

use super::sql::{Param, Sql, param_for};
use super::{Store, StoreError, audit};
use crate::domain::audit::{Actor, AuditEntry};
use crate::domain::listing::{FilterOp, ListQuery, Paging, Sort, encode_cursor};
use crate::domain::resource::{CREATED_AT, DeleteMode, FieldKind, ID, ResourceSpec, UPDATED_AT};
use crate::secrets;

/// A stored record as the API serves it.
pub type Record = Map<String, Value>;

/// One page of a list.
#[derive(Debug)]
pub struct ListResult {
    /// Rows of this page.
    pub rows: Vec<Record>,
    /// Rows matching the filters across all pages.
    pub total: i64,
    /// Cursor for the next page (cursor mode, when more rows follow).
    pub next_cursor: Option<String>,
}

/// Errors specific to writes through the generic repository.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// A reference field names a record that does not exist.
    #[error("{field}: {resource} \"{id}\" does not exist")]
    UnknownReference {
        /// Field holding the reference.
        field: String,
        /// Referenced resource.
        resource: String,
        /// The missing id.
        id: String,
    },
    /// Anything from the store.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for WriteError {
    fn from(e: sqlx::Error) -> Self {
        WriteError::Store(e.into())
    }
}

/// A fresh random id with the resource's prefix (64 random bits).
pub fn new_id(prefix: &str) -> String {
    let mut bytes = [0u8; 8];
    rand::thread_rng().fill_bytes(&mut bytes);
    certctl_core::id::from_random(prefix, &bytes)
}

fn select_list(spec: &ResourceSpec) -> String {
    spec.columns()
        .iter()
        .map(|(c, _)| quote(c))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Quotes a column name; several (`type`, `read`, `timestamp`) are keywords somewhere.
fn quote(column: &str) -> String {
    format!("\"{column}\"")
}

fn decode_row(spec: &ResourceSpec, row: &AnyRow) -> Result<Record, StoreError> {
    let mut out = Map::new();
    for (i, (name, kind)) in spec.columns().into_iter().enumerate() {
        let value = match kind {
            FieldKind::Int { .. } => row
                .try_get::<Option<i64>, _>(i)
                .map_err(|e| StoreError::Corrupt(format!("{name}: {e}")))?
                .map(Value::from)
                .unwrap_or(Value::Null),
            FieldKind::Bool => match row.try_get::<Option<bool>, _>(i) {
                Ok(v) => v.map(Value::Bool).unwrap_or(Value::Null),
                Err(_) => row
                    .try_get::<Option<i64>, _>(i)
                    .map_err(|e| StoreError::Corrupt(format!("{name}: {e}")))?
                    .map(|n| Value::Bool(n != 0))
                    .unwrap_or(Value::Null),
            },
            FieldKind::StringList
            | FieldKind::IntList
            | FieldKind::Object
            | FieldKind::ObjectList => match row
                .try_get::<Option<String>, _>(i)
                .map_err(|e| StoreError::Corrupt(format!("{name}: {e}")))?
            {
                Some(text) => serde_json::from_str(&text)
                    .map_err(|e| StoreError::Corrupt(format!("{name}: {e}")))?,
                None => Value::Null,
            },
            FieldKind::Text
            | FieldKind::Email
            | FieldKind::Enum(_)
            | FieldKind::Connector { .. }
            | FieldKind::Timestamp => row
                .try_get::<Option<String>, _>(i)
                .map_err(|e| StoreError::Corrupt(format!("{name}: {e}")))?
                .map(Value::String)
                .unwrap_or(Value::Null),
        };
        out.insert(name.to_owned(), value);
    }
    Ok(out)
}

/// Reads one record by id.
pub async fn get(store: &Store, spec: &ResourceSpec, id: &str) -> Result<Record, StoreError> {
    let mut sql = Sql::new(
        store.dialect(),
        &format!(
            "SELECT {} FROM {} WHERE id = ",
            select_list(spec),
            spec.table
        ),
    );
    sql.bind_text(id);
    let row = sql.query().fetch_optional(store.pool()).await?;
    match row {
        Some(row) => decode_row(spec, &row),
        None => Err(not_found(spec, id)),
    }
}

async fn get_in(
    tx: &mut Transaction<'_, Any>,
    store: &Store,
    spec: &ResourceSpec,
    id: &str,
) -> Result<Option<Record>, StoreError> {
    let mut sql = Sql::new(
        store.dialect(),
        &format!(
            "SELECT {} FROM {} WHERE id = ",
            select_list(spec),
            spec.table
        ),
    );
    sql.bind_text(id);
    let row = sql.query().fetch_optional(&mut **tx).await?;
    row.map(|r| decode_row(spec, &r)).transpose()
}

fn not_found(spec: &ResourceSpec, id: &str) -> StoreError {
    StoreError::NotFound {
        resource: spec.singular.to_owned(),
        id: id.to_owned(),
    }
}

/// The expression a column sorts by: NULLs become the lowest value of their type so that
/// ordering and keyset comparison agree.
fn sort_expr(sort: &Sort) -> String {
    match sort.kind {
        FieldKind::Int { .. } => format!("COALESCE({}, -9223372036854775807)", quote(sort.column)),
        FieldKind::Bool => quote(sort.column),
        _ => format!("COALESCE({}, '')", quote(sort.column)),
    }
}

fn cursor_param(sort: &Sort, v: &Value) -> Param {
    match sort.kind {
        FieldKind::Int { .. } => Param::Int(Some(v.as_i64().unwrap_or(-9223372036854775807))),
        FieldKind::Bool => Param::Bool(v.as_bool()),
        _ => Param::Text(Some(v.as_str().unwrap_or("").to_owned())),
    }
}

fn push_filters(sql: &mut Sql, spec: &ResourceSpec, q: &ListQuery) {
    sql.push(" WHERE 1=1");
    for f in &q.filters {
        let kind = spec.column_kind(f.column).unwrap_or(FieldKind::Text);
        match &f.op {
            FilterOp::AnyOf(values) => {
                sql.push(" AND ").push(&quote(f.column)).push(" IN (");
                for (i, v) in values.iter().enumerate() {
                    if i > 0 {
                        sql.push(", ");
                    }
                    sql.bind(param_for(kind, v));
                }
                sql.push(")");
            }
            FilterOp::Before(t) => {
                sql.push(" AND ").push(&quote(f.column)).push(" < ");
                sql.bind_text(t.clone());
            }
            FilterOp::AtOrAfter(t) => {
                sql.push(" AND ").push(&quote(f.column)).push(" >= ");
                sql.bind_text(t.clone());
            }
        }
    }
}

/// Lists records with filters, sort and either page or cursor pagination.
pub async fn list(
    store: &Store,
    spec: &ResourceSpec,
    q: &ListQuery,
) -> Result<ListResult, StoreError> {
    let mut count = Sql::new(
        store.dialect(),
        &format!("SELECT COUNT(*) FROM {}", spec.table),
    );
    push_filters(&mut count, spec, q);
    let total: i64 = count.query().fetch_one(store.pool()).await?.try_get(0)?;

    let mut sql = Sql::new(
        store.dialect(),
        &format!("SELECT {} FROM {}", select_list(spec), spec.table),
    );
    push_filters(&mut sql, spec, q);
    let expr = sort_expr(&q.sort);
    let (cmp, dir) = if q.sort.descending {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    let limit = match &q.paging {
        Paging::Offset { per_page, .. } => *per_page,
        Paging::Cursor { limit, .. } => *limit,
    };
    if let Paging::Cursor {
        after: Some((v, id)),
        ..
    } = &q.paging
    {
        sql.push(&format!(" AND ({expr} {cmp} "))
            .bind(cursor_param(&q.sort, v))
            .push(&format!(" OR ({expr} = "))
            .bind(cursor_param(&q.sort, v))
            .push(&format!(" AND id {cmp} "))
            .bind_text(id.clone())
            .push("))");
    }
    sql.push(&format!(" ORDER BY {expr} {dir}, id {dir} LIMIT "));
    // Fetch one more row in cursor mode to know whether a next page exists.
    let fetch = if matches!(q.paging, Paging::Cursor { .. }) {
        limit + 1
    } else {
        limit
    };
    sql.bind(Param::Int(Some(fetch)));
    if let Paging::Offset { page, per_page } = &q.paging {
        sql.push(" OFFSET ")
            .bind(Param::Int(Some((page - 1).saturating_mul(*per_page))));
    }
    let rows = sql.query().fetch_all(store.pool()).await?;
    let mut rows = rows
        .iter()
        .map(|r| decode_row(spec, r))
        .collect::<Result<Vec<_>, _>>()?;
    let mut next_cursor = None;
    if matches!(q.paging, Paging::Cursor { .. }) && rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        next_cursor = rows.last().map(|last| encode_cursor(&q.sort, last));
    }
    Ok(ListResult {
        rows,
        total,
        next_cursor,
    })
}

async fn check_references(
    tx: &mut Transaction<'_, Any>,
    store: &Store,
    spec: &ResourceSpec,
    values: &Record,
) -> Result<(), WriteError> {
    for field in spec.fields {
        let (Some(target), Some(Value::String(id))) = (field.references, values.get(field.name))
        else {
            continue;
        };
        let Some(target_spec) = crate::domain::resource(target) else {
            continue;
        };
        let mut sql = Sql::new(
            store.dialect(),
            &format!("SELECT 1 FROM {} WHERE id = ", target_spec.table),
        );
        sql.bind_text(id.clone());
        if sql.query().fetch_optional(&mut **tx).await?.is_none() {
            return Err(WriteError::UnknownReference {
                field: field.name.to_owned(),
                resource: target_spec.singular.to_owned(),
                id: id.clone(),
            });
        }
    }
    Ok(())
}

/// Work that must commit together with a new record (e.g. a certificate's issuance job).
pub type AfterCreate = for<'a> fn(
    &'a mut Transaction<'static, Any>,
    &'a Store,
    &'a Record,
    &'a str,
    &'a Actor,
) -> futures_util::future::BoxFuture<'a, Result<(), StoreError>>;

/// Inserts a validated record (id already chosen) and its `{singular}_created` audit event.
pub async fn create(
    store: &Store,
    spec: &ResourceSpec,
    id: &str,
    values: Record,
    now: &str,
    actor: &Actor,
) -> Result<Record, WriteError> {
    create_with(store, spec, id, values, now, actor, None).await
}

/// [`create`] plus `after`, run inside the same transaction.
pub async fn create_with(
    store: &Store,
    spec: &ResourceSpec,
    id: &str,
    values: Record,
    now: &str,
    actor: &Actor,
    after: Option<AfterCreate>,
) -> Result<Record, WriteError> {
    create_audited(store, spec, id, values, now, actor, after, &[]).await
}

/// [`create_with`] for a record whose `config` holds secrets: the audit event shows the
/// keys in `secret` (and any sealed value) as `"***"`.
#[allow(clippy::too_many_arguments)]
pub async fn create_audited(
    store: &Store,
    spec: &ResourceSpec,
    id: &str,
    values: Record,
    now: &str,
    actor: &Actor,
    after: Option<AfterCreate>,
    secret: &[String],
) -> Result<Record, WriteError> {
    let mut tx = store.begin_write().await?;
    if get_in(&mut tx, store, spec, id).await?.is_some() {
        return Err(
            StoreError::Conflict(format!("{} \"{id}\" already exists", spec.singular)).into(),
        );
    }
    check_references(&mut tx, store, spec, &values).await?;

    let mut names = vec![quote(ID)];
    let mut params = vec![Param::Text(Some(id.to_owned()))];
    for field in spec.fields {
        if let Some(v) = values.get(field.name) {
            names.push(quote(field.name));
            params.push(param_for(field.kind, v));
        }
    }
    if spec.timestamps {
        for c in [CREATED_AT, UPDATED_AT] {
            names.push(quote(c));
            params.push(Param::Text(Some(now.to_owned())));
        }
    }
    let mut sql = Sql::new(
        store.dialect(),
        &format!("INSERT INTO {} ({}) VALUES (", spec.table, names.join(", ")),
    );
    for (i, p) in params.into_iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.bind(p);
    }
    sql.push(")");
    sql.query().execute(&mut *tx).await?;

    let record = get_in(&mut tx, store, spec, id)
        .await?
        .ok_or_else(|| not_found(spec, id))?;
    audit::append(
        &mut tx,
        store.dialect(),
        &AuditEntry {
            actor: actor.clone(),
            action: format!("{}_created", spec.singular),
            resource_type: spec.singular.to_owned(),
            resource_id: id.to_owned(),
            details: Value::Object(audited_values(values, secret)),
        },
        now,
    )
    .await?;
    if let Some(after) = after {
        after(&mut tx, store, &record, now, actor).await?;
    }
    tx.commit().await?;
    Ok(record)
}

/// Applies the validated changes that differ from the stored values and records
/// `{singular}_updated` with those field names and a diff (`changes`: each field's
/// `from`/`to`; a `config` key by key); with none, answers the record untouched.
pub async fn update(
    store: &Store,
    spec: &ResourceSpec,
    id: &str,
    changes: Record,
    now: &str,
    actor: &Actor,
) -> Result<Record, WriteError> {
    update_audited(store, spec, id, changes, now, actor, &[]).await
}

/// [`update`] for a record whose `config` holds secrets: the diff names a changed key in
/// `secret` (or a sealed value) but shows its values as `"***"`.
pub async fn update_audited(
    store: &Store,
    spec: &ResourceSpec,
    id: &str,
    changes: Record,
    now: &str,
    actor: &Actor,
    secret: &[String],
) -> Result<Record, WriteError> {
    let mut tx = store.begin_write().await?;
    let Some(current) = get_in(&mut tx, store, spec, id).await? else {
        return Err(not_found(spec, id).into());
    };
    // Only real changes count: a no-op update (`{}`, or the current values sent back)
    // leaves updated_at alone and writes no audit event.
    let mut changes = changes;
    changes.retain(|field, value| current.get(field) != Some(value));
    if changes.is_empty() {
        return Ok(current);
    }
    check_references(&mut tx, store, spec, &changes).await?;
    let mut sql = Sql::new(store.dialect(), &format!("UPDATE {} SET ", spec.table));
    let mut first = true;
    for field in spec.fields {
        if let Some(v) = changes.get(field.name) {
            if !first {
                sql.push(", ");
            }
            first = false;
            sql.push(&quote(field.name))
                .push(" = ")
                .bind(param_for(field.kind, v));
        }
    }
    if spec.timestamps {
        if !first {
            sql.push(", ");
        }
        first = false;
        sql.push(&quote(UPDATED_AT)).push(" = ").bind_text(now);
    }
    if !first {
        sql.push(" WHERE id = ").bind_text(id);
        sql.query().execute(&mut *tx).await?;
    }
    let record = get_in(&mut tx, store, spec, id)
        .await?
        .ok_or_else(|| not_found(spec, id))?;
    let changed: Vec<Value> = changes.keys().cloned().map(Value::String).collect();
    let diff: Map<String, Value> = changes
        .iter()
        .map(|(field, to)| {
            let from = current.get(field).unwrap_or(&Value::Null);
            let shown = if field == secrets::CONFIG_FIELD {
                secrets::redacted_diff(from, to, secret)
            } else {
                serde_json::json!({"from": from, "to": to})
            };
            (field.clone(), shown)
        })
        .collect();
    audit::append(
        &mut tx,
        store.dialect(),
        &AuditEntry {
            actor: actor.clone(),
            action: format!("{}_updated", spec.singular),
            resource_type: spec.singular.to_owned(),
            resource_id: id.to_owned(),
            details: serde_json::json!({ "changed_fields": changed, "changes": diff }),
        },
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(record)
}

/// The values of a new record as its audit event shows them: `config` redacted.
fn audited_values(mut values: Record, secret: &[String]) -> Record {
    if let Some(config) = values.get_mut(secrets::CONFIG_FIELD) {
        *config = secrets::redact(config, secret);
    }
    values
}

/// Deletes (or archives, per the spec) a record and records the matching audit event.
pub async fn delete(
    store: &Store,
    spec: &ResourceSpec,
    id: &str,
    now: &str,
    actor: &Actor,
) -> Result<(), WriteError> {
    let mut tx = store.begin_write().await?;
    if get_in(&mut tx, store, spec, id).await?.is_none() {
        return Err(not_found(spec, id).into());
    }
    let action = match spec.delete {
        DeleteMode::Remove => {
            if let Some(referrer) = find_referrer(&mut tx, store, spec, id).await? {
                return Err(StoreError::Conflict(format!(
                    "{} \"{id}\" is still referenced by {referrer}; remove or re-point that first",
                    spec.singular
                ))
                .into());
            }
            let mut sql = Sql::new(
                store.dialect(),
                &format!("DELETE FROM {} WHERE id = ", spec.table),
            );
            sql.bind_text(id);
            sql.query().execute(&mut *tx).await?;
            "deleted"
        }
        DeleteMode::Archive { field, value } => {
            let mut sql = Sql::new(
                store.dialect(),
                &format!("UPDATE {} SET {} = ", spec.table, quote(field)),
            );
            sql.bind_text(value);
            if spec.timestamps {
                sql.push(&format!(", {} = ", quote(UPDATED_AT)))
                    .bind_text(now);
            }
            sql.push(" WHERE id = ").bind_text(id);
            sql.query().execute(&mut *tx).await?;
            "archived"
        }
        DeleteMode::Forbidden => {
            return Err(StoreError::Conflict(format!(
                "{} records cannot be deleted",
                spec.singular
            ))
            .into());
        }
    };
    audit::append(
        &mut tx,
        store.dialect(),
        &AuditEntry {
            actor: actor.clone(),
            action: format!("{}_{action}", spec.singular),
            resource_type: spec.singular.to_owned(),
            resource_id: id.to_owned(),
            details: Value::Object(Map::new()),
        },
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Names the first resource still pointing at `id`, so a refused delete can say which.
async fn find_referrer(
    tx: &mut Transaction<'_, Any>,
    store: &Store,
    spec: &ResourceSpec,
    id: &str,
) -> Result<Option<String>, StoreError> {
    for other in crate::domain::RESOURCES {
        for field in other
            .fields
            .iter()
            .filter(|f| f.references == Some(spec.path))
        {
            let mut sql = Sql::new(
                store.dialect(),
                &format!(
                    "SELECT id FROM {} WHERE {} = ",
                    other.table,
                    quote(field.name)
                ),
            );
            sql.bind_text(id).push(" LIMIT 1");
            if let Some(row) = sql.query().fetch_optional(&mut **tx).await? {
                let rid: String = row.try_get(0)?;
                return Ok(Some(format!("{} \"{rid}\"", other.singular)));
            }
        }
    }
    Ok(None)
}
