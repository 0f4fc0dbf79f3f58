//! Places: `GET /places/microsoft.graph.room`, `GET /places/microsoft.graph.roomlist`,
//! `GET /places/{roomlist-email}/microsoft.graph.roomlist/rooms` (the room list is named by its
//! **email address**, not its id), and `GET /places/{id | email}`. Needs `Place.Read.All`.
//! Paging: 100 per page by default, `$top`, `$skip`, `$count=true`, `$select`, and a small
//! `$filter` subset (`eq`/`ne`/`ge`/`gt`/`le`/`lt` on room properties, `startswith(prop,'x')`,
//! joined with `and`).
// GraphError (error.rs) is large; the crate passes it by value everywhere.
#![allow(clippy::result_large_err)]

use std::cmp::Ordering;

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};

use super::{Principal, St};
use crate::error::{GraphError, GraphResult};
use crate::model::{MailboxKind, RoomList, Tenant, User};

/// Default (and documented) page size of the places API.
pub const DEFAULT_PAGE: usize = 100;
/// Largest page served, whatever `$top` asks.
pub const MAX_PAGE: usize = 999;

pub fn routes() -> Router<St> {
    Router::new()
        .route("/places/microsoft.graph.room", get(list_rooms))
        .route("/places/microsoft.graph.roomlist", get(list_room_lists))
        .route("/places/microsoft.graph.roomList", get(list_room_lists))
        .route(
            "/places/{list}/microsoft.graph.roomlist/rooms",
            get(rooms_of_list),
        )
        .route(
            "/places/{list}/microsoft.graph.roomList/rooms",
            get(rooms_of_list),
        )
        .route("/places/{list}", get(get_place))
}

const PLACE_ROLES: [&str; 2] = ["Place.Read.All", "Place.ReadWrite.All"];

/// 403 without `Place.Read.All` (app role or delegated scope).
fn require_place_read(p: &Principal) -> GraphResult<()> {
    let perms = match &p.delegated {
        Some((_, scp)) => scp,
        None => &p.roles,
    };
    if perms
        .iter()
        .any(|r| PLACE_ROLES.iter().any(|n| n.eq_ignore_ascii_case(r)))
    {
        Ok(())
    } else {
        Err(GraphError::access_denied(
            "Access is denied. Check credentials and try again.",
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------------------------

fn empty_address() -> Value {
    json!({"street": "", "city": "", "state": "", "postalCode": "", "countryOrRegion": ""})
}

/// A room mailbox as a `microsoft.graph.room`.
pub fn room_json(u: &User) -> Value {
    let info = u.room.clone().unwrap_or_default();
    json!({
        "id": u.id.to_string(),
        "emailAddress": u.mail,
        "displayName": u.display_name,
        "address": empty_address(),
        "geoCoordinates": null,
        "phone": info.phone,
        "nickname": info.nickname.clone().unwrap_or_else(|| u.display_name.clone()),
        "label": info.floor_label.clone().or(info.nickname.clone()),
        "capacity": info.capacity,
        "building": info.building,
        "floorNumber": info.floor_number,
        "floorLabel": info.floor_label,
        "isWheelChairAccessible": info.is_wheelchair_accessible,
        "bookingType": info.booking_type.unwrap_or_else(|| "standard".to_owned()),
        "tags": info.tags,
        "audioDeviceName": info.audio_device_name,
        "videoDeviceName": info.video_device_name,
        "displayDeviceName": info.display_device_name,
    })
}

/// A room list as a `microsoft.graph.roomList`.
pub fn room_list_json(l: &RoomList) -> Value {
    json!({
        "id": l.id.to_string(),
        "displayName": l.display_name,
        "address": empty_address(),
        "geoCoordinates": null,
        "phone": null,
        "emailAddress": l.email,
    })
}

// ---------------------------------------------------------------------------------------------
// Query options
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Default)]
struct Query {
    top: Option<usize>,
    skip: usize,
    count: bool,
    select: Option<Vec<String>>,
    filter: Vec<Clause>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Ge,
    Gt,
    Le,
    Lt,
    StartsWith,
}

#[derive(Debug)]
struct Clause {
    prop: String,
    op: Op,
    value: Value,
}

fn invalid_query(msg: impl Into<String>) -> GraphError {
    GraphError::bad_request("BadRequest", msg)
}

fn parse_query(raw: Option<&str>) -> GraphResult<Query> {
    let mut q = Query::default();
    let Some(raw) = raw else { return Ok(q) };
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw)
        .map_err(|_| invalid_query("The query string is not valid."))?;
    for (k, v) in pairs {
        match k.trim_start_matches('$').to_ascii_lowercase().as_str() {
            "top" => {
                let n: i64 = v.trim().parse().map_err(|_| {
                    invalid_query(format!("Invalid value '{v}' for query option $top."))
                })?;
                if n < 0 {
                    return Err(invalid_query(format!(
                        "Invalid value '{v}' for query option $top."
                    )));
                }
                q.top = Some(usize::try_from(n).unwrap_or(usize::MAX));
            }
            "skip" => {
                let n: i64 = v.trim().parse().map_err(|_| {
                    invalid_query(format!("Invalid value '{v}' for query option $skip."))
                })?;
                if n < 0 {
                    return Err(invalid_query(format!(
                        "Invalid value '{v}' for query option $skip."
                    )));
                }
                q.skip = usize::try_from(n).unwrap_or(usize::MAX);
            }
            "count" => {
                q.count = match v.trim().to_ascii_lowercase().as_str() {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(invalid_query(format!(
                            "Invalid value '{v}' for query option $count."
                        )));
                    }
                }
            }
            "select" => {
                q.select = Some(
                    v.split(',')
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty())
                        .collect(),
                )
            }
            "filter" => q.filter = parse_filter(&v)?,
            _ => {}
        }
    }
    Ok(q)
}

/// Parses a conjunction of simple comparisons: `capacity ge 10 and building eq 'B1'`,
/// `startswith(displayName,'Conf')`.
fn parse_filter(f: &str) -> GraphResult<Vec<Clause>> {
    let bad = || invalid_query(format!("Invalid filter clause: '{f}'."));
    let mut out = Vec::new();
    for part in split_and(f) {
        let part = part.trim();
        if part.is_empty() {
            return Err(bad());
        }
        let lower = part.to_ascii_lowercase();
        if lower.starts_with("startswith(") && part.ends_with(')') {
            let inner = &part["startswith(".len()..part.len() - 1];
            let (prop, lit) = inner.split_once(',').ok_or_else(bad)?;
            let value = parse_literal(lit.trim()).ok_or_else(bad)?;
            out.push(Clause {
                prop: prop.trim().to_owned(),
                op: Op::StartsWith,
                value,
            });
            continue;
        }
        let mut it = part.splitn(3, ' ');
        let (Some(prop), Some(op), Some(lit)) = (it.next(), it.next(), it.next()) else {
            return Err(bad());
        };
        let op = match op.to_ascii_lowercase().as_str() {
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "ge" => Op::Ge,
            "gt" => Op::Gt,
            "le" => Op::Le,
            "lt" => Op::Lt,
            _ => return Err(bad()),
        };
        let value = parse_literal(lit.trim()).ok_or_else(bad)?;
        out.push(Clause {
            prop: prop.trim().to_owned(),
            op,
            value,
        });
    }
    Ok(out)
}

/// Splits on ` and ` outside quotes.
fn split_and(f: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut in_quote = false;
    let chars: Vec<char> = f.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            in_quote = !in_quote;
        }
        if !in_quote && i + 5 <= chars.len() {
            let w: String = chars[i..i + 5].iter().collect();
            if w.eq_ignore_ascii_case(" and ") {
                parts.push(std::mem::take(&mut cur));
                i += 5;
                continue;
            }
        }
        cur.push(c);
        i += 1;
    }
    parts.push(cur);
    parts
}

fn parse_literal(s: &str) -> Option<Value> {
    if s.len() >= 2 && s.starts_with('\'') && s.ends_with('\'') {
        return Some(Value::String(s[1..s.len() - 1].replace("''", "'")));
    }
    match s.to_ascii_lowercase().as_str() {
        "true" => return Some(Value::Bool(true)),
        "false" => return Some(Value::Bool(false)),
        "null" => return Some(Value::Null),
        _ => {}
    }
    s.parse::<i64>().ok().map(|n| json!(n))
}

fn prop<'a>(item: &'a Value, name: &str) -> Option<&'a Value> {
    item.as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.to_lowercase().cmp(&y.to_lowercase())),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        (Value::Null, Value::Null) => Some(Ordering::Equal),
        _ => None,
    }
}

fn matches(item: &Value, clauses: &[Clause]) -> GraphResult<bool> {
    for c in clauses {
        let Some(v) = prop(item, &c.prop) else {
            return Err(invalid_query(format!(
                "Could not find a property named '{}' on type 'microsoft.graph.place'.",
                c.prop
            )));
        };
        let ok = match c.op {
            Op::StartsWith => match (v, &c.value) {
                (Value::String(s), Value::String(p)) => {
                    s.to_lowercase().starts_with(&p.to_lowercase())
                }
                _ => false,
            },
            Op::Eq => compare(v, &c.value) == Some(Ordering::Equal),
            Op::Ne => compare(v, &c.value) != Some(Ordering::Equal),
            Op::Ge => matches!(
                compare(v, &c.value),
                Some(Ordering::Greater | Ordering::Equal)
            ),
            Op::Gt => compare(v, &c.value) == Some(Ordering::Greater),
            Op::Le => matches!(compare(v, &c.value), Some(Ordering::Less | Ordering::Equal)),
            Op::Lt => compare(v, &c.value) == Some(Ordering::Less),
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

fn select(item: Value, sel: &Option<Vec<String>>) -> Value {
    let (Some(sel), Value::Object(o)) = (sel, &item) else {
        return item;
    };
    let mut out = Map::new();
    for (k, v) in o {
        if k == "id" || sel.iter().any(|s| s.eq_ignore_ascii_case(k)) {
            out.insert(k.clone(), v.clone());
        }
    }
    Value::Object(out)
}

/// Filters, pages and wraps a collection.
fn page(
    st: &St,
    items: Vec<Value>,
    q: &Query,
    context: &str,
    self_path: &str,
) -> GraphResult<Response> {
    let mut filtered = Vec::with_capacity(items.len());
    for it in items {
        if matches(&it, &q.filter)? {
            filtered.push(it);
        }
    }
    let total = filtered.len();
    let size = q.top.unwrap_or(DEFAULT_PAGE).min(MAX_PAGE);
    let start = q.skip.min(total);
    let end = start.saturating_add(size).min(total);
    let value: Vec<Value> = filtered[start..end]
        .iter()
        .cloned()
        .map(|v| select(v, &q.select))
        .collect();
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        json!(format!("{}/v1.0/$metadata#{context}", st.base_url())),
    );
    if q.count {
        body.insert("@odata.count".into(), json!(total));
    }
    // A nextLink only when the caller did not cap the page with $top.
    if end < total && q.top.is_none_or(|t| t > MAX_PAGE) {
        let mut qs = vec![format!("$skip={end}")];
        if let Some(t) = q.top {
            qs.push(format!("$top={}", t.saturating_sub(end - start)));
        }
        if q.count {
            qs.push("$count=true".into());
        }
        body.insert(
            "@odata.nextLink".into(),
            json!(format!(
                "{}/v1.0{self_path}?{}",
                st.base_url(),
                qs.join("&")
            )),
        );
    }
    body.insert("value".into(), Value::Array(value));
    Ok((StatusCode::OK, axum::Json(Value::Object(body))).into_response())
}

// ---------------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------------

fn with_tenant<T>(st: &St, p: &Principal, f: impl FnOnce(&Tenant) -> T) -> GraphResult<T> {
    let dir = st.dir();
    let t = dir
        .tenant_by_id(p.tenant_id)
        .ok_or_else(|| GraphError::invalid_token("Access token validation failure."))?;
    Ok(f(t))
}

fn sorted_rooms(t: &Tenant) -> Vec<Value> {
    let mut rooms: Vec<&User> = t
        .users()
        .filter(|u| u.kind == MailboxKind::Room && u.account_enabled)
        .collect();
    rooms.sort_by_key(|u| u.display_name.to_lowercase());
    rooms.into_iter().map(room_json).collect()
}

async fn list_rooms(State(st): State<St>, p: Principal, RawQuery(raw): RawQuery) -> Response {
    let r = (|| {
        require_place_read(&p)?;
        let q = parse_query(raw.as_deref())?;
        let items = with_tenant(&st, &p, sorted_rooms)?;
        page(
            &st,
            items,
            &q,
            "places/microsoft.graph.room",
            "/places/microsoft.graph.room",
        )
    })();
    r.unwrap_or_else(IntoResponse::into_response)
}

async fn list_room_lists(State(st): State<St>, p: Principal, RawQuery(raw): RawQuery) -> Response {
    let r = (|| {
        require_place_read(&p)?;
        let q = parse_query(raw.as_deref())?;
        let items = with_tenant(&st, &p, |t| {
            t.room_lists.iter().map(room_list_json).collect::<Vec<_>>()
        })?;
        page(
            &st,
            items,
            &q,
            "places/microsoft.graph.roomList",
            "/places/microsoft.graph.roomlist",
        )
    })();
    r.unwrap_or_else(IntoResponse::into_response)
}

async fn rooms_of_list(
    State(st): State<St>,
    p: Principal,
    Path(list): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let r = (|| {
        require_place_read(&p)?;
        let q = parse_query(raw.as_deref())?;
        let items = with_tenant(&st, &p, |t| {
            // By email address only: an id does not name a room list here.
            let rl = t
                .room_lists
                .iter()
                .find(|l| l.email.eq_ignore_ascii_case(&list))?;
            Some(
                rl.rooms
                    .iter()
                    .filter_map(|id| t.user_by_id(*id))
                    .map(room_json)
                    .collect::<Vec<_>>(),
            )
        })?
        .ok_or_else(|| {
            GraphError::not_found(
                "ErrorItemNotFound",
                format!("The room list '{list}' was not found. Room lists are addressed by their email address."),
            )
        })?;
        let enc = list.replace('@', "%40");
        page(
            &st,
            items,
            &q,
            &format!("places('{enc}')/microsoft.graph.roomList/rooms"),
            &format!("/places/{list}/microsoft.graph.roomlist/rooms"),
        )
    })();
    r.unwrap_or_else(IntoResponse::into_response)
}

/// `GET /places/{id | emailAddress}`: one room or room list.
async fn get_place(State(st): State<St>, p: Principal, Path(key): Path<String>) -> Response {
    let r = (|| {
        require_place_read(&p)?;
        let found = with_tenant(&st, &p, |t| {
            if let Some(l) = t.room_lists.iter().find(|l| {
                l.email.eq_ignore_ascii_case(&key) || l.id.to_string().eq_ignore_ascii_case(&key)
            }) {
                let mut v = room_list_json(l);
                if let Some(o) = v.as_object_mut() {
                    o.insert("@odata.type".into(), json!("#microsoft.graph.roomList"));
                }
                return Some(v);
            }
            let u = t.user(&key).filter(|u| u.kind == MailboxKind::Room)?;
            let mut v = room_json(u);
            if let Some(o) = v.as_object_mut() {
                o.insert("@odata.type".into(), json!("#microsoft.graph.room"));
            }
            Some(v)
        })?
        .ok_or_else(|| {
            GraphError::not_found(
                "ErrorItemNotFound",
                "The specified object was not found in the store.",
            )
        })?;
        let mut body = Map::new();
        body.insert(
            "@odata.context".into(),
            json!(format!("{}/v1.0/$metadata#places/$entity", st.base_url())),
        );
        if let Value::Object(o) = found {
            body.extend(o);
        }
        Ok::<_, GraphError>(axum::Json(Value::Object(body)).into_response())
    })();
    r.unwrap_or_else(IntoResponse::into_response)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn filters() {
        let room = json!({"capacity": 12, "building": "North", "displayName": "Conf 1", "isWheelChairAccessible": true});
        let f = |s: &str| matches(&room, &parse_filter(s).unwrap()).unwrap();
        assert!(f("capacity ge 10"));
        assert!(!f("capacity gt 12"));
        assert!(f("building eq 'north' and capacity le 12"));
        assert!(f("startswith(displayName,'conf')"));
        assert!(f("isWheelChairAccessible eq true"));
        assert!(parse_filter("capacity ~ 3").is_err());
        assert!(matches(&room, &parse_filter("nope eq 1").unwrap()).is_err());
    }

    #[test]
    fn query_options() {
        let q = parse_query(Some("$top=5&$skip=2&$count=true")).unwrap();
        assert_eq!((q.top, q.skip, q.count), (Some(5), 2, true));
        assert!(parse_query(Some("$top=-1")).is_err());
        assert!(parse_query(Some("$top=abc")).is_err());
        assert!(parse_query(Some("$top=99999999999999999999999")).is_err());
    }
}
