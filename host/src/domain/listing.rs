//! Turning list query parameters into a validated [`ListQuery`].
//!
//! `?page=&per_page=` or `?cursor=&page_size=`, `?sort=-field`, `?fields=a,b`, equality
//! filters on filterable fields (comma-separated values mean "any of"), and time ranges.
//! Unknown parameters are refused so that a typo never silently widens a result.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use super::resource::{FieldError, FieldKind, ResourceSpec, UPDATED_AT, parse_filter_value};

/// Largest page a client may ask for.
pub const MAX_PAGE_SIZE: i64 = 500;
/// Page size when the client gives none.
pub const DEFAULT_PAGE_SIZE: i64 = 50;

/// A comparison in a list query.
#[derive(Debug, Clone, PartialEq)]
pub enum FilterOp {
    /// Column equals one of the values.
    AnyOf(Vec<Value>),
    /// Column is strictly before the timestamp.
    Before(String),
    /// Column is at or after the timestamp.
    AtOrAfter(String),
}

/// One filter on one column.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    /// Column name (validated against the spec).
    pub column: &'static str,
    /// The comparison.
    pub op: FilterOp,
}

/// Ordering by one column, then by id in the same direction for a total order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    /// Column name (whitelisted by the spec).
    pub column: &'static str,
    /// Column kind, which decides how NULLs are ordered.
    pub kind: FieldKind,
    /// Descending when the client wrote `-field`.
    pub descending: bool,
}

/// Page-based or keyset (cursor) pagination.
#[derive(Debug, Clone, PartialEq)]
pub enum Paging {
    /// `?page=&per_page=`.
    Offset {
        /// 1-based page.
        page: i64,
        /// Rows per page.
        per_page: i64,
    },
    /// `?cursor=&page_size=`; `after` is absent for the first page (`cursor=` empty).
    Cursor {
        /// Sort value and id of the last row already seen.
        after: Option<(Value, String)>,
        /// Rows per page.
        limit: i64,
    },
}

/// A validated list request.
#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    /// All filters, AND-ed.
    pub filters: Vec<Filter>,
    /// Ordering.
    pub sort: Sort,
    /// Pagination.
    pub paging: Paging,
    /// Sparse fieldset, when requested.
    pub fields: Option<Vec<String>>,
}

/// The opaque cursor content: where the previous page ended, under which sort.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct CursorToken {
    s: String,
    v: Value,
    id: String,
}

/// Encodes the position after `row` for the next page.
pub fn encode_cursor(sort: &Sort, row: &serde_json::Map<String, Value>) -> String {
    let token = CursorToken {
        s: sort_key(sort),
        v: row.get(sort.column).cloned().unwrap_or(Value::Null),
        id: row
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
    };
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&token).unwrap_or_default())
}

fn sort_key(sort: &Sort) -> String {
    format!("{}{}", if sort.descending { "-" } else { "" }, sort.column)
}

fn parse_sort(spec: &ResourceSpec, raw: &str) -> Result<Sort, FieldError> {
    let (descending, name) = match raw.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, raw.strip_prefix('+').unwrap_or(raw)),
    };
    let column = resolve_sort_alias(spec, name);
    let allowed = spec.sortable();
    let column = allowed
        .iter()
        .copied()
        .find(|c| *c == column)
        .ok_or_else(|| {
            FieldError::new(
                "sort",
                format!(
                    "cannot sort by \"{name}\" (allowed: {})",
                    allowed.join(", ")
                ),
            )
        })?;
    let kind = spec.column_kind(column).unwrap_or(FieldKind::Text);
    Ok(Sort {
        column,
        kind,
        descending,
    })
}

/// Accepts the camelCase spellings of the reference API (`notAfter`, `createdAt`).
fn resolve_sort_alias(spec: &ResourceSpec, name: &str) -> String {
    let snake: String = name
        .chars()
        .flat_map(|c| {
            if c.is_ascii_uppercase() {
                vec!['_', c.to_ascii_lowercase()]
            } else {
                vec![c]
            }
        })
        .collect();
    match snake.as_str() {
        "not_after" if spec.field("expires_at").is_some() => "expires_at".into(),
        _ => snake,
    }
}

fn parse_positive(name: &str, raw: &str, max: i64) -> Result<i64, FieldError> {
    let n: i64 = raw
        .parse()
        .map_err(|_| FieldError::new(name, "must be a positive integer"))?;
    if n < 1 || n > max {
        return Err(FieldError::new(
            name,
            format!("must be between 1 and {max}"),
        ));
    }
    Ok(n)
}

fn time_value(param: &str, raw: &str) -> Result<String, FieldError> {
    certctl_core::timestamp::normalize(raw).map_err(|e| FieldError::new(param, e.to_string()))
}

/// Validates query parameters against the resource spec.
pub fn parse(spec: &ResourceSpec, params: &[(String, String)]) -> Result<ListQuery, FieldError> {
    let mut filters = Vec::new();
    let mut sort_raw: Option<&str> = None;
    let mut page: Option<i64> = None;
    let mut per_page: Option<i64> = None;
    let mut cursor: Option<&str> = None;
    let mut fields: Option<Vec<String>> = None;

    let mut seen = std::collections::HashSet::new();
    for (key, raw) in params {
        if !seen.insert(key.as_str()) {
            return Err(FieldError::new(key, "given more than once"));
        }
        match key.as_str() {
            "sort" => sort_raw = Some(raw),
            "page" => page = Some(parse_positive("page", raw, i64::from(i32::MAX))?),
            "per_page" | "page_size" | "limit" => {
                per_page = Some(parse_positive(key, raw, MAX_PAGE_SIZE)?)
            }
            "cursor" => cursor = Some(raw),
            "fields" => {
                let names: Vec<String> = raw
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect();
                if names.is_empty() {
                    return Err(FieldError::new("fields", "must name at least one field"));
                }
                for n in &names {
                    if spec.column_kind(n).is_none() {
                        return Err(FieldError::new(
                            "fields",
                            format!("\"{n}\" is not a field of {}", spec.singular),
                        ));
                    }
                }
                fields = Some(names);
            }
            "created_after" | "created_before" | "updated_after" | "updated_before" => {
                let (column, before) = match key.as_str() {
                    "created_after" => (spec.created_field, false),
                    "created_before" => (spec.created_field, true),
                    "updated_after" if spec.timestamps => (UPDATED_AT, false),
                    "updated_before" if spec.timestamps => (UPDATED_AT, true),
                    _ => return Err(unknown_param(spec, key)),
                };
                let v = time_value(key, raw)?;
                filters.push(Filter {
                    column,
                    op: if before {
                        FilterOp::Before(v)
                    } else {
                        FilterOp::AtOrAfter(v)
                    },
                });
            }
            _ => {
                if let Some(tf) = spec.time_filters.iter().find(|t| t.param == key) {
                    let v = time_value(key, raw)?;
                    filters.push(Filter {
                        column: tf.field,
                        op: if tf.before {
                            FilterOp::Before(v)
                        } else {
                            FilterOp::AtOrAfter(v)
                        },
                    });
                    continue;
                }
                let field = spec
                    .field(key)
                    .filter(|f| f.filterable)
                    .ok_or_else(|| unknown_param(spec, key))?;
                let values = raw
                    .split(',')
                    .map(|part| parse_filter_value(field, part.trim()))
                    .collect::<Result<Vec<_>, _>>()?;
                filters.push(Filter {
                    column: field.name,
                    op: FilterOp::AnyOf(values),
                });
            }
        }
    }

    let sort = parse_sort(spec, sort_raw.unwrap_or(spec.default_sort))?;
    let limit = per_page.unwrap_or(DEFAULT_PAGE_SIZE);
    let paging = match cursor {
        Some(token) => {
            if page.is_some() {
                return Err(FieldError::new("cursor", "cannot be combined with page"));
            }
            let after = if token.is_empty() {
                None
            } else {
                let bytes = URL_SAFE_NO_PAD
                    .decode(token)
                    .map_err(|_| FieldError::new("cursor", "is not a cursor this server issued"))?;
                let t: CursorToken = serde_json::from_slice(&bytes)
                    .map_err(|_| FieldError::new("cursor", "is not a cursor this server issued"))?;
                if t.s != sort_key(&sort) {
                    return Err(FieldError::new(
                        "cursor",
                        format!(
                            "was issued for sort \"{}\"; keep the same sort while paging",
                            t.s
                        ),
                    ));
                }
                Some((t.v, t.id))
            };
            Paging::Cursor { after, limit }
        }
        None => Paging::Offset {
            page: page.unwrap_or(1),
            per_page: limit,
        },
    };
    Ok(ListQuery {
        filters,
        sort,
        paging,
        fields,
    })
}

fn unknown_param(spec: &ResourceSpec, key: &str) -> FieldError {
    let mut known: Vec<&str> = vec![
        "page",
        "per_page",
        "cursor",
        "page_size",
        "sort",
        "fields",
        "created_after",
        "created_before",
    ];
    if spec.timestamps {
        known.extend(["updated_after", "updated_before"]);
    }
    known.extend(spec.time_filters.iter().map(|t| t.param));
    known.extend(spec.fields.iter().filter(|f| f.filterable).map(|f| f.name));
    FieldError::new(
        key,
        format!(
            "is not a query parameter of {} (known: {})",
            spec.path,
            known.join(", ")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::certificate;

    fn q(pairs: &[(&str, &str)]) -> Result<ListQuery, FieldError> {
        let v: Vec<(String, String)> = pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        parse(&certificate::SPEC, &v)
    }

    #[test]
    fn defaults_to_first_page_sorted_by_name() {
        let lq = q(&[]).unwrap();
        assert_eq!(
            lq.paging,
            Paging::Offset {
                page: 1,
                per_page: DEFAULT_PAGE_SIZE
            }
        );
        assert_eq!(lq.sort.column, "name");
        assert!(!lq.sort.descending);
    }

    #[test]
    fn sort_accepts_whitelist_and_reference_aliases() {
        assert_eq!(
            q(&[("sort", "-notAfter")]).unwrap().sort.column,
            "expires_at"
        );
        assert!(q(&[("sort", "-createdAt")]).unwrap().sort.descending);
        assert_eq!(q(&[("sort", "sans")]).unwrap_err().field, "sort");
    }

    #[test]
    fn filters_are_typed_and_unknown_params_refused() {
        let lq = q(&[
            ("status", "Active,Expiring"),
            ("expires_before", "2030-01-01T00:00:00Z"),
        ])
        .unwrap();
        assert_eq!(lq.filters.len(), 2);
        assert_eq!(q(&[("status", "Bogus")]).unwrap_err().field, "status");
        assert_eq!(q(&[("stauts", "Active")]).unwrap_err().field, "stauts");
        assert_eq!(
            q(&[("expires_before", "soon")]).unwrap_err().field,
            "expires_before"
        );
    }

    #[test]
    fn pagination_bounds() {
        assert_eq!(q(&[("page", "0")]).unwrap_err().field, "page");
        assert_eq!(q(&[("per_page", "100000")]).unwrap_err().field, "per_page");
        assert_eq!(q(&[("page", "x")]).unwrap_err().field, "page");
        assert_eq!(q(&[("cursor", "!!")]).unwrap_err().field, "cursor");
        assert_eq!(
            q(&[("cursor", ""), ("page", "2")]).unwrap_err().field,
            "cursor"
        );
    }

    #[test]
    fn cursor_round_trips_and_is_bound_to_its_sort() {
        let lq = q(&[("cursor", ""), ("sort", "-created_at")]).unwrap();
        let row = serde_json::json!({"id": "mc-1", "created_at": "2026-01-01T00:00:00.000Z"});
        let token = encode_cursor(&lq.sort, row.as_object().unwrap());
        let next = q(&[("cursor", &token), ("sort", "-created_at")]).unwrap();
        assert_eq!(
            next.paging,
            Paging::Cursor {
                after: Some((row["created_at"].clone(), "mc-1".into())),
                limit: DEFAULT_PAGE_SIZE
            }
        );
        assert_eq!(q(&[("cursor", &token)]).unwrap_err().field, "cursor");
    }
}
