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

/// The value of the first hidden `csrf` input of a page.
fn csrf(body: &str) -> String {
    let at = body
        .find(r#"name="csrf" value=""#)
        .unwrap_or_else(|| panic!("no CSRF field in {body}"));
    let rest = &body[at + r#"name="csrf" value=""#.len()..];
    rest[..rest.find('"').expect("end of value")].to_owned()
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
        p.body.contains(room) && p.body.contains("1 of 1 mailboxes"),
        "{}",
        p.body
    );
    let p = b.get("/console/mailboxes?kind=user").await;
    assert!(!p.body.contains(room), "the filter keeps rooms out");
    let p = b.get(&format!("/console/mailboxes/{room}")).await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(p.body.contains("<caption>Stored events"), "{}", p.body);
    let p = b.get("/console/mailboxes/nobody@contoso.example").await;
    assert_eq!(p.status, StatusCode::NOT_FOUND);

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
