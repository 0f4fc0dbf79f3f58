//! [`Gen`]: the seeded generator of ids, secrets and random choices, with the seed's time
//! anchors; and what it makes directly: apps, calendars, attendee responses, recurrences and
//! their exceptions.

use std::collections::{BTreeSet, HashMap};

use calgate_recurrence::{Pattern, Range, RangeKind, Recurrence};
use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, RngCore, SeedableRng};
use uuid::Uuid;

use super::demo_data::{APP_DELEGATED_CONSENT, APP_REDIRECT_URIS};
use super::events::{Spec, add_minutes, html, ldt};
use super::{WINDOW_FUTURE_DAYS, WINDOW_PAST_DAYS};
use crate::SimError;
use crate::model::{App, Calendar, LocalDateTime, ResponseType, Secret, SeriesRecurrence};
use crate::state::PublishedApp;

/// A seeded generator of ids, secrets and choices, plus the time anchors of the seed.
pub struct Gen {
    rng: StdRng,
    now: Timestamp,
    /// Today's date (UTC) at start-up.
    today: Date,
    window_start: Timestamp,
    window_end: Timestamp,
    zones: HashMap<String, TimeZone>,
}

impl std::fmt::Debug for Gen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gen").field("now", &self.now).finish()
    }
}

/// A new app and what `--credentials-out` publishes of it.
pub(super) struct NewApp {
    pub app: App,
    secret: String,
    roles: Vec<String>,
}

/// The published credentials of a new app.
pub(super) fn publish(a: &NewApp) -> PublishedApp {
    PublishedApp {
        name: a.app.display_name.clone(),
        client_id: a.app.client_id.to_string(),
        client_secret: a.secret.clone(),
        roles: a.roles.clone(),
    }
}

pub(super) fn seed_err(e: impl std::fmt::Display) -> SimError {
    SimError::Seed(e.to_string())
}

const SECRET_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.~-";

impl Gen {
    pub fn new(seed: u64, now: Timestamp) -> Result<Self, SimError> {
        let today = now.to_zoned(TimeZone::UTC).date();
        let window_start = now
            .checked_sub(SignedDuration::from_hours(24 * WINDOW_PAST_DAYS))
            .map_err(seed_err)?;
        let window_end = now
            .checked_add(SignedDuration::from_hours(24 * WINDOW_FUTURE_DAYS))
            .map_err(seed_err)?;
        Ok(Gen {
            rng: StdRng::seed_from_u64(seed),
            now,
            today,
            window_start,
            window_end,
            zones: HashMap::new(),
        })
    }

    pub fn uuid(&mut self) -> Uuid {
        let mut b = [0u8; 16];
        self.rng.fill_bytes(&mut b);
        uuid::Builder::from_random_bytes(b).into_uuid()
    }

    /// An Exchange-style item id (same shape as [`crate::model::new_item_id`]).
    pub fn item_id(&mut self) -> String {
        use base64::Engine as _;
        let mut bytes = Vec::with_capacity(40);
        bytes.extend_from_slice(&[0x00, 0x00, 0x0d, 0x24, 0x00, 0x46]);
        let mut r = [0u8; 32];
        self.rng.fill_bytes(&mut r);
        bytes.extend_from_slice(&r);
        bytes.extend_from_slice(&[0x00, 0x00]);
        base64::engine::general_purpose::URL_SAFE.encode(bytes)
    }

    pub fn change_key(&mut self) -> String {
        use base64::Engine as _;
        let mut bytes = vec![0x16, 0x00, 0x00, 0x00];
        let mut r = [0u8; 12];
        self.rng.fill_bytes(&mut r);
        bytes.extend_from_slice(&r);
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    pub fn ical_uid(&mut self) -> String {
        use std::fmt::Write as _;
        let mut s = String::with_capacity(72);
        s.push_str("040000008200E00074C5B7101A82E00800000000");
        let mut r = [0u8; 16];
        self.rng.fill_bytes(&mut r);
        for b in r {
            let _ = write!(s, "{b:02X}");
        }
        s
    }

    /// An Active Directory password: 20 characters from letters, digits and `_.~-`, with at
    /// least one of each class so that any complexity policy would take it.
    pub fn password(&mut self) -> String {
        const CLASSES: [&[u8]; 4] = [
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZ",
            b"abcdefghijklmnopqrstuvwxyz",
            b"0123456789",
            b"_.~-",
        ];
        let mut s = String::with_capacity(20);
        for i in 0..20 {
            let set = CLASSES.get(i).copied().unwrap_or(SECRET_CHARS);
            s.push(char::from(set[self.rng.random_range(0..set.len())]));
        }
        s
    }

    /// A client-secret value shaped like Entra's (`abc8Q~` + 34 characters).
    pub fn secret_value(&mut self) -> String {
        let mut s = String::with_capacity(40);
        for i in 0..40 {
            if i == 3 {
                s.push_str("8Q~");
            }
            if (3..6).contains(&i) {
                continue;
            }
            let c = SECRET_CHARS[self.rng.random_range(0..SECRET_CHARS.len())];
            s.push(char::from(c));
        }
        s
    }

    pub(super) fn range(&mut self, r: std::ops::Range<i64>) -> i64 {
        if r.is_empty() {
            return r.start;
        }
        self.rng.random_range(r)
    }

    pub(super) fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p.clamp(0.0, 1.0))
    }

    pub(super) fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        items.choose(&mut self.rng)
    }

    pub(super) fn ago(&mut self, min_days: i64, max_days: i64) -> Timestamp {
        let secs = self.range(min_days * 86_400..max_days * 86_400 + 1);
        self.now
            .checked_sub(SignedDuration::from_secs(secs))
            .unwrap_or(self.now)
    }

    pub(super) fn zone(&mut self, name: &str) -> TimeZone {
        if let Some(z) = self.zones.get(name) {
            return z.clone();
        }
        let z = calgate_tz::to_iana(name)
            .and_then(|iana| TimeZone::get(iana).ok())
            .unwrap_or(TimeZone::UTC);
        self.zones.insert(name.to_owned(), z.clone());
        z
    }

    /// Today's date (UTC) at start-up.
    pub(super) fn today(&self) -> Date {
        self.today
    }

    /// The date `offset` days from today.
    pub(super) fn day(&self, offset: i64) -> Date {
        self.today.checked_add(offset.days()).unwrap_or(self.today)
    }

    /// A weekday `offset` days from today, moved forward past a weekend.
    pub(super) fn weekday(&self, offset: i64) -> Date {
        let d = self.day(offset);
        match d.weekday() {
            jiff::civil::Weekday::Saturday => d.checked_add(2.days()).unwrap_or(d),
            jiff::civil::Weekday::Sunday => d.checked_add(1.days()).unwrap_or(d),
            _ => d,
        }
    }

    pub(super) fn rand_day(&mut self, r: std::ops::Range<i64>) -> Date {
        let o = self.range(r);
        self.day(o)
    }

    pub(super) fn rand_weekday(&mut self, r: std::ops::Range<i64>) -> Date {
        let o = self.range(r);
        self.weekday(o)
    }

    pub(super) fn app(&mut self, name: &str, roles: &[&str], valid_for: SignedDuration) -> NewApp {
        let mut app = App::new(name);
        app.client_id = self.uuid();
        app.sp_object_id = self.uuid();
        app.app_roles = roles.iter().map(|r| (*r).to_owned()).collect();
        app.redirect_uris = APP_REDIRECT_URIS.map(str::to_owned).to_vec();
        app.delegated_consent = APP_DELEGATED_CONSENT
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let value = self.secret_value();
        let start = self
            .now
            .checked_sub(SignedDuration::from_hours(24 * 30))
            .unwrap_or(self.now);
        let expires = self.now.checked_add(valid_for).unwrap_or(self.now);
        app.secrets.push(Secret {
            key_id: self.uuid(),
            display_name: format!("{name} secret"),
            value: value.clone(),
            start,
            expires,
        });
        NewApp {
            app,
            secret: value,
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        }
    }

    pub(super) fn calendar(&mut self) -> Calendar {
        let mut c = Calendar::new(self.item_id(), "Calendar", true);
        c.change_key = self.change_key();
        c
    }

    /// A random attendee response: mostly accepted.
    pub(super) fn response(&mut self) -> ResponseType {
        let x = self.range(0..100);
        match x {
            0..70 => ResponseType::Accepted,
            70..82 => ResponseType::TentativelyAccepted,
            82..90 => ResponseType::Declined,
            _ => ResponseType::None,
        }
    }

    /// Creates the recurrence and returns it with its first date (where the series master
    /// starts).
    pub(super) fn series(
        &mut self,
        pattern: Pattern,
        start_date: Date,
        kind: RangeKind,
        zone: &str,
    ) -> Result<(SeriesRecurrence, Date), SimError> {
        let rule = Recurrence {
            pattern,
            range: Range {
                start_date,
                kind,
                recurrence_time_zone: Some(zone.to_owned()),
            },
        };
        let horizon = start_date.checked_add(800.days()).map_err(seed_err)?;
        let first = rule
            .dates_between(start_date, horizon)
            .map_err(seed_err)?
            .first()
            .copied()
            .ok_or_else(|| SimError::Seed("a seeded series has no occurrence".into()))?;
        Ok((
            SeriesRecurrence {
                rule,
                time_zone: zone.to_owned(),
            },
            first,
        ))
    }

    /// Original start instants of the series' timed occurrences within the seed window.
    fn occurrence_starts(&mut self, s: &Spec) -> Vec<(Timestamp, Date)> {
        let Some(rec) = &s.recurrence else {
            return Vec::new();
        };
        let tz = self.zone(&rec.time_zone);
        let Ok(start) = s.data.start.date_time.to_zoned(tz.clone()) else {
            return Vec::new();
        };
        let Ok(end) = s.data.end.date_time.to_zoned(tz.clone()) else {
            return Vec::new();
        };
        let duration = start.duration_until(&end);
        rec.rule
            .expand(
                s.data.start.date_time.time(),
                duration,
                &tz,
                self.window_start,
                self.window_end,
            )
            .map(|v| {
                v.into_iter()
                    .map(|o| (o.start.timestamp(), o.date))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Moves (and sometimes retitles or re-describes) `moved` occurrences of a timed series and
    /// cancels `cancelled` others, picked at random in the seed window (fewer when a pick
    /// repeats; none when the window holds fewer than three occurrences).
    pub(super) fn add_exceptions(&mut self, s: &mut Spec, moved: usize, cancelled: usize) {
        let occ = self.occurrence_starts(s);
        if occ.len() < 3 {
            return;
        }
        let mut used = BTreeSet::new();
        for i in 0..moved + cancelled {
            let idx = self.range(0..occ.len() as i64) as usize;
            if !used.insert(idx) {
                continue;
            }
            let (ts, date) = occ[idx];
            if i < moved {
                let mut d = s.data.clone();
                let shift = *self.pick(&[-60i64, 30, 60, 120, 24 * 60]).unwrap_or(&60);
                let st = ldt(date, s.data.start.date_time.time(), &s.data.start.time_zone);
                let dur = s.data.start.date_time.duration_until(s.data.end.date_time);
                d.start = add_minutes(&st, shift);
                d.end = LocalDateTime {
                    date_time: d
                        .start
                        .date_time
                        .checked_add(dur)
                        .unwrap_or(d.start.date_time),
                    time_zone: d.start.time_zone.clone(),
                };
                if self.chance(0.4) {
                    d.subject = format!("{} (moved)", s.data.subject);
                }
                if self.chance(0.3) {
                    d.body = html("Agenda changed for this week, see the notes.");
                }
                s.exceptions.push((ts, d));
            } else {
                s.cancelled.push(ts);
            }
        }
    }
}
