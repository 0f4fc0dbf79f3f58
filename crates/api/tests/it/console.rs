//! The admin console over real HTTP: sign-in (password and admin key), the lockout, CSRF on
//! every form, the pages with the store's data, Test settings from a form, sign-out.

use std::time::Duration;

use calgate_core::MailboxKind;
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};

use crate::common::api;

/// A browser without JavaScript: follows no redirect, keeps the cookies it is given.
struct Browser {
    http: reqwest::Client,
    base: String,
    cookies: Vec<(String, String)>,
}

struct Page {
    status: StatusCode,
    location: Option<String>,
    set_cookies: Vec<String>,
    csp: Option<String>,
    body: String,
}

impl Browser {
    fn new(base: &str) -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(60))
                .build()
                .expect("client"),
            base: base.to_owned(),
            cookies: Vec::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Page {
        let req = if self.cookies.is_empty() {
            req
        } else {
            req.header(COOKIE, self.cookie_header())
        };
        let r = req.send().await.expect("console answers");
        let set_cookies: Vec<String> = r
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect();
        for c in &set_cookies {
            let first = c.split(';').next().unwrap_or("");
            if let Some((k, v)) = first.split_once('=') {
                self.cookies.retain(|(n, _)| n != k);
                if !v.is_empty() {
                    self.cookies.push((k.to_owned(), v.to_owned()));
                }
            }
        }
        Page {
            status: r.status(),
            location: r
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            csp: r
                .headers()
                .get("content-security-policy")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            set_cookies,
            body: r.text().await.unwrap_or_default(),
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        let req = self.http.get(format!("{}{path}", self.base));
        self.send(req).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let req = self.http.post(format!("{}{path}", self.base)).form(form);
        self.send(req).await
    }
}

/// `s` percent-encoded for a query value.
fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The quoted value that follows `marker` (which ends with `="`) in a page, its `&` entities
/// decoded.
fn value_after(body: &str, marker: &str) -> String {
    let at = body
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker} in {body}"));
    let rest = &body[at + marker.len()..];
    rest[..rest.find('"').expect("end of value")]
        .replace("&#38;", "&")
        .replace("&amp;", "&")
}

/// The value of the first hidden `csrf` input of a page.
fn csrf(body: &str) -> String {
    value_after(body, r#"name="csrf" value=""#)
}

/// A browser signed in to the console with the admin API key.
async fn admin_browser(api: &crate::common::Api) -> Browser {
    let mut b = Browser::new(&api.base);
    let p = b.get("/console/login").await;
    let t = csrf(&p.body);
    let p = b
        .post(
            "/console/login",
            &[("csrf", &t), ("api_key", &api.admin_key)],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_signs_in_refuses_forged_forms_shows_the_store_and_signs_out() {
    let api = api().await;
    let mut b = Browser::new(&api.base);

    // Signed out: every page leads to the sign-in form.
    let p = b.get("/console/mailboxes").await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    assert_eq!(p.location.as_deref(), Some("/console/login"));
    let p = b.get("/console/login").await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(
        p.csp
            .as_deref()
            .is_some_and(|c| c.contains("default-src 'none'"))
    );
    let login_cookie = p.set_cookies.join("\n");
    assert!(
        login_cookie.contains("HttpOnly") && login_cookie.contains("SameSite=Strict"),
        "{login_cookie}"
    );
    assert!(
        p.body.contains(r#"<label for="password">"#),
        "inputs are labelled"
    );
    let token = csrf(&p.body);

    // A sign-in without the form's token is refused before any password is looked at.
    let p = b.post("/console/login", &[("password", "whatever")]).await;
    assert_eq!(p.status, StatusCode::FORBIDDEN, "{}", p.body);
    let p = b.get("/console/login").await;
    let token2 = csrf(&p.body);
    assert_ne!(token, token2);
    // No password set yet: the page says how to set one.
    let p = b
        .post("/console/login", &[("csrf", &token2), ("password", "x")])
        .await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED);
    assert!(p.body.contains("calgate admin set-password"), "{}", p.body);

    let phc = calgate_api::console::hash_password("a long console password").expect("hash");
    api.store
        .set_console_password_hash(&phc)
        .await
        .expect("set");
    // Three more failures (four in all): then each attempt waits, and an early one is refused.
    let mut last = String::new();
    for _ in 0..3 {
        let p = b.get("/console/login").await;
        let t = csrf(&p.body);
        let p = b
            .post("/console/login", &[("csrf", &t), ("password", "wrong")])
            .await;
        assert_eq!(p.status, StatusCode::UNAUTHORIZED);
        last = p.body;
    }
    assert!(last.contains("next attempt is possible in 1 s"), "{last}");
    let p = b.get("/console/login").await;
    let t = csrf(&p.body);
    let p = b
        .post(
            "/console/login",
            &[("csrf", &t), ("password", "a long console password")],
        )
        .await;
    assert_eq!(p.status, StatusCode::TOO_MANY_REQUESTS, "{}", p.body);
    assert!(p.body.contains("Too many failed sign-ins"));
    tokio::time::sleep(Duration::from_millis(1100)).await;

    // The right password: a session cookie, HttpOnly, SameSite=Strict, not Secure over http.
    let p = b.get("/console/login").await;
    let t = csrf(&p.body);
    let p = b
        .post(
            "/console/login",
            &[("csrf", &t), ("password", "a long console password")],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    assert_eq!(p.location.as_deref(), Some("/console"));
    let session = p
        .set_cookies
        .iter()
        .find(|c| c.starts_with("calgate_console="))
        .expect("a session cookie")
        .clone();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(session.contains(attr), "{session}");
    }
    assert!(!session.contains("Secure"), "{session}");

    // The pages show what the store holds.
    let room = "room-camden@contoso.example";
    calgate_testkit::link_full(api.store.as_ref(), room, "contoso", MailboxKind::Room).await;
    let s = api
        .engine
        .sync(&calgate_sync::SyncRequest::default(), None)
        .await
        .expect("sync");
    assert!(s.is_success(), "{s}");
    let p = b.get("/console").await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(
        p.body.contains("<strong>1</strong> linked mailboxes"),
        "{}",
        p.body
    );
    assert!(p.body.contains("with the administrator password"));
    let p = b.get("/console/mailboxes?q=camden&kind=room").await;
    assert!(
        p.body.contains(room) && p.body.contains("1–1 of 1 matching (1 linked)"),
        "{}",
        p.body
    );
    let p = b.get("/console/mailboxes?kind=user").await;
    assert!(!p.body.contains(room), "the filter keeps rooms out");
    let p = b.get(&format!("/console/mailboxes/{room}")).await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(p.body.contains("<caption>Stored events"), "{}", p.body);
    assert!(
        p.body.contains(&format!(
            "Last round by</dt><dd>calgate, {}",
            calgate_store::LeaseHolder::this_process()
        )),
        "{}",
        p.body
    );
    let p = b.get("/console/mailboxes/nobody@contoso.example").await;
    assert_eq!(p.status, StatusCode::NOT_FOUND);

    // One event's history: stored, changed in Exchange, removed — each by a sync round.
    let m = api
        .store
        .mailbox(room)
        .await
        .expect("read")
        .expect("linked");
    let single = api
        .store
        .instances(m.id, jiff::Timestamp::MIN, jiff::Timestamp::MAX)
        .await
        .expect("instances")
        .into_iter()
        .find(|i| i.instance.series_master_id.is_none())
        .expect("a single event in the room");
    let id = single.instance.exchange_id.clone();
    let page = format!("/console/mailboxes/{room}/event?id={}", url_escape(&id));
    let p = b.get(&page).await;
    assert!(
        p.body.contains("first stored by a sync round"),
        "{}",
        p.body
    );
    assert!(p.body.contains("a person, in Exchange"), "{}", p.body);
    let sync = || async {
        let s = api
            .engine
            .sync(&calgate_sync::SyncRequest::default(), None)
            .await
            .expect("sync");
        assert!(s.is_success(), "{s}");
    };
    api.control
        .ok(
            reqwest::Method::PATCH,
            &format!("/mailboxes/{room}/events/{id}"),
            Some(&serde_json::json!({"subject": "Moved in Outlook"})),
        )
        .await;
    sync().await;
    let p = b.get(&page).await;
    assert!(
        p.body.contains("changed in Exchange") && p.body.contains("Moved in Outlook"),
        "{}",
        p.body
    );
    api.control
        .call(
            reqwest::Method::DELETE,
            &format!("/mailboxes/{room}/events/{id}"),
            None,
        )
        .await;
    sync().await;
    let p = b.get(&page).await;
    assert!(
        p.body.contains("removed by a sync round")
            && p.body.contains("does not hold this event now"),
        "{}",
        p.body
    );
    // "Why isn't it here?" at its time: removed on a date, as Exchange reported it.
    let at = single.instance.when.start;
    let p = b
        .get(&format!(
            "/console/mailboxes/{room}/why?date={}&time={}",
            at.strftime("%Y-%m-%d"),
            at.strftime("%H:%M")
        ))
        .await;
    assert!(
        p.body.contains("was removed from calgate on")
            && p.body.contains("Exchange reported it deleted"),
        "{}",
        p.body
    );

    // Bookings, webhooks (with a dead letter replayed) and doctor.
    let (hook, _) = api
        .store
        .add_webhook("http://127.0.0.1:9/hook", None)
        .await
        .expect("webhook");
    // A booking into a mailbox Exchange does not have fails; Retry queues it again.
    let ghost = "nobody.at.all@contoso.example";
    calgate_testkit::link_full(api.store.as_ref(), ghost, "contoso", MailboxKind::User).await;
    let start = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(48);
    let req: calgate_api::bookings::BookingRequest = serde_json::from_value(serde_json::json!({
        "subject": "Console retry",
        "start": start.to_string(),
        "end": (start + jiff::SignedDuration::from_mins(30)).to_string(),
        "time_zone": "Europe/London",
        "calendars": [{"address": ghost, "role": "organizer"}],
    }))
    .expect("request");
    let spec = calgate_api::bookings::parse_request(api.store.as_ref(), &req)
        .await
        .expect("spec");
    api.store.put_booking("retry-1", &spec).await.expect("put");
    api.engine
        .push(&calgate_sync::push::PushOptions::default())
        .await
        .expect("push runs");
    let failed =
        |b: &calgate_store::Booking| b.state() == calgate_core::booking::BookingState::Failed;
    let booking = api
        .store
        .booking("retry-1")
        .await
        .expect("read")
        .expect("there");
    assert!(failed(&booking), "{booking:?}");
    let p = b.get("/console/bookings").await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(
        p.body.contains("<h1>Bookings</h1>") && p.body.contains("Console retry"),
        "{}",
        p.body
    );
    let t = csrf(&p.body);
    let p = b.post("/console/bookings/retry-1/retry", &[]).await;
    assert_eq!(p.status, StatusCode::FORBIDDEN, "a retry without the token");
    assert_eq!(api.store.pending_pushes().await.expect("outbox"), 0);
    let p = b
        .post("/console/bookings/retry-1/retry", &[("csrf", &t)])
        .await;
    assert!(p.body.contains("queued again"), "{}", p.body);
    assert_eq!(api.store.pending_pushes().await.expect("outbox"), 1);
    let booking = api
        .store
        .booking("retry-1")
        .await
        .expect("read")
        .expect("there");
    assert!(!failed(&booking), "{booking:?}");
    let p = b.get("/console/webhooks").await;
    assert!(p.body.contains("http://127.0.0.1:9/hook"), "{}", p.body);
    let p = b
        .post(&format!("/console/webhooks/{}/replay", hook.id), &[])
        .await;
    assert_eq!(
        p.status,
        StatusCode::FORBIDDEN,
        "a replay without the token"
    );
    let p = b.get("/console/accounts").await;
    assert!(p.body.contains("No connected accounts."), "{}", p.body);
    let p = b
        .post(
            "/console/accounts/disconnect",
            &[("upn", "anna.devries@contoso.example")],
        )
        .await;
    assert_eq!(
        p.status,
        StatusCode::FORBIDDEN,
        "a disconnect without the token"
    );
    let p = b.get("/console/doctor").await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(p.body.contains("✓"), "{}", p.body);
    // The integrity check runs in the background; a reload shows its result and when.
    let started = std::time::Instant::now();
    loop {
        let p = b.get("/console/doctor").await;
        if p.body
            .contains("the database passed its integrity check (checked ")
        {
            break;
        }
        assert!(
            p.body.contains("running in the background") || p.body.contains("checking again"),
            "{}",
            p.body
        );
        assert!(started.elapsed() < Duration::from_secs(20), "{}", p.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Test settings from the connections page; a forged form (no token) does nothing.
    let p = b.get("/console/connections").await;
    assert!(p.body.contains("contoso") && p.body.contains("Test settings"));
    let t = csrf(&p.body);
    let p = b
        .post("/console/connections/contoso/test", &[("mailbox", room)])
        .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    assert!(p.body.contains("Form refused"));
    let p = b
        .post(
            "/console/connections/contoso/test",
            &[("csrf", &t), ("mailbox", room), ("purpose", "pull")],
        )
        .await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(p.body.contains("Every step passed"), "{}", p.body);
    assert!(p.body.matches("✓").count() >= 5, "{}", p.body);

    // Removing a connection with a linked mailbox is refused; unlinking needs the box ticked;
    // then both go.
    let enc_room = url_escape(room);
    let p = b
        .post(
            "/console/connections/contoso/remove",
            &[("csrf", &t), ("confirm", "on")],
        )
        .await;
    assert!(p.body.contains("still has linked mailboxes"), "{}", p.body);
    let p = b
        .post(
            &format!("/console/mailboxes/{enc_room}/unlink"),
            &[("csrf", &t)],
        )
        .await;
    assert!(p.body.contains("Not unlinked"), "{}", p.body);
    assert!(api.store.mailbox(room).await.expect("read").is_some());
    let p = b
        .post(
            &format!("/console/mailboxes/{enc_room}/unlink"),
            &[("confirm", "on")],
        )
        .await;
    assert_eq!(
        p.status,
        StatusCode::FORBIDDEN,
        "an unlink without the token"
    );
    let p = b
        .post(
            &format!("/console/mailboxes/{enc_room}/unlink"),
            &[("csrf", &t), ("confirm", "on")],
        )
        .await;
    assert!(p.body.contains("Mailbox unlinked"), "{}", p.body);
    assert!(api.store.mailbox(room).await.expect("read").is_none());
    for m in api.store.list_mailboxes().await.expect("mailboxes") {
        assert!(api.store.unlink_mailbox(&m.address).await.expect("unlink"));
    }
    let p = b
        .post("/console/connections/contoso/remove", &[("csrf", &t)])
        .await;
    assert!(p.body.contains("Not removed"), "{}", p.body);
    let p = b
        .post(
            "/console/connections/contoso/remove",
            &[("csrf", &t), ("confirm", "on")],
        )
        .await;
    assert!(p.body.contains("Connection removed"), "{}", p.body);
    assert!(
        api.store
            .connection("contoso")
            .await
            .expect("read")
            .is_none()
    );

    // Sign out: the session is gone, its cookie no longer opens a page.
    let kept = b.cookies.clone();
    let p = b.post("/console/logout", &[("csrf", &t)]).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    b.cookies = kept;
    let p = b.get("/console").await;
    assert_eq!(
        p.status,
        StatusCode::SEE_OTHER,
        "an ended session opens nothing"
    );

    // An API key signs in only with the admin scope.
    let mut k = Browser::new(&api.base);
    let p = k.get("/console/login").await;
    let t = csrf(&p.body);
    let p = k
        .post(
            "/console/login",
            &[("csrf", &t), ("api_key", &api.read_key)],
        )
        .await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED);
    assert!(p.body.contains("has no admin scope"), "{}", p.body);
    let p = k.get("/console/login").await;
    let t = csrf(&p.body);
    let p = k
        .post(
            "/console/login",
            &[("csrf", &t), ("api_key", &api.admin_key)],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let p = k.get("/console").await;
    assert!(
        p.body.contains("with the API key &#39;admin&#39;"),
        "{}",
        p.body
    );
    // Nothing secret in any page.
    assert!(!p.body.contains(&api.admin_key));
}

/// Every visible form control of the page has a label (or an aria-label), and every image an
/// alt: the console's accessibility floor, checked on each page the browser test visits.
async fn assert_labelled(d: &calgate_testkit::webdriver::Driver) {
    let unlabelled = d
        .script(
            "return [...document.querySelectorAll('input:not([type=hidden]), select, textarea, button')]\
               .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !(e.tagName === 'BUTTON' && e.textContent.trim()))\
               .map(e => e.outerHTML.slice(0, 120))",
        )
        .await;
    assert_eq!(
        unlabelled,
        serde_json::json!([]),
        "controls without a label"
    );
}

/// axe-core (from npm: `.ci/run` installs it and names its `axe.min.js` in `CALGATE_AXE_JS`),
/// read once for the browser test. Panics with the way to get it when it is not there: the
/// accessibility pass is part of the test, never skipped.
fn axe_source() -> String {
    let path = std::env::var("CALGATE_AXE_JS").unwrap_or_else(|_| {
        panic!(
            "CALGATE_AXE_JS is not set: `npm install --prefix /tmp/axe axe-core` and set it to \
             /tmp/axe/node_modules/axe-core/axe.min.js (.ci/run step 12 does this)"
        )
    });
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read axe-core at {path}: {e}"))
}

/// Runs axe-core's WCAG 2.x A/AA rules (and its best practices) on the page in the browser and
/// returns the serious and critical violations, one line each, with the nodes they concern.
async fn axe_violations(d: &calgate_testkit::webdriver::Driver, axe: &str) -> Vec<String> {
    // Injected through WebDriver, which Chromium runs outside the page's CSP (the console
    // itself has no script).
    d.script(&format!("{axe}\n;return typeof axe;")).await;
    let v = d
        .script_async(
            "const done = arguments[arguments.length - 1];\
             axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice']}})\
               .then(r => done({ok: true, passes: r.passes.length, violations: r.violations.map(v => ({\
                  id: v.id, impact: v.impact, help: v.help,\
                  nodes: v.nodes.slice(0, 3).map(n => n.target.join(' ') + ': ' + (n.failureSummary || '').replace(/\\s+/g, ' ').slice(0, 160))}))}))\
               .catch(e => done({ok: false, error: String(e)}));",
        )
        .await;
    assert_eq!(v["ok"], true, "axe-core did not run: {v}");
    assert!(
        v["passes"].as_u64().unwrap_or(0) > 0,
        "axe-core checked nothing: {v}"
    );
    // The lesser ones are printed (the test's output shows them), not failed on.
    for x in v["violations"].as_array().into_iter().flatten() {
        if matches!(x["impact"].as_str(), Some("minor" | "moderate")) {
            println!("axe-core {} ({}): {}", x["id"], x["impact"], x["help"]);
        }
    }
    v["violations"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|x| matches!(x["impact"].as_str(), Some("serious" | "critical")))
        .map(|x| {
            format!(
                "{} ({}): {} — {}",
                x["id"], x["impact"], x["help"], x["nodes"]
            )
        })
        .collect()
}

/// Waits (bounded) until the browser's URL ends with `suffix`.
async fn wait_for_url(d: &calgate_testkit::webdriver::Driver, suffix: &str) -> String {
    let started = std::time::Instant::now();
    loop {
        let u = d.url().await;
        if u.ends_with(suffix) {
            return u;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the browser stayed at {u}, not …{suffix}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Run by `.ci/run` (step 12), which installs Debian's Chromium and chromedriver: the console
/// in a real browser, by keyboard where a person would use one, with a screenshot of each page
/// in `docs/console/screenshots` (1280 × 800, and the mailboxes page on a phone).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "browser test: run by .ci/run step 12 (needs chromium and chromium-driver)"]
async fn the_console_works_in_chromium_by_keyboard_with_screenshots() {
    use calgate_testkit::webdriver::Driver;
    let api = api().await;
    let phc = calgate_api::console::hash_password("a long console password").expect("hash");
    api.store
        .set_console_password_hash(&phc)
        .await
        .expect("set");
    let room = "room-camden@contoso.example";
    calgate_testkit::link_full(api.store.as_ref(), room, "contoso", MailboxKind::Room).await;
    let person = "anna.devries@contoso.example";
    calgate_testkit::link_full(api.store.as_ref(), person, "contoso", MailboxKind::User).await;
    let s = api
        .engine
        .sync(&calgate_sync::SyncRequest::default(), None)
        .await
        .expect("sync");
    assert!(s.is_success(), "{s}");

    let shots =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/console/screenshots");
    std::fs::create_dir_all(&shots).expect("screenshot folder");
    let d = Driver::start(1280, 800).await;
    let axe = axe_source();
    let checked = std::sync::atomic::AtomicUsize::new(0);
    let shot = |name: &'static str| {
        let path = shots.join(format!("{name}.png"));
        let (d, axe, checked) = (&d, &axe, &checked);
        async move {
            assert_labelled(d).await;
            let serious = axe_violations(d, axe).await;
            assert!(
                serious.is_empty(),
                "axe-core: serious or critical violations on {name} ({}):\n{}",
                d.url().await,
                serious.join("\n")
            );
            checked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let png = d.screenshot().await;
            assert!(png.starts_with(b"\x89PNG"), "a PNG");
            std::fs::write(&path, png).expect("write the screenshot");
        }
    };

    // Signed out: the sign-in page. Keyboard only: type the password, Enter.
    d.goto(&format!("{}/console", api.base)).await;
    wait_for_url(&d, "/console/login").await;
    // The accessibility pass can fail: an input without a label is a critical violation.
    d.script(
        "const i = document.createElement('input'); i.id = 'axe-canary'; \
         document.querySelector('main').appendChild(i); return 1;",
    )
    .await;
    let canary = axe_violations(&d, &axe).await;
    assert!(
        canary.iter().any(|v| v.contains("\"label\"")),
        "axe-core did not report an unlabelled input: {canary:?}"
    );
    d.script("document.getElementById('axe-canary').remove(); return 1;")
        .await;
    let pw = d.find("#password").await;
    d.click(&pw).await;
    let outline = d
        .script("return getComputedStyle(document.activeElement).outlineStyle")
        .await;
    assert_ne!(outline, "none", "the focused input shows its focus");
    d.type_into(&pw, "a long console password").await;
    shot("01-sign-in").await;
    d.keys("\u{E007}").await;
    wait_for_url(&d, "/console").await;
    assert!(d.source().await.contains("linked mailboxes"));
    shot("02-overview").await;

    // Connections, then Test settings of the connection on one room, from the form.
    d.goto(&format!("{}/console/connections", api.base)).await;
    shot("03-connections").await;
    let mb = d.find("#mb-1").await;
    d.type_into(&mb, room).await;
    d.keys("\u{E007}").await;
    wait_for_url(&d, "/console/connections/contoso/test").await;
    let html = d.source().await;
    assert!(html.contains("Every step passed"), "{html}");
    shot("04-test-settings").await;

    // Add a connection with the secret's ID pasted instead of its Value: one ✗ with the fix.
    let (client_id, value) = api.creds.first_app().pair();
    let tenant = api.sim.tenant_id();
    d.goto(&format!("{}/console/connections#add", api.base))
        .await;
    let fill = |sel: &'static str, text: String| {
        let d = &d;
        async move {
            let e = d.find(sel).await;
            d.type_into(&e, &text).await;
        }
    };
    fill("#name", "campus".into()).await;
    fill("#tenant", tenant.clone()).await;
    fill("#client_id", client_id.clone()).await;
    fill("#secret", "0f8fad5b-d9cb-469f-a165-70867728950e".into()).await;
    d.click(
        &d.find("form[action='/console/connections'] button[type=submit]")
            .await,
    )
    .await;
    wait_for_url(&d, "/console/connections").await;
    let html = d.source().await;
    assert!(
        html.contains("✗") && html.contains("not its Value"),
        "{html}"
    );
    shot("05-secret-id-refused").await;
    // Corrected: the Value, and the simulator's endpoints.
    d.goto(&format!("{}/console/connections?again", api.base))
        .await;
    fill("#name", "campus".into()).await;
    fill("#tenant", tenant.clone()).await;
    fill("#client_id", client_id.clone()).await;
    fill("#secret", value.clone()).await;
    d.click(
        &d.find("form[action='/console/connections'] details > summary")
            .await,
    )
    .await;
    fill("#authority", api.sim.base_url.clone()).await;
    fill("#graph_url", format!("{}/v1.0", api.sim.base_url.clone())).await;
    d.click(
        &d.find("form[action='/console/connections'] button[type=submit]")
            .await,
    )
    .await;
    wait_for_url(&d, "/console/connections").await;
    let html = d.source().await;
    assert!(
        (html.contains("Every step passed") || html.contains("Passed, with warnings"))
            && !html.contains("✗"),
        "{html}"
    );
    shot("06-connection-added").await;

    // Rotate: a second secret (made in Entra ID, here the simulator), then retire the first.
    let made = api
        .control
        .ok(
            reqwest::Method::POST,
            &format!("/apps/{client_id}/secrets"),
            Some(&serde_json::json!({})),
        )
        .await;
    let new_value = made["value"].as_str().expect("a new secret").to_owned();
    d.goto(&format!("{}/console/connections", api.base)).await;
    d.click(
        &d.find("details:has(form[action='/console/connections/campus/secrets']) > summary")
            .await,
    )
    .await;
    let input = d
        .find("form[action='/console/connections/campus/secrets'] input[name=secret]")
        .await;
    d.type_into(&input, &new_value).await;
    d.keys("\u{E007}").await;
    wait_for_url(&d, "/console/connections/campus/secrets").await;
    let html = d.source().await;
    assert!(
        (html.contains("Every step passed") || html.contains("Passed, with warnings"))
            && !html.contains("✗"),
        "{html}"
    );
    d.goto(&format!("{}/console/connections", api.base)).await;
    let actions = d
        .script(
            "return [...document.querySelectorAll(\"form[action*='/connections/campus/secrets/']\")].map(f => f.getAttribute('action'))",
        )
        .await;
    let actions: Vec<String> = actions
        .as_array()
        .expect("remove forms")
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    assert_eq!(actions.len(), 2, "{actions:?}");
    // Newest first: the old secret is the second.
    d.click(
        &d.find(&format!("form[action='{}'] button", actions[1]))
            .await,
    )
    .await;
    wait_for_url(&d, "/remove").await;
    let html = d.source().await;
    assert!(html.contains("Secret removed"), "{html}");
    shot("07-secret-rotated").await;

    // Verify a room and link it.
    d.goto(&format!("{}/console/mailboxes", api.base)).await;
    fill("#v-address", "room-amstel@contoso.example".into()).await;
    d.click(&d.find("#v-connection option[value='contoso']").await)
        .await;
    d.click(
        &d.find("form[action='/console/mailboxes/verify'] button")
            .await,
    )
    .await;
    wait_for_url(&d, "/console/mailboxes/verify").await;
    let html = d.source().await;
    assert!(
        html.contains("Every step passed") && html.contains("linked as room"),
        "{html}"
    );
    shot("08-verify-room").await;

    // Discover the room lists and link the rooms ticked.
    d.goto(&format!("{}/console/mailboxes", api.base)).await;
    d.click(&d.find("#d-connection option[value='contoso']").await)
        .await;
    d.click(
        &d.find("form[action='/console/rooms/discover'] button")
            .await,
    )
    .await;
    wait_for_url(&d, "/console/rooms/discover").await;
    let html = d.source().await;
    assert!(
        html.contains("room lists") && html.contains("type=\"checkbox\""),
        "{html}"
    );
    shot("09-discover-rooms").await;
    d.click(&d.find("form[action='/console/rooms/link'] button").await)
        .await;
    wait_for_url(&d, "/console/rooms/link").await;
    let html = d.source().await;
    assert!(
        html.contains("linked as a room") && !html.contains("✗"),
        "{html}"
    );
    shot("10-rooms-linked").await;

    // Import a CSV file with bad rows: the per-row report.
    let csv = std::env::temp_dir().join(format!("calgate-console-{}.csv", std::process::id()));
    std::fs::write(
        &csv,
        "address,kind,connection,external_id,privacy\n\
         sophie.laurent@contoso.example,user,contoso,E-7,full\n\
         not-an-address,user,contoso,,\n\
         nobody@contoso.example,user,contoso,,\n\
         room-zuid@contoso.example,user,contoso,,\n",
    )
    .expect("csv");
    d.goto(&format!("{}/console/mailboxes", api.base)).await;
    let file = d.find("#i-file").await;
    d.type_into(&file, csv.to_str().expect("path")).await;
    d.click(&d.find("#i-connection option[value='contoso']").await)
        .await;
    d.click(
        &d.find("form[action='/console/mailboxes/import'] button")
            .await,
    )
    .await;
    wait_for_url(&d, "/console/mailboxes/import").await;
    let html = d.source().await;
    let _ = std::fs::remove_file(&csv);
    for want in [
        "4 rows",
        "sophie.laurent@contoso.example",
        "not-an-address",
        "nobody@contoso.example",
        "room-zuid@contoso.example",
    ] {
        assert!(html.contains(want), "{want}: {html}");
    }
    assert!(html.contains(">linked<"), "{html}");
    shot("11-import-report").await;

    // Mailboxes: search, then one mailbox with its events.
    d.goto(&format!("{}/console/mailboxes", api.base)).await;
    let q = d.find("#q").await;
    d.type_into(&q, "camden").await;
    d.keys("\u{E007}").await;
    wait_for_url(&d, "q=camden&kind=&status=").await;
    let html = d.source().await;
    assert!(html.contains(room) && !html.contains(person), "{html}");
    shot("12-mailboxes").await;
    let link = d.find("main a[href*='room-camden']").await;
    d.click(&link).await;
    wait_for_url(&d, "/console/mailboxes/room-camden%40contoso.example").await;
    assert!(d.source().await.contains("Stored events"));
    let room_week = d
        .script("return document.querySelectorAll('.week .ev').length")
        .await
        .as_u64()
        .unwrap_or(0);
    shot("13-mailbox").await;
    let first = d.find("main table a[href*='/event?id=']").await;
    d.click(&first).await;
    wait_for_url(&d, "").await;
    assert!(d.source().await.contains("first stored by a sync round"));
    shot("13b-event-history").await;
    // The week view shows busy time: the room's, or (if the room is free all week) the
    // person's, whose calendar is full.
    d.goto(&format!("{}/console/mailboxes/{person}", api.base))
        .await;
    let person_week = d
        .script("return document.querySelectorAll('.week .ev').length")
        .await
        .as_u64()
        .unwrap_or(0);
    assert!(
        room_week + person_week > 0,
        "no event in either week view: {}",
        d.source().await
    );
    shot("13c-person-week").await;

    // "Why isn't this event here?" for a Free event: calgate has it, and says what Free means.
    let mut free = None;
    let now = jiff::Timestamp::now();
    for m in api.store.list_mailboxes().await.expect("mailboxes") {
        let all = api
            .store
            .instances(m.id, now, now + jiff::SignedDuration::from_hours(24 * 300))
            .await
            .expect("instances");
        if let Some(i) = all.iter().find(|i| {
            i.instance.show_as == calgate_core::ShowAs::Free
                && !i.instance.details_hidden(m.privacy)
                && i.instance.subject.as_deref().is_some_and(|s| !s.is_empty())
        }) {
            free = Some((
                m.address.clone(),
                i.instance.subject.clone().unwrap_or_default(),
            ));
            break;
        }
    }
    let (owner, subject) = free.expect("a Free event in a linked mailbox");
    d.goto(&format!("{}/console/mailboxes/{owner}/why", api.base))
        .await;
    let field = d.find("#w-subject").await;
    d.type_into(&field, &subject).await;
    d.keys("\u{E007}").await;
    wait_for_url(&d, "&date=&time=").await;
    let html = d.source().await;
    assert!(html.contains("It is Free in Exchange"), "{html}");
    shot("14-why-free-event").await;
    // And for something never there.
    d.goto(&format!(
        "{}/console/mailboxes/{owner}/why?subject=no+such+meeting+xyz",
        api.base
    ))
    .await;
    assert!(d.source().await.contains("calgate has never seen"));

    // A form without the session's token (as another site would post it) does nothing.
    d.script(
        "const f = document.createElement('form'); f.method = 'post'; \
         f.action = '/console/connections/contoso/test'; document.body.appendChild(f); f.submit(); return 1;",
    )
    .await;
    wait_for_url(&d, "/console/connections/contoso/test").await;
    let html = d.source().await;
    assert!(html.contains("Form refused"), "{html}");
    shot("15-forged-form-refused").await;

    // Connect account: the guide's delegated flow, through the simulator's sign-in page.
    d.goto(&format!("{}/console/accounts", api.base)).await;
    shot("16-accounts").await;
    d.script("document.querySelector('#a-connection').value = 'contoso'; return 1;")
        .await;
    let hint = d.find("#a-hint").await;
    d.type_into(&hint, person).await;
    let go = d
        .find("form[action='/console/accounts/connect'] button")
        .await;
    d.click(&go).await;
    wait_for_url(&d, "/console/accounts/connect").await;
    shot("16a-connect-account").await;
    let cont = d.find("#continue").await;
    d.click(&cont).await;
    let started = std::time::Instant::now();
    let (mut signed, mut consented) = (false, false);
    loop {
        let html = d.source().await;
        if html.contains("Connect account: ") {
            assert!(html.contains("Every step passed"), "{html}");
            break;
        }
        if !signed && html.contains("name=\"login\"") && html.contains("<select") {
            signed = true;
            // The simulator's sign-in page: choose the account, sign in.
            d.script(&format!(
                "document.querySelector('select[name=login]').value = '{person}'; \
                 document.querySelector('form button[type=submit]').click(); return 1;"
            ))
            .await;
        } else if !consented && html.contains("name=\"accept\"") {
            consented = true;
            d.script("document.querySelector('button[value=yes]').click(); return 1;")
                .await;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the sign-in did not come back: {html}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(d.url().await.contains("/console/accounts/callback?"));
    shot("16b-account-connected").await;
    d.goto(&format!("{}/console/accounts", api.base)).await;
    assert!(
        d.source()
            .await
            .contains(&format!("Disconnect {person} from contoso"))
    );

    // Bookings, webhooks, doctor.
    for (path, name) in [
        ("/console/bookings", "16-bookings"),
        ("/console/webhooks", "17-webhooks"),
        ("/console/doctor", "18-doctor"),
    ] {
        d.goto(&format!("{}{path}", api.base)).await;
        wait_for_url(&d, path).await;
        shot(name).await;
    }

    // On a phone.
    d.resize(390, 844).await;
    d.goto(&format!("{}/console/mailboxes", api.base)).await;
    shot("19-mailboxes-phone").await;
    d.resize(1280, 800).await;

    // Sign out.
    d.goto(&format!("{}/console", api.base)).await;
    let out = d.find("form.signout button").await;
    d.click(&out).await;
    wait_for_url(&d, "/console/login").await;
    d.goto(&format!("{}/console/mailboxes", api.base)).await;
    wait_for_url(&d, "/console/login").await;
    shot("20-signed-out").await;
    let pages = checked.load(std::sync::atomic::Ordering::Relaxed);
    assert!(pages >= 20, "only {pages} pages checked");
    println!("axe-core: {pages} pages checked, no serious or critical violation");
}

/// Plays the browser at the simulator's sign-in page (see `calgate_testkit::sim_sign_in`).
async fn sim_sign_in(url: &str, login: &str, accept: bool) -> String {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    calgate_testkit::sim_sign_in(&http, url, login, accept).await
}

/// The sign-in link of the Connect account page.
fn continue_link(body: &str) -> String {
    value_after(body, r#"id="continue" href=""#)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_account_from_the_console_signs_in_at_entra_and_comes_back() {
    let api = api().await;
    let mut b = admin_browser(&api).await;
    let upn = "anna.devries@contoso.example";

    // The form names the redirect URI the app registration must list.
    let p = b.get("/console/accounts").await;
    let callback = format!("{}/console/accounts/callback", api.base);
    assert!(p.body.contains(&callback), "{}", p.body);
    let token = csrf(&p.body);
    // Without the session's token: refused, no sign-in begun.
    let p = b
        .post("/console/accounts/connect", &[("connection", "contoso")])
        .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);

    // Declined consent: the callback says so, with the fix, and nothing is stored.
    let p = b
        .post(
            "/console/accounts/connect",
            &[
                ("csrf", &token),
                ("connection", "contoso"),
                ("login_hint", upn),
                ("link", "on"),
                ("consent", "on"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    let url = continue_link(&p.body);
    assert!(
        url.contains("redirect_uri=") && url.contains("code_challenge="),
        "{url}"
    );
    let back = sim_sign_in(&url, upn, false).await;
    assert!(back.starts_with(&callback), "{back}");
    // As a browser coming back from another site: no session cookie (SameSite=Strict).
    let anonymous = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let r = anonymous.get(&back).send().await.expect("callback");
    assert_eq!(r.status(), 400);
    let html = r.text().await.expect("page");
    assert!(
        html.contains("Account not connected") && html.contains("access_denied"),
        "{html}"
    );
    assert!(
        api.store
            .list_accounts()
            .await
            .expect("accounts")
            .is_empty()
    );

    // Accepted: the account is stored, its calendar read, its mailbox linked.
    let p = b.get("/console/accounts").await;
    let token = csrf(&p.body);
    let p = b
        .post(
            "/console/accounts/connect",
            &[
                ("csrf", &token),
                ("connection", "contoso"),
                ("login_hint", upn),
                ("link", "on"),
            ],
        )
        .await;
    let url = continue_link(&p.body);
    let back = sim_sign_in(&url, upn, true).await;
    assert!(back.contains("code="), "{back}");
    let r = anonymous.get(&back).send().await.expect("callback");
    assert_eq!(r.status(), 200);
    let html = r.text().await.expect("page");
    assert!(html.contains("Every step passed"), "{html}");
    assert!(
        html.contains(&format!("Connect account: {upn} via contoso")),
        "{html}"
    );
    // The same callback again (a reload, or a replay): refused, nothing changes.
    let r = anonymous.get(&back).send().await.expect("callback");
    assert_eq!(r.status(), 400);
    assert!(r.text().await.expect("page").contains("Unexpected sign-in"));
    let accounts = api.store.list_accounts().await.expect("accounts");
    assert_eq!(accounts.len(), 1);
    assert_eq!(accounts[0].upn, upn);
    assert!(api.store.mailbox(upn).await.expect("mailbox").is_some());
    // And the list shows it, with a Disconnect button.
    let p = b.get("/console/accounts").await;
    assert!(
        p.body.contains(&format!("Disconnect {upn} from contoso")),
        "{}",
        p.body
    );
    // A forged callback (a state never issued) is refused.
    let p = b
        .get("/console/accounts/callback?code=abc&state=forged")
        .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
}

/// A `multipart/form-data` body of text fields and one file field: (content type, body).
fn multipart(fields: &[(&str, &str)], file: Option<(&str, &str, &str)>) -> (String, Vec<u8>) {
    let boundary = "calgate-test-boundary-7d1f0c";
    let mut body = String::new();
    for (k, v) in fields {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
        ));
    }
    if let Some((k, filename, content)) = file {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"; filename=\"{filename}\"\r\nContent-Type: application/x-pem-file\r\n\r\n{content}\r\n"
        ));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    (
        format!("multipart/form-data; boundary={boundary}"),
        body.into_bytes(),
    )
}

/// Posts the add-connection form as a browser does (multipart), with `file` as the certificate.
async fn post_connection(b: &mut Browser, f: Vec<(String, String)>, file: Option<&str>) -> Page {
    let pairs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (ct, body) = multipart(&pairs, file.map(|c| ("certificate", "app.pem", c)));
    let req = b
        .http
        .post(format!("{}/console/connections", b.base))
        .header(reqwest::header::CONTENT_TYPE, ct)
        .body(body);
    b.send(req).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_is_added_from_the_console_with_an_uploaded_certificate() {
    let api = api().await;
    let mut b = admin_browser(&api).await;
    let p = b.get("/console/connections").await;
    let token = csrf(&p.body);
    assert!(p.body.contains(r#"enctype="multipart/form-data""#));

    // The app gets a certificate (its public part registered in Entra ID).
    let (client_id, _) = api.creds.first_app().pair();
    let made = api
        .control
        .ok(
            reqwest::Method::POST,
            &format!("/apps/{client_id}/certificates"),
            Some(&serde_json::json!({"generate": true})),
        )
        .await;
    let pem = format!(
        "{}\n{}\n",
        made["private_key_pem"].as_str().expect("key"),
        made["cert_pem"].as_str().expect("cert")
    );
    let tenant = api.sim.tenant_id();
    let graph = format!("{}/v1.0", api.sim.base_url);
    let fields = |token: &str, name: &str, secret: &str| {
        vec![
            ("csrf".to_owned(), token.to_owned()),
            ("name".to_owned(), name.to_owned()),
            ("tenant".to_owned(), tenant.clone()),
            ("client_id".to_owned(), client_id.clone()),
            ("secret".to_owned(), secret.to_owned()),
            ("cloud".to_owned(), "global".to_owned()),
            ("authority".to_owned(), api.sim.base_url.clone()),
            ("graph_url".to_owned(), graph.clone()),
        ]
    };
    // Without the token: refused.
    let p = post_connection(&mut b, fields("", "cert", ""), Some(&pem)).await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    // A secret and a certificate: one or the other.
    let p = post_connection(
        &mut b,
        fields(&token, "cert", "abc~secret-value-0123456789"),
        Some(&pem),
    )
    .await;
    assert!(p.body.contains("not both"), "{}", p.body);
    // A certificate without its key: the fix says how to make the file.
    let cert_only = made["cert_pem"].as_str().expect("cert").to_owned();
    let p = post_connection(&mut b, fields(&token, "cert", ""), Some(&cert_only)).await;
    assert!(p.body.contains("holds no private key"), "{}", p.body);
    assert!(api.store.connection("cert").await.expect("read").is_none());
    // The PEM: added, and Test settings passes with a certificate assertion.
    let p = post_connection(&mut b, fields(&token, "cert", ""), Some(&pem)).await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(p.body.contains("Passed, with warnings"), "{}", p.body);
    assert!(
        p.body.contains("token acquired with certificate"),
        "{}",
        p.body
    );
    let conn = api
        .store
        .connection("cert")
        .await
        .expect("read")
        .expect("added");
    assert_eq!(conn.credentials.len(), 1);
    assert_eq!(
        conn.credentials[0].kind,
        calgate_core::CredentialKind::Certificate
    );
    // The private key is nowhere in a page.
    let p = b.get("/console/connections").await;
    assert!(!p.body.contains("PRIVATE KEY"));
}
