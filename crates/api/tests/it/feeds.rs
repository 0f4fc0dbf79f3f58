//! ICS feeds: served without a key by their token, privacy, revocation.

use calgate_core::{MailboxKind, PrivacyPolicy};
use calgate_store::NewFeed;

use crate::common::{Api, api};

async fn feed(api: &Api, address: &str, privacy: PrivacyPolicy) -> (i64, String) {
    let (token, token_hash) = calgate_api::auth::generate_feed_token();
    let id = api
        .store
        .add_feed(&NewFeed {
            address: address.to_owned(),
            token_hint: token.chars().take(6).collect(),
            token_hash,
            privacy,
        })
        .await
        .expect("feed");
    (id, format!("/v1/feeds/{token}.ics"))
}

fn unfold(ics: &str) -> String {
    ics.replace("\r\n ", "").replace("\r\n\t", "")
}

#[tokio::test]
async fn feeds_serve_the_window_with_the_narrower_privacy() {
    let api = api().await;
    let users = api.users();
    let (open, closed) = (users[0].clone(), users[1].clone());
    api.link(&open, MailboxKind::User, PrivacyPolicy::Full)
        .await;
    api.link(&closed, MailboxKind::User, PrivacyPolicy::BusyOnly)
        .await;
    assert!(api.sync().await.is_success());

    let id = api
        .store
        .mailbox(&open)
        .await
        .expect("store")
        .expect("linked")
        .id;
    let stored = api
        .store
        .instances(id, jiff::Timestamp::MIN, jiff::Timestamp::MAX)
        .await
        .expect("instances");
    let subject = stored
        .iter()
        .filter(|i| !i.instance.details_hidden(PrivacyPolicy::Full))
        .find_map(|i| i.instance.subject.clone().filter(|s| s.len() > 3))
        .expect("a subject");

    // A full feed of a full mailbox: every stored instance, with subjects.
    let (_, full) = feed(&api, &open, PrivacyPolicy::Full).await;
    let r = api.get(&full, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("text/calendar")),
        "{:?}",
        r.headers
    );
    let ics = unfold(&r.text);
    assert!(ics.starts_with("BEGIN:VCALENDAR\r\n") && ics.ends_with("END:VCALENDAR\r\n"));
    assert_eq!(ics.matches("BEGIN:VEVENT").count(), stored.len());
    assert!(
        ics.contains(&format!("SUMMARY:{}", ics_escape(&subject))),
        "{subject}"
    );

    // A busy-only feed of the same mailbox, and a full feed of a busy-only mailbox: no
    // details at all.
    let (_, busy) = feed(&api, &open, PrivacyPolicy::BusyOnly).await;
    let (_, narrowed) = feed(&api, &closed, PrivacyPolicy::Full).await;
    for path in [&busy, &narrowed] {
        let r = api.get(path, None).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let ics = unfold(&r.text);
        assert!(ics.contains("BEGIN:VEVENT"));
        assert!(!ics.contains(&subject));
        for line in ics.lines() {
            for hidden in ["LOCATION", "ATTENDEE", "ORGANIZER", "DESCRIPTION"] {
                assert!(!line.starts_with(hidden), "{line}");
            }
            if let Some(s) = line.strip_prefix("SUMMARY:") {
                assert!(s == "Busy" || s == "Free", "{line}");
            }
        }
    }

    // Unknown and revoked tokens: 404, the same answer.
    let unknown = api
        .get(
            "/v1/feeds/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.ics",
            None,
        )
        .await;
    let detail = unknown.problem(404);
    let (revoked_id, revoked) = feed(&api, &open, PrivacyPolicy::Full).await;
    assert_eq!(api.get(&revoked, None).await.status, 200);
    assert!(api.store.revoke_feed(revoked_id).await.expect("revoke"));
    assert_eq!(api.get(&revoked, None).await.problem(404), detail);
    api.get("/v1/feeds/..%2F..%2Fcalgate.db", None)
        .await
        .problem(404);
}

fn ics_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace(';', "\\;")
        .replace(',', "\\,")
        .replace('\n', "\\n")
}
