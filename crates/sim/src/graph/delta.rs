//! `calendarView/delta`: rounds of change tracking over a calendarView window, backed by
//! server-side sync states (Exchange's "internal delta token cache").
//!
//! - A round starts with `startDateTime`/`endDateTime` (or a `$deltatoken`) and is paged with
//!   `@odata.nextLink` (`…/delta?$skiptoken=…`); its last page carries `@odata.deltaLink`
//!   (`…/delta?$deltatoken=…`). Page size: `Prefer: odata.maxpagesize=N` (default 10, at most
//!   1000), answered with `Preference-Applied`.
//! - A delta token names a *snapshot*: {mailbox, calendar, window, instance id → fingerprint of
//!   its rendered JSON}. The next round diffs the current expansion of the window against it:
//!   new or changed instances come as full events, vanished ones (deleted, cancelled, moved out
//!   of the window, dropped by a pattern change) as `{"@odata.type","id","@removed":{"reason":
//!   "deleted"}}`. Then a new snapshot. Old tokens stay usable until evicted, as in Graph (a
//!   client that lost a deltaLink can replay the previous one).
//! - A skip token names a *page set*: the frozen, serialized result list of one round, and the
//!   snapshot its deltaLink will name.
//! - Tokens are opaque: base64url of an encrypted payload (mailbox, state id, window, offset)
//!   plus a MAC, shaped like Graph's `xxxx.yyyy`. A token that fails the MAC is garbage → 400
//!   `InvalidDeltaToken`; a well-formed token whose state was evicted → 410 `SyncStateNotFound`.
//! - Caps: [`STATES_PER_MAILBOX`] snapshots per mailbox and [`STATES_TOTAL`] overall (least
//!   recently used evicted first); page sets likewise.
//! - Injectable faults per mailbox (`POST /_sim/mailboxes/{addr}/delta-faults`): a
//!   synchronization reset (410 + `Location` with an empty `$deltatoken`), `SyncStateNotFound`
//!   on the next token, replays of N unchanged instances in the next incremental round, and
//!   dropping every sync state of the mailbox.
#![allow(clippy::result_large_err)] // GraphError is the lead's type.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::route_util;
use super::view::{self, Resolved, Target, Window};
use super::wire::{self, PreferTz};
use super::{Principal, St};
use crate::error::{GraphError, GraphResult};
use crate::expand::Instance;
use crate::state::lock;

/// Default page size of a delta round without `Prefer: odata.maxpagesize`.
pub const DEFAULT_PAGE_SIZE: usize = 10;
/// Largest `odata.maxpagesize` honoured.
pub const MAX_PAGE_SIZE: usize = 1000;
/// Snapshots (delta tokens) kept per mailbox.
pub const STATES_PER_MAILBOX: usize = 16;
/// Snapshots kept overall: enough for the latest snapshot of 65,536 mailboxes (with 8,192, a
/// 10,000-mailbox tenant evicted every mailbox's token before its next round: each one came back
/// 410 and resynced in full, which Graph does not do to a tenant for being large).
pub const STATES_TOTAL: usize = 65_536;
/// Page sets (skip tokens) kept per mailbox.
pub const PAGESETS_PER_MAILBOX: usize = 4;
/// Page sets kept overall.
pub const PAGESETS_TOTAL: usize = 512;
/// Finished page sets (last page served) kept overall, for clients that fetch a page again.
pub const DONE_PAGESETS_TOTAL: usize = 64;

// ---------------------------------------------------------------------------------------------
// Sync states
// ---------------------------------------------------------------------------------------------

/// Server-side sync states of delta rounds (the "internal delta token cache").
#[derive(Debug, Default)]
pub struct SyncStates {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    tick: u64,
    snapshots: HashMap<u64, Snapshot>,
    pages: HashMap<u64, PageSet>,
    mailboxes: HashMap<Uuid, MailboxSync>,
}

/// (instance id, fingerprint), sorted by id. Shared between the snapshots of rounds that found
/// nothing changed; ids are shared with the previous snapshot.
type Entries = Arc<Vec<(Arc<str>, u64)>>;

#[derive(Debug)]
struct Snapshot {
    mailbox: Uuid,
    calendar: String,
    window: Window,
    generation: u64,
    /// The calendar's version ([`crate::model::CalCell::version`]) and the mailbox address the
    /// entries were rendered from: when both are unchanged, so is every instance.
    calendar_version: u64,
    address: String,
    entries: Entries,
    last_used: u64,
}

#[derive(Debug)]
struct PageSet {
    mailbox: Uuid,
    window: Window,
    /// Serialized JSON of each item of the round, in order.
    items: Vec<String>,
    /// The snapshot the round's deltaLink names.
    delta_state: u64,
    generation: u64,
    last_used: u64,
    /// Whether its last page has been served (evicted first).
    done: bool,
}

#[derive(Debug, Default)]
struct MailboxSync {
    generation: u64,
    faults: DeltaFaults,
}

/// Delta faults armed for one mailbox; each fires once.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeltaFaults {
    /// The next delta request with a token → `410 Gone` + `Location` (synchronization reset).
    pub gone_on_next: bool,
    /// The next delta request with a token → `410 SyncStateNotFound`.
    pub sync_state_not_found_on_next: bool,
    /// The next incremental round re-sends this many unchanged, already delivered instances.
    pub replay: u32,
}

/// Largest `replay` `POST /_sim/mailboxes/{addr}/delta-faults` accepts.
pub const MAX_REPLAY: u32 = 10_000;

/// Body of `POST /_sim/mailboxes/{addr}/delta-faults`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeltaFaultRequest {
    pub gone_on_next: Option<bool>,
    pub sync_state_not_found_on_next: Option<bool>,
    pub replay: Option<u32>,
    /// Drop every sync state of the mailbox now.
    pub expire_all: bool,
}

/// What `/_sim/mailboxes/{addr}/delta-faults` reports.
#[derive(Debug, Clone, Serialize)]
pub struct DeltaStatus {
    pub faults: DeltaFaults,
    /// Delta tokens (snapshots) currently held for the mailbox.
    pub sync_states: usize,
    /// Skip-token page sets currently held for the mailbox.
    pub page_sets: usize,
    pub generation: u64,
}

impl SyncStates {
    /// Arms (or disarms) faults and/or drops the mailbox's states; returns the new status.
    pub fn apply_faults(&self, mailbox: Uuid, req: &DeltaFaultRequest) -> DeltaStatus {
        let mut g = lock(&self.inner);
        if req.expire_all {
            g.drop_mailbox(mailbox);
        }
        let m = g.mailboxes.entry(mailbox).or_default();
        if let Some(v) = req.gone_on_next {
            m.faults.gone_on_next = v;
        }
        if let Some(v) = req.sync_state_not_found_on_next {
            m.faults.sync_state_not_found_on_next = v;
        }
        if let Some(v) = req.replay {
            m.faults.replay = v;
        }
        g.status(mailbox)
    }

    pub fn status(&self, mailbox: Uuid) -> DeltaStatus {
        lock(&self.inner).status(mailbox)
    }

    /// Drops every sync state of `mailbox` (e.g. when the mailbox is deleted).
    pub fn forget_mailbox(&self, mailbox: Uuid) {
        let mut g = lock(&self.inner);
        g.drop_mailbox(mailbox);
        g.mailboxes.remove(&mailbox);
    }
}

impl Inner {
    fn next_tick(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }

    fn status(&self, mailbox: Uuid) -> DeltaStatus {
        let m = self.mailboxes.get(&mailbox);
        DeltaStatus {
            faults: m.map(|m| m.faults.clone()).unwrap_or_default(),
            sync_states: self
                .snapshots
                .values()
                .filter(|s| s.mailbox == mailbox)
                .count(),
            page_sets: self.pages.values().filter(|p| p.mailbox == mailbox).count(),
            generation: m.map(|m| m.generation).unwrap_or(0),
        }
    }

    fn drop_mailbox(&mut self, mailbox: Uuid) {
        self.snapshots.retain(|_, s| s.mailbox != mailbox);
        self.pages.retain(|_, p| p.mailbox != mailbox);
    }

    fn next_generation(&mut self, mailbox: Uuid) -> u64 {
        let m = self.mailboxes.entry(mailbox).or_default();
        m.generation += 1;
        m.generation
    }

    fn highest_generation(&self, mailbox: Uuid) -> u64 {
        self.mailboxes
            .get(&mailbox)
            .map(|m| m.generation)
            .unwrap_or(0)
    }

    /// Generations of the mailbox's snapshots still held, newest first.
    fn held_generations(&self, mailbox: Uuid) -> Vec<u64> {
        let mut v: Vec<u64> = self
            .snapshots
            .values()
            .filter(|s| s.mailbox == mailbox)
            .map(|s| s.generation)
            .collect();
        v.sort_unstable_by(|a, b| b.cmp(a));
        v
    }

    fn insert_snapshot(&mut self, id: u64, s: Snapshot) {
        let mailbox = s.mailbox;
        self.snapshots.insert(id, s);
        // Per-mailbox cap, then the overall cap, least recently used first.
        loop {
            let mine: Vec<(u64, u64)> = self
                .snapshots
                .iter()
                .filter(|(_, s)| s.mailbox == mailbox)
                .map(|(k, s)| (*k, s.last_used))
                .collect();
            if mine.len() <= STATES_PER_MAILBOX {
                break;
            }
            if let Some((k, _)) = mine.iter().min_by_key(|(_, t)| *t) {
                self.snapshots.remove(k);
            }
        }
        while self.snapshots.len() > STATES_TOTAL {
            let oldest = self
                .snapshots
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(k, _)| *k);
            match oldest {
                Some(k) => {
                    self.snapshots.remove(&k);
                }
                None => break,
            }
        }
    }

    /// Evicts the least recently used finished page sets beyond [`DONE_PAGESETS_TOTAL`]
    /// (their item strings are the bulk of the simulator's memory otherwise).
    fn trim_done_pages(&mut self) {
        let mut done: Vec<(u64, u64)> = self
            .pages
            .iter()
            .filter(|(_, p)| p.done)
            .map(|(k, p)| (p.last_used, *k))
            .collect();
        if done.len() <= DONE_PAGESETS_TOTAL {
            return;
        }
        done.sort_unstable();
        for (_, k) in &done[..done.len() - DONE_PAGESETS_TOTAL] {
            self.pages.remove(k);
        }
    }

    fn insert_pages(&mut self, id: u64, p: PageSet) {
        let mailbox = p.mailbox;
        self.pages.insert(id, p);
        loop {
            let mine: Vec<(u64, bool, u64)> = self
                .pages
                .iter()
                .filter(|(_, p)| p.mailbox == mailbox)
                .map(|(k, p)| (*k, p.done, p.last_used))
                .collect();
            if mine.len() <= PAGESETS_PER_MAILBOX {
                break;
            }
            // Finished rounds go first, then the least recently used.
            if let Some((k, _, _)) = mine.iter().min_by_key(|(_, d, t)| (!*d, *t)) {
                self.pages.remove(k);
            }
        }
        while self.pages.len() > PAGESETS_TOTAL {
            let victim = self
                .pages
                .iter()
                .min_by_key(|(_, p)| (!p.done, p.last_used))
                .map(|(k, _)| *k);
            match victim {
                Some(k) => {
                    self.pages.remove(&k);
                }
                None => break,
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------------------------

/// Key of the token cipher and MAC. Fixed, so that tokens of an earlier simulator run still
/// decode (and then find no sync state: 410 `SyncStateNotFound`, as after a server restart).
const TOKEN_KEY: &[u8] = b"calgate-sim calendarView delta token key, v1";
const TOKEN_VERSION: u8 = 1;
const MAC_LEN: usize = 16;
const NONCE_LEN: usize = 6;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenKind {
    Skip = 1,
    Delta = 2,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Token {
    kind: TokenKind,
    mailbox: Uuid,
    state: u64,
    generation: u64,
    window: Window,
    offset: u32,
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(msg);
    let ih = inner.finalize();
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(ih);
    outer.finalize().into()
}

/// XORs `data` with a SHA-256 keystream derived from the key and `nonce`.
fn keystream_xor(nonce: &[u8], data: &mut [u8]) {
    for (block, chunk) in data.chunks_mut(32).enumerate() {
        let mut h = Sha256::new();
        h.update(TOKEN_KEY);
        h.update(nonce);
        h.update((block as u64).to_le_bytes());
        let ks = h.finalize();
        for (b, k) in chunk.iter_mut().zip(ks.iter()) {
            *b ^= *k;
        }
    }
}

fn put_ts(out: &mut Vec<u8>, t: Timestamp) {
    out.extend_from_slice(&t.as_second().to_le_bytes());
    out.extend_from_slice(&t.subsec_nanosecond().to_le_bytes());
}

fn take<const N: usize>(b: &[u8], at: &mut usize) -> Option<[u8; N]> {
    let s = b.get(*at..*at + N)?;
    *at += N;
    s.try_into().ok()
}

fn get_ts(b: &[u8], at: &mut usize) -> Option<Timestamp> {
    let s = i64::from_le_bytes(take::<8>(b, at)?);
    let n = i32::from_le_bytes(take::<4>(b, at)?);
    Timestamp::new(s, n).ok()
}

fn encode_token(t: &Token) -> String {
    let mut plain = Vec::with_capacity(64);
    plain.push(TOKEN_VERSION);
    plain.push(t.kind as u8);
    plain.extend_from_slice(t.mailbox.as_bytes());
    plain.extend_from_slice(&t.state.to_le_bytes());
    plain.extend_from_slice(&t.generation.to_le_bytes());
    put_ts(&mut plain, t.window.start);
    put_ts(&mut plain, t.window.end);
    plain.extend_from_slice(&t.offset.to_le_bytes());
    let nonce: [u8; NONCE_LEN] = rand::random();
    keystream_xor(&nonce, &mut plain);
    let mut body = nonce.to_vec();
    body.extend_from_slice(&plain);
    let mac = hmac_sha256(TOKEN_KEY, &body);
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!("{}.{}", b64.encode(&body), b64.encode(&mac[..MAC_LEN]))
}

fn decode_token(s: &str) -> Option<Token> {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (body, mac) = s.trim().split_once('.')?;
    let body = b64.decode(body).ok()?;
    let mac = b64.decode(mac).ok()?;
    let want = hmac_sha256(TOKEN_KEY, &body);
    if mac.len() != MAC_LEN || mac.as_slice() != &want[..MAC_LEN] {
        return None;
    }
    let (nonce, rest) = body.split_at_checked(NONCE_LEN)?;
    let mut plain = rest.to_vec();
    keystream_xor(nonce, &mut plain);
    let mut at = 0;
    let [version, kind] = take::<2>(&plain, &mut at)?;
    if version != TOKEN_VERSION {
        return None;
    }
    let kind = match kind {
        1 => TokenKind::Skip,
        2 => TokenKind::Delta,
        _ => return None,
    };
    let mailbox = Uuid::from_bytes(take::<16>(&plain, &mut at)?);
    let state = u64::from_le_bytes(take::<8>(&plain, &mut at)?);
    let generation = u64::from_le_bytes(take::<8>(&plain, &mut at)?);
    let start = get_ts(&plain, &mut at)?;
    let end = get_ts(&plain, &mut at)?;
    let offset = u32::from_le_bytes(take::<4>(&plain, &mut at)?);
    if at != plain.len() {
        return None;
    }
    Some(Token {
        kind,
        mailbox,
        state,
        generation,
        window: Window { start, end },
        offset,
    })
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

fn invalid_token(param: &str, value: &str) -> GraphError {
    let shown: String = value.chars().take(64).collect();
    GraphError::bad_request(
        "InvalidDeltaToken",
        format!("The value '{shown}' of parameter '{param}' is invalid."),
    )
}

fn sync_state_not_found(generation: u64, highest: u64, held: &[u64]) -> GraphError {
    let mut msg = format!(
        "The sync state generation is not found; generation={generation};[highest={highest}]"
    );
    for g in held.iter().take(3) {
        msg.push_str(&format!("[{g}]"));
    }
    msg.push('.');
    GraphError::new(StatusCode::GONE, "SyncStateNotFound", msg)
}

fn unsupported_query(names: &[&str]) -> GraphError {
    let _ = names;
    GraphError::bad_request(
        "ErrorInvalidUrlQuery",
        "The following parameters are not supported with change tracking over the 'CalendarView' resource: \
         '$orderby, $filter, $select, $expand, $search'.",
    )
}

fn top_not_supported() -> GraphError {
    GraphError::bad_request(
        "ErrorInvalidUrlQuery",
        "The '$top' parameter is not supported with change tracking over the 'CalendarView' resource as page \
         size cannot be guaranteed. Express page size preferences using the Prefer: odata.maxpagesize= header instead.",
    )
}

// ---------------------------------------------------------------------------------------------
// Routes and handler
// ---------------------------------------------------------------------------------------------

/// `calendarView/delta` and its OData function-call form `calendarView/delta()`, which Graph
/// accepts as well and Microsoft's Graph SDKs send.
pub fn routes() -> Router<St> {
    route_util::calendar_routes("calendarView/delta", |st, p, t, q, headers| async move {
        delta(&st, &p, &t, q.as_deref(), &headers).await
    })
    .merge(route_util::calendar_routes(
        "calendarView/delta()",
        |st, p, t, q, headers| async move { delta(&st, &p, &t, q.as_deref(), &headers).await },
    ))
}

/// Fingerprint of a rendered instance (its UTC JSON text): a multiply-rotate hash over 8-byte
/// words in four independent lanes (several times faster than SipHash on these ~2 KB texts;
/// no adversary here). Each step is a bijection of its lane for a given word, so two texts of
/// equal length that differ in a single word never collide; the length is mixed in.
fn fingerprint(text: &str) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    fn step(h: u64, w: &[u8]) -> u64 {
        let mut b = [0u8; 8];
        b[..w.len()].copy_from_slice(w);
        (h.rotate_left(5) ^ u64::from_le_bytes(b)).wrapping_mul(K)
    }
    let bytes = text.as_bytes();
    let len = bytes.len() as u64;
    let mut lanes = [len, len ^ 1, len ^ 2, len ^ 3].map(|x| x.wrapping_mul(K));
    let mut blocks = bytes.chunks_exact(32);
    for blk in &mut blocks {
        for (lane, w) in lanes.iter_mut().zip(blk.chunks_exact(8)) {
            *lane = step(*lane, w);
        }
    }
    let mut h = lanes
        .iter()
        .fold(0u64, |acc, l| (acc.rotate_left(23) ^ l).wrapping_mul(K));
    for w in blocks.remainder().chunks(8) {
        h = step(h, w);
    }
    // Final avalanche (splitmix64's).
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// One instance rendered once: its UTC JSON as a delta round sends it, and its fingerprint.
fn render_utc(inst: &Instance, mailbox: &str) -> (String, u64) {
    let text = wire::event_json_text(inst, mailbox, true, None);
    let fp = fingerprint(&text);
    (text, fp)
}

/// The JSON a delta round sends for a present instance: `utc` as rendered, or rendered again
/// in the preferred zone. A zone the client calls "UTC" (always offset zero) renders as UTC
/// does, label included, so the one rendering serves.
fn delta_item(inst: &Instance, utc: String, mailbox: &str, tz: Option<&PreferTz>) -> String {
    match tz {
        Some(tz) if tz.name != "UTC" => {
            wire::event_json_text(inst, mailbox, true, Some((&tz.name, &tz.tz)))
        }
        _ => utc,
    }
}

fn removed_item(id: &str) -> String {
    json!({"@odata.type": "#microsoft.graph.event", "id": id, "@removed": {"reason": "deleted"}})
        .to_string()
}

/// Parsed `Prefer: odata.maxpagesize`: (page size, whether the client asked).
fn page_size(headers: &HeaderMap) -> (usize, bool) {
    match wire::prefer_max_page_size(headers) {
        Some(n) => (n.min(MAX_PAGE_SIZE), true),
        None => (DEFAULT_PAGE_SIZE, false),
    }
}

async fn delta(
    st: &St,
    p: &Principal,
    target: &Target,
    raw_query: Option<&str>,
    headers: &HeaderMap,
) -> GraphResult<Response> {
    let user_id = view::enter(st, p, target).await?;
    let q = view::parse_query(raw_query)?;
    let bad: Vec<&str> = ["$select", "$expand", "$filter", "$orderby", "$search"]
        .into_iter()
        .filter(|n| view::query_get(&q, n).is_some())
        .collect();
    if !bad.is_empty() {
        return Err(unsupported_query(&bad));
    }
    if view::query_get(&q, "$top").is_some() {
        return Err(top_not_supported());
    }
    let tz = view::prefer_tz(headers)?;
    let (size, asked) = page_size(headers);
    let skiptoken = view::query_get(&q, "$skiptoken").filter(|s| !s.is_empty());
    let deltatoken = view::query_get(&q, "$deltatoken").filter(|s| !s.is_empty());

    let token = match (skiptoken, deltatoken) {
        (Some(s), _) => Some(decode_token(s).ok_or_else(|| invalid_token("$skiptoken", s))?),
        (None, Some(d)) => Some(decode_token(d).ok_or_else(|| invalid_token("$deltatoken", d))?),
        (None, None) => None,
    };
    if let Some(t) = &token {
        let expected = if skiptoken.is_some() {
            TokenKind::Skip
        } else {
            TokenKind::Delta
        };
        if t.mailbox != user_id || t.kind != expected {
            let (param, value) = match (skiptoken, deltatoken) {
                (Some(s), _) => ("$skiptoken", s),
                (None, Some(d)) => ("$deltatoken", d),
                (None, None) => ("$deltatoken", ""),
            };
            return Err(invalid_token(param, value));
        }
        // Injected faults fire on the next request that carries a token.
        let fault = {
            let mut g = lock(&st.delta.inner);
            let m = g.mailboxes.entry(user_id).or_default();
            if m.faults.gone_on_next {
                m.faults.gone_on_next = false;
                g.drop_mailbox(user_id);
                Some(true)
            } else if m.faults.sync_state_not_found_on_next {
                m.faults.sync_state_not_found_on_next = false;
                let highest = g.highest_generation(user_id);
                let held = g.held_generations(user_id);
                return Err(sync_state_not_found(t.generation, highest, &held));
            } else {
                None
            }
        };
        if fault.is_some() {
            let location = format!(
                "{}/v1.0/{}/delta?startDateTime={}&endDateTime={}&$deltatoken=",
                st.base_url(),
                target.collection_path(),
                view::encode_query_value(&t.window.start.to_string()),
                view::encode_query_value(&t.window.end.to_string()),
            );
            return Err(GraphError::new(
                StatusCode::GONE,
                "resyncRequired",
                "The sync state is no longer valid; a full synchronization is required. \
                 Follow the URL in the Location header to start over.",
            )
            .with_location(location));
        }
    }

    let (page_set_id, offset) = match (&token, skiptoken.is_some()) {
        (Some(t), true) => (t.state, t.offset as usize),
        (Some(t), false) => (incremental_round(st, user_id, target, t, tz.as_ref())?, 0),
        (None, _) => {
            let window = view::parse_window(&q)?;
            (initial_round(st, user_id, target, window, tz.as_ref())?, 0)
        }
    };
    serve_page(
        st,
        user_id,
        target,
        page_set_id,
        offset,
        size,
        asked,
        tz.as_ref(),
        token.as_ref(),
    )
}

/// Starts a round from scratch: every instance in the window; returns the page set id.
fn initial_round(
    st: &St,
    user_id: Uuid,
    target: &Target,
    window: Window,
    tz: Option<&PreferTz>,
) -> GraphResult<u64> {
    let Resolved {
        cal,
        version,
        mailbox,
    } = view::resolve(st, user_id, &target.cal)?;
    let instances = view::instances_in(&cal, window);
    let mut entries: Vec<(Arc<str>, u64)> = Vec::with_capacity(instances.len());
    let mut out: Vec<String> = Vec::with_capacity(instances.len());
    for inst in &instances {
        let (text, fp) = render_utc(inst, &mailbox);
        entries.push((Arc::from(inst.id.as_str()), fp));
        out.push(delta_item(inst, text, &mailbox, tz));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let round = Round {
        calendar: cal.id.clone(),
        window,
        calendar_version: version,
        address: mailbox,
        entries: Arc::new(entries),
    };
    Ok(store_round(st, user_id, round, out))
}

/// An incremental round from the snapshot `t` names; returns the page set id.
fn incremental_round(
    st: &St,
    user_id: Uuid,
    target: &Target,
    t: &Token,
    tz: Option<&PreferTz>,
) -> GraphResult<u64> {
    // Look the snapshot up (and take what the diff needs) without holding the lock while
    // expanding.
    let (calendar, window, old_version, old_address, old, replay) = {
        let mut g = lock(&st.delta.inner);
        let tick = g.next_tick();
        let Some(s) = g.snapshots.get_mut(&t.state) else {
            let highest = g.highest_generation(user_id);
            let held = g.held_generations(user_id);
            return Err(sync_state_not_found(t.generation, highest, &held));
        };
        if s.mailbox != user_id {
            return Err(invalid_token("$deltatoken", ""));
        }
        s.last_used = tick;
        let found = (
            s.calendar.clone(),
            s.window,
            s.calendar_version,
            s.address.clone(),
            Arc::clone(&s.entries),
        );
        let m = g.mailboxes.entry(user_id).or_default();
        let replay = std::mem::take(&mut m.faults.replay);
        (found.0, found.1, found.2, found.3, found.4, replay)
    };
    let Resolved {
        cal,
        version,
        mailbox,
    } = view::resolve(st, user_id, &target.cal)?;
    if cal.id != calendar {
        return Err(invalid_token("$deltatoken", ""));
    }
    if replay == 0 && version == old_version && mailbox == old_address {
        // Nothing in the calendar changed since the snapshot (every mutation takes a new
        // version), so every instance renders as before: an empty round.
        let round = Round {
            calendar,
            window,
            calendar_version: version,
            address: mailbox,
            entries: old,
        };
        return Ok(store_round(st, user_id, round, Vec::new()));
    }
    let old_by_id: HashMap<&str, (&Arc<str>, u64)> =
        old.iter().map(|(id, fp)| (&**id, (id, *fp))).collect();
    let instances = view::instances_in(&cal, window);
    let mut entries: Vec<(Arc<str>, u64)> = Vec::with_capacity(instances.len());
    let mut out = Vec::new();
    let mut present = std::collections::HashSet::with_capacity(instances.len());
    let mut replayed = 0u32;
    for inst in &instances {
        let (text, fp) = render_utc(inst, &mailbox);
        let before = old_by_id.get(inst.id.as_str());
        let id = match before {
            Some((id, _)) => Arc::clone(id),
            None => Arc::from(inst.id.as_str()),
        };
        present.insert(Arc::clone(&id));
        let changed = before.map(|(_, fp)| *fp) != Some(fp);
        entries.push((id, fp));
        if changed {
            out.push(delta_item(inst, text, &mailbox, tz));
        } else if replayed < replay {
            // Graph documents replays: an unchanged item may come again.
            replayed += 1;
            out.push(delta_item(inst, text, &mailbox, tz));
        }
    }
    // `old` is sorted by id, so the removals come in id order.
    for (id, _) in old.iter().filter(|(id, _)| !present.contains(id)) {
        out.push(removed_item(id));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let round = Round {
        calendar,
        window,
        calendar_version: version,
        address: mailbox,
        entries: Arc::new(entries),
    };
    Ok(store_round(st, user_id, round, out))
}

/// What a round's new snapshot holds.
struct Round {
    calendar: String,
    window: Window,
    calendar_version: u64,
    address: String,
    entries: Entries,
}

/// Stores the new snapshot and the round's page set; returns the page set id.
fn store_round(st: &St, user_id: Uuid, round: Round, items: Vec<String>) -> u64 {
    let Round {
        calendar,
        window,
        calendar_version,
        address,
        entries,
    } = round;
    let mut g = lock(&st.delta.inner);
    let tick = g.next_tick();
    let generation = g.next_generation(user_id);
    let snap_id = fresh_id(&g.snapshots);
    g.insert_snapshot(
        snap_id,
        Snapshot {
            mailbox: user_id,
            calendar,
            window,
            generation,
            calendar_version,
            address,
            entries,
            last_used: tick,
        },
    );
    let page_id = fresh_id(&g.pages);
    g.insert_pages(
        page_id,
        PageSet {
            mailbox: user_id,
            window,
            items,
            delta_state: snap_id,
            generation,
            last_used: tick,
            done: false,
        },
    );
    page_id
}

fn fresh_id<T>(m: &HashMap<u64, T>) -> u64 {
    loop {
        let id: u64 = rand::random();
        if id != 0 && !m.contains_key(&id) {
            return id;
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn serve_page(
    st: &St,
    user_id: Uuid,
    target: &Target,
    page_set: u64,
    offset: usize,
    size: usize,
    asked: bool,
    tz: Option<&PreferTz>,
    token: Option<&Token>,
) -> GraphResult<Response> {
    let base = st.base_url();
    let body = {
        let mut g = lock(&st.delta.inner);
        let tick = g.next_tick();
        let Some(ps) = g.pages.get_mut(&page_set) else {
            let generation = token.map(|t| t.generation).unwrap_or(0);
            let highest = g.highest_generation(user_id);
            let held = g.held_generations(user_id);
            return Err(sync_state_not_found(generation, highest, &held));
        };
        ps.last_used = tick;
        let end = offset.saturating_add(size).min(ps.items.len());
        let start = offset.min(end);
        let mut body = String::with_capacity(
            256 + ps.items[start..end].iter().map(String::len).sum::<usize>(),
        );
        body.push_str("{\"@odata.context\":");
        body.push_str(&json!(format!("{base}/v1.0/$metadata#Collection(event)")).to_string());
        let link_base = format!("{base}/v1.0/{}/delta", target.collection_path());
        if end < ps.items.len() {
            let t = Token {
                kind: TokenKind::Skip,
                mailbox: user_id,
                state: page_set,
                generation: ps.generation,
                window: ps.window,
                offset: u32::try_from(end).unwrap_or(u32::MAX),
            };
            body.push_str(",\"@odata.nextLink\":");
            body.push_str(
                &json!(format!("{link_base}?$skiptoken={}", encode_token(&t))).to_string(),
            );
        } else {
            ps.done = true;
            let t = Token {
                kind: TokenKind::Delta,
                mailbox: user_id,
                state: ps.delta_state,
                generation: ps.generation,
                window: ps.window,
                offset: 0,
            };
            body.push_str(",\"@odata.deltaLink\":");
            body.push_str(
                &json!(format!("{link_base}?$deltatoken={}", encode_token(&t))).to_string(),
            );
        }
        body.push_str(",\"value\":[");
        for (i, item) in ps.items[start..end].iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            body.push_str(item);
        }
        body.push_str("]}");
        if end >= ps.items.len() {
            g.trim_done_pages();
        }
        body
    };
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; odata.metadata=minimal; odata.streaming=true; IEEE754Compatible=false; charset=utf-8"));
    let mut applied = vec!["odata.track-changes".to_owned()];
    if asked {
        applied.push(format!("odata.maxpagesize={size}"));
    }
    if let Some(tz) = tz {
        applied.push(tz.preference_applied());
    }
    if let Ok(v) = HeaderValue::from_str(&applied.join(", ")) {
        h.insert("preference-applied", v);
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn tok() -> Token {
        Token {
            kind: TokenKind::Delta,
            mailbox: Uuid::new_v4(),
            state: 0x1234_5678_9abc_def0,
            generation: 42,
            window: Window {
                start: "2024-01-01T00:00:00Z".parse().unwrap(),
                end: "2024-02-01T00:00:00.5Z".parse().unwrap(),
            },
            offset: 30,
        }
    }

    #[test]
    fn tokens_round_trip_and_are_opaque() {
        let t = tok();
        let s = encode_token(&t);
        assert_eq!(decode_token(&s), Some(t.clone()));
        // The same state encodes differently each time and does not show the mailbox id.
        let s2 = encode_token(&t);
        assert_ne!(s, s2);
        assert!(!s.contains(&t.mailbox.simple().to_string()));
        assert!(
            s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        );
    }

    #[test]
    fn tampered_and_garbage_tokens_are_rejected() {
        let s = encode_token(&tok());
        let mut bytes = s.clone().into_bytes();
        bytes[3] = if bytes[3] == b'A' { b'B' } else { b'A' };
        assert_eq!(decode_token(&String::from_utf8(bytes).unwrap()), None);
        for g in [
            "",
            "abc",
            "R0usmcCM996atia_s",
            "a.b",
            "....",
            "%%%",
            &s[..s.len() - 2],
        ] {
            assert_eq!(decode_token(g), None, "{g}");
        }
    }

    #[test]
    fn snapshot_caps_evict_least_recently_used() {
        let mut g = Inner::default();
        let mb = Uuid::new_v4();
        let w = tok().window;
        for i in 0..(STATES_PER_MAILBOX as u64 + 5) {
            let tick = g.next_tick();
            g.insert_snapshot(
                i + 1,
                Snapshot {
                    mailbox: mb,
                    calendar: "c".into(),
                    window: w,
                    generation: i,
                    calendar_version: 0,
                    address: String::new(),
                    entries: Arc::new(vec![]),
                    last_used: tick,
                },
            );
        }
        assert_eq!(g.snapshots.len(), STATES_PER_MAILBOX);
        assert!(!g.snapshots.contains_key(&1));
        assert!(g.snapshots.contains_key(&(STATES_PER_MAILBOX as u64 + 5)));
    }

    #[test]
    fn fingerprints_tell_texts_apart() {
        let base = "x".repeat(2047);
        let fp = fingerprint(&base);
        assert_eq!(fp, fingerprint(&base.clone()));
        for i in [0, 7, 8, 31, 32, 1000, 2040, 2046] {
            let mut t = base.clone().into_bytes();
            t[i] = b'y';
            assert_ne!(fingerprint(std::str::from_utf8(&t).unwrap()), fp, "{i}");
        }
        assert_ne!(fingerprint(&base[..2046]), fp);
        assert_ne!(fingerprint(""), fingerprint("\0"));
    }

    #[test]
    fn sync_state_not_found_wording() {
        let e = sync_state_not_found(149, 157, &[157, 155, 156]);
        assert_eq!(e.status, StatusCode::GONE);
        assert_eq!(e.code, "SyncStateNotFound");
        assert_eq!(
            e.message,
            "The sync state generation is not found; generation=149;[highest=157][157][155][156]."
        );
    }
}
