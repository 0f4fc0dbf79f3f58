//! Console sessions, CSRF tokens, the sign-in lockout and password hashing.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// The session cookie.
pub(crate) const SESSION_COOKIE: &str = "calgate_console";
/// The sign-in form's double-submitted CSRF cookie.
pub(crate) const LOGIN_COOKIE: &str = "calgate_console_login";
/// The longest a session lives.
const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Failed sign-ins allowed before they are slowed down.
const FREE_FAILURES: u32 = 3;
/// The longest wait after failed sign-ins.
const MAX_LOCKOUT: Duration = Duration::from_secs(30);

/// A signed-in administrator.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub csrf: String,
    /// How they signed in, for the overview ("with the administrator password").
    pub via: String,
}

#[derive(Debug, Default)]
struct Failures {
    count: u32,
    /// No attempt is checked before this instant.
    until: Option<Instant>,
}

/// How long a Connect account sign-in begun in the console waits for the browser to come back.
const SIGN_IN_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// The console's in-memory state, shared by every request.
#[derive(Debug, Default)]
pub struct ConsoleState {
    failures: Mutex<Failures>,
    /// Connect account sign-ins under way: SHA-256 of their OAuth `state` → the sign-in.
    sign_ins: Mutex<HashMap<[u8; 32], (calgate_admin::accounts::SignIn, Instant)>>,
    /// The Doctor page's last database integrity check, run in the background.
    integrity: Mutex<Integrity>,
}

/// How old the Doctor page lets its integrity check get before it runs another.
const INTEGRITY_MAX_AGE: Duration = Duration::from_secs(10 * 60);

#[derive(Debug, Default)]
struct Integrity {
    /// When the last check finished (monotonic, and as a time to show), and its line.
    last: Option<(Instant, jiff::Timestamp, calgate_admin::Check)>,
    running: bool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// 32 random bytes, URL-safe base64.
pub(crate) fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The value of cookie `name` in the request.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_owned())
}

/// Equal, in time independent of where they differ.
pub(crate) fn same(a: &str, b: &str) -> bool {
    calgate_core::ct_eq(a.as_bytes(), b.as_bytes())
}

/// Opens a session, kept in the store (by its token's SHA-256) so that a restart signs nobody
/// out and every `calgate serve` sharing the store knows it: (its token for the cookie, the
/// session).
pub(crate) async fn open_session(
    store: &dyn calgate_store::Store,
    via: String,
) -> calgate_store::Result<(String, Session)> {
    let token = random_token();
    let session = Session {
        csrf: random_token(),
        via,
    };
    let lifetime = jiff::SignedDuration::try_from(SESSION_LIFETIME).unwrap_or_default();
    store
        .put_console_session(&calgate_store::ConsoleSession {
            token_sha256: digest(&token).to_vec(),
            csrf: session.csrf.clone(),
            via: session.via.clone(),
            expires_at: jiff::Timestamp::now() + lifetime,
        })
        .await?;
    Ok((token, session))
}

/// The live session of the request's cookie (`None` also when the store cannot be read: the
/// administrator is sent to sign in, and the error is logged).
pub(crate) async fn session_of(
    store: &dyn calgate_store::Store,
    headers: &HeaderMap,
) -> Option<Session> {
    let token = cookie(headers, SESSION_COOKIE)?;
    match store
        .console_session(&digest(&token), jiff::Timestamp::now())
        .await
    {
        Ok(s) => s.map(|s| Session {
            csrf: s.csrf,
            via: s.via,
        }),
        Err(e) => {
            tracing::warn!("console: cannot read a session: {e}");
            None
        }
    }
}

/// Ends the request's session.
pub(crate) async fn close_session(store: &dyn calgate_store::Store, headers: &HeaderMap) {
    if let Some(token) = cookie(headers, SESSION_COOKIE)
        && let Err(e) = store.remove_console_session(&digest(&token)).await
    {
        tracing::warn!("console: cannot end a session: {e}");
    }
}

impl ConsoleState {
    /// `Some(wait)`: sign-ins are refused for `wait` more.
    pub(crate) fn locked_for(&self) -> Option<Duration> {
        let f = lock(&self.failures);
        f.until
            .and_then(|u| u.checked_duration_since(Instant::now()))
            .filter(|d| !d.is_zero())
    }

    /// Records a failed sign-in; returns how long the next one must wait.
    pub(crate) fn failed(&self) -> Duration {
        let mut f = lock(&self.failures);
        f.count = f.count.saturating_add(1);
        let wait = if f.count <= FREE_FAILURES {
            Duration::ZERO
        } else {
            let exp = (f.count - FREE_FAILURES - 1).min(5);
            Duration::from_secs(1u64 << exp).min(MAX_LOCKOUT)
        };
        f.until = Some(Instant::now() + wait);
        wait
    }

    pub(crate) fn succeeded(&self) {
        *lock(&self.failures) = Failures::default();
    }

    /// The last integrity check's line (with when it ran), and whether it is too old; `None`
    /// before the first one has finished.
    pub(crate) fn integrity(&self) -> (Option<(jiff::Timestamp, calgate_admin::Check)>, bool) {
        let i = lock(&self.integrity);
        match &i.last {
            Some((at, shown, check)) => (
                Some((*shown, check.clone())),
                at.elapsed() > INTEGRITY_MAX_AGE,
            ),
            None => (None, true),
        }
    }

    /// Runs the database integrity check in the background, unless one is running.
    pub(crate) fn refresh_integrity(
        self: &std::sync::Arc<Self>,
        store: std::sync::Arc<dyn calgate_store::Store>,
    ) {
        {
            let mut i = lock(&self.integrity);
            if i.running {
                return;
            }
            i.running = true;
        }
        let this = self.clone();
        tokio::spawn(async move {
            let check = calgate_admin::lifecycle::database_check(store.as_ref()).await;
            let mut i = lock(&this.integrity);
            i.last = Some((Instant::now(), jiff::Timestamp::now(), check));
            i.running = false;
        });
    }

    /// Keeps a Connect account sign-in until its callback (at most 15 minutes).
    pub(crate) fn begin_sign_in(&self, sign_in: calgate_admin::accounts::SignIn) {
        let mut map = lock(&self.sign_ins);
        let now = Instant::now();
        map.retain(|_, (_, expires)| *expires > now);
        map.insert(digest(sign_in.state()), (sign_in, now + SIGN_IN_LIFETIME));
    }

    /// The sign-in whose OAuth `state` the callback carries (taken: a callback completes it
    /// once). `None`: unknown, already used, or expired.
    pub(crate) fn take_sign_in(&self, state: &str) -> Option<calgate_admin::accounts::SignIn> {
        let mut map = lock(&self.sign_ins);
        map.remove(&digest(state))
            .filter(|(_, expires)| *expires > Instant::now())
            .map(|(s, _)| s)
    }
}

/// An argon2id hash (PHC string) of `password`, with a random salt.
pub fn hash_password(password: &str) -> Result<String, String> {
    use argon2::password_hash::PasswordHasher;
    argon2::Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

/// Whether `password` matches the PHC string `phc`.
pub fn verify_password(phc: &str, password: &str) -> bool {
    use argon2::password_hash::PasswordVerifier;
    use argon2::password_hash::phc::PasswordHash;
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    argon2::Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_with_argon2id_and_verify_only_themselves() {
        let h = hash_password("correct horse battery").expect("hash");
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password(&h, "correct horse battery"));
        assert!(!verify_password(&h, "correct horse batterY"));
        assert!(!verify_password("not a hash", "x"));
        assert_ne!(h, hash_password("correct horse battery").expect("hash"));
    }

    #[test]
    fn failures_past_three_wait_longer_each_time_up_to_thirty_seconds() {
        let s = ConsoleState::default();
        let waits: Vec<u64> = (0..12).map(|_| s.failed().as_secs()).collect();
        assert_eq!(waits, [0, 0, 0, 1, 2, 4, 8, 16, 30, 30, 30, 30]);
        assert!(s.locked_for().is_some());
        s.succeeded();
        assert!(s.locked_for().is_none());
    }

    #[tokio::test]
    async fn sessions_are_found_by_their_cookie_only_and_outlive_a_restart() {
        let key = calgate_store::MasterKey::generate().expect("key").0;
        let t = calgate_testkit::temp_store_with(calgate_store::OpenOptions {
            master_key: Some(key.clone()),
            ..Default::default()
        })
        .await;
        let store = t.store.as_ref();
        let (token, session) = open_session(store, "test".into()).await.expect("open");
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::header::COOKIE,
            format!("other=1; {SESSION_COOKIE}={token}")
                .parse()
                .expect("header"),
        );
        assert_eq!(
            session_of(store, &h).await.map(|x| x.csrf),
            Some(session.csrf.clone())
        );
        // The store holds the token's hash, never the token.
        let kept = store
            .console_session(&digest(&token), jiff::Timestamp::now())
            .await
            .expect("read")
            .expect("kept");
        assert_ne!(kept.token_sha256, token.as_bytes());
        let mut wrong = HeaderMap::new();
        wrong.insert(
            axum::http::header::COOKIE,
            format!("{SESSION_COOKIE}={}", random_token())
                .parse()
                .expect("header"),
        );
        assert!(session_of(store, &wrong).await.is_none());
        // A second server over the same store (or this one restarted) knows the session.
        let again = calgate_store::open_with(
            &format!("sqlite://{}", t.db().display()),
            calgate_store::OpenOptions {
                master_key: Some(key),
                ..Default::default()
            },
        )
        .await
        .expect("reopen");
        assert_eq!(
            session_of(again.as_ref(), &h).await.map(|x| x.csrf),
            Some(session.csrf)
        );
        close_session(store, &h).await;
        assert!(session_of(store, &h).await.is_none());
        assert!(session_of(again.as_ref(), &h).await.is_none());
    }
}
