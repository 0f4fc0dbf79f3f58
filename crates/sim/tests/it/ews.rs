//! The EWS face over real HTTP: authentication, envelope, impersonation and delegate access,
//! FindItem (CalendarView, IndexedPageItemView, Restriction), GetItem, SyncFolderItems,
//! CreateItem/UpdateItem/DeleteItem, GetFolder, ResolveNames, ConvertId, and the shared tenant
//! model with the Graph face and the control API.

use base64::Engine as _;
use calgate_sim::ews::xml::{self, Element};
use jiff::{SignedDuration, Timestamp};

use crate::common::*;

const T: &str = "http://schemas.microsoft.com/exchange/services/2006/types";
const HQ_ROOM: &str = "room-jordaan@contoso.example";
const LON_ROOM: &str = "room-thames@contoso.example";
const EXT_SET: &str = "c11ff724-aa03-4555-9952-8fa248a11c3e";

struct Ews {
    t: TestSim,
}

#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    root: Element,
}

impl Answer {
    /// The operation's response element (first child of the SOAP body).
    fn op(&self) -> &Element {
        self.root
            .child("Body")
            .and_then(|b| b.children.first())
            .unwrap()
    }
    /// The n-th `*ResponseMessage`.
    fn msg(&self, n: usize) -> &Element {
        self.op()
            .child("ResponseMessages")
            .unwrap()
            .children
            .get(n)
            .unwrap()
    }
    fn code(&self, n: usize) -> String {
        self.msg(n).child_text("ResponseCode").unwrap().to_owned()
    }
    fn fault_code(&self) -> String {
        self.root
            .path(&["Body", "Fault", "detail", "ResponseCode"])
            .map(|e| e.text().to_owned())
            .unwrap_or_default()
    }
}

fn all<'a>(e: &'a Element, name: &str, out: &mut Vec<&'a Element>) {
    for c in &e.children {
        if c.name == name {
            out.push(c);
        }
        all(c, name, out);
    }
}

fn find_all<'a>(e: &'a Element, name: &str) -> Vec<&'a Element> {
    let mut v = Vec::new();
    all(e, name, &mut v);
    v
}

fn envelope(header: &str, body: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:t="{T}" xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages">
<soap:Header><t:RequestServerVersion Version="Exchange2016"/>{header}</soap:Header>
<soap:Body>{body}</soap:Body></soap:Envelope>"#
    )
}

fn impersonate(addr: &str) -> String {
    format!(
        "<t:ExchangeImpersonation><t:ConnectingSID><t:PrimarySmtpAddress>{addr}</t:PrimarySmtpAddress></t:ConnectingSID></t:ExchangeImpersonation>"
    )
}

fn ts(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

impl Ews {
    async fn start() -> Ews {
        Ews {
            t: start(Seed::Demo).await,
        }
    }

    fn account(&self, n: usize) -> (String, String) {
        let c = self.t.creds();
        let a = &c["ews_accounts"][n];
        (
            a["username"].as_str().unwrap().to_owned(),
            a["password"].as_str().unwrap().to_owned(),
        )
    }

    async fn raw(&self, path: &str, auth: Option<(&str, &str)>, body: String) -> Answer {
        let mut rb = self
            .t
            .http
            .post(self.t.url(path))
            .header("content-type", "text/xml; charset=utf-8")
            .body(body);
        if let Some((u, p)) = auth {
            rb = rb.basic_auth(u, Some(p));
        }
        let r = rb.send().await.unwrap();
        let status = r.status();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        let root = if status == 401 || status == 503 {
            Element::default()
        } else {
            xml::parse(text.as_bytes()).unwrap_or_else(|e| panic!("{e}: {text}"))
        };
        Answer {
            status,
            headers,
            root,
        }
    }

    /// Calls as account `n` (0: svc-calgate, all; 1: svc-rooms, HQ room list; 2: svc-delegate).
    async fn call_as(&self, n: usize, header: &str, body: &str) -> Answer {
        let (u, p) = self.account(n);
        self.raw("/EWS/Exchange.asmx", Some((&u, &p)), envelope(header, body))
            .await
    }

    /// Calls as svc-calgate impersonating `mailbox`.
    async fn call(&self, mailbox: &str, body: &str) -> Answer {
        self.call_as(0, &impersonate(mailbox), body).await
    }

    async fn calendar_view(
        &self,
        mailbox: &str,
        from: Timestamp,
        to: Timestamp,
        extra: &str,
    ) -> Answer {
        self.call(
            mailbox,
            &format!(
                r#"<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties><t:FieldURI FieldURI="item:Subject"/><t:FieldURI FieldURI="calendar:Start"/><t:FieldURI FieldURI="calendar:CalendarItemType"/></t:AdditionalProperties></m:ItemShape><m:CalendarView {extra} StartDate="{}" EndDate="{}"/><m:ParentFolderIds><t:DistinguishedFolderId Id="calendar"/></m:ParentFolderIds></m:FindItem>"#,
                ts(from),
                ts(to)
            ),
        )
        .await
    }

    async fn create(&self, mailbox: &str, send: &str, item: &str) -> Answer {
        let send = if send.is_empty() {
            String::new()
        } else {
            format!(r#" SendMeetingInvitations="{send}""#)
        };
        self.call(
            mailbox,
            &format!(
                r#"<m:CreateItem{send}><m:SavedItemFolderId><t:DistinguishedFolderId Id="calendar"/></m:SavedItemFolderId><m:Items><t:CalendarItem>{item}</t:CalendarItem></m:Items></m:CreateItem>"#
            ),
        )
        .await
    }

    async fn get_item(&self, mailbox: &str, id_xml: &str, props: &str) -> Answer {
        self.call(
            mailbox,
            &format!(
                r#"<m:GetItem><m:ItemShape><t:BaseShape>AllProperties</t:BaseShape><t:AdditionalProperties>{props}</t:AdditionalProperties></m:ItemShape><m:ItemIds>{id_xml}</m:ItemIds></m:GetItem>"#
            ),
        )
        .await
    }
}

fn item_id(a: &Answer) -> (String, String) {
    let id = find_all(a.op(), "ItemId")[0];
    (
        id.attr("Id").unwrap().to_owned(),
        id.attr("ChangeKey").unwrap_or("").to_owned(),
    )
}

fn soon(hours: i64) -> Timestamp {
    let now = Timestamp::now().as_second();
    Timestamp::from_second(now - now.rem_euclid(3600) + hours * 3600).unwrap()
}

#[tokio::test]
async fn authentication_and_envelope() {
    let e = Ews::start().await;
    let body = envelope(
        "",
        r#"<m:GetFolder><m:FolderShape><t:BaseShape>Default</t:BaseShape></m:FolderShape><m:FolderIds><t:DistinguishedFolderId Id="calendar"><t:Mailbox><t:EmailAddress>room-thames@contoso.example</t:EmailAddress></t:Mailbox></t:DistinguishedFolderId></m:FolderIds></m:GetFolder>"#,
    );
    // No credentials: 401 offering Negotiate, NTLM and Basic.
    let a = e.raw("/EWS/Exchange.asmx", None, body.clone()).await;
    assert_eq!(a.status, 401);
    let offers: Vec<&str> = a
        .headers
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(
        offers.contains(&"Negotiate") && offers.contains(&"NTLM"),
        "{offers:?}"
    );
    assert!(
        offers.iter().any(|o| o.starts_with("Basic realm=")),
        "{offers:?}"
    );
    // Wrong password.
    let (u, p) = e.account(2);
    let a = e
        .raw("/EWS/Exchange.asmx", Some((&u, "nope")), body.clone())
        .await;
    assert_eq!(a.status, 401);
    // Right password, UPN form, any case of the path (IIS).
    let upn = format!("{}@contoso.example", u.split('\\').nth(1).unwrap());
    let a = e
        .raw("/ews/exchange.ASMX", Some((&upn, &p)), body.clone())
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.code(0), "NoError");
    let v = a.root.path(&["Header", "ServerVersionInfo"]).unwrap();
    assert_eq!(v.ns, T);
    assert_eq!(v.attr("MajorVersion"), Some("15"));
    assert_eq!(v.attr("MinorVersion"), Some("2"));
    assert_eq!(v.attr("MajorBuildNumber"), Some("1118"));
    assert!(
        a.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/xml; charset=utf-8")
    );
    // An NTLM-only server refuses Basic and stops offering it.
    let (s, _) =
        e.t.control(
            reqwest::Method::PUT,
            "/ews/auth",
            Some(&json!({"basic": false})),
        )
        .await;
    assert_eq!(s, 200);
    let a = e
        .raw("/EWS/Exchange.asmx", Some((&u, &p)), body.clone())
        .await;
    assert_eq!(a.status, 401);
    let offers: Vec<&str> = a
        .headers
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(offers, vec!["Negotiate", "NTLM"]);
    e.t.control(
        reqwest::Method::PUT,
        "/ews/auth",
        Some(&json!({"basic": true})),
    )
    .await;
    // Malformed XML → SOAP fault ErrorSchemaValidation (HTTP 500).
    let a = e
        .raw(
            "/EWS/Exchange.asmx",
            Some((&u, &p)),
            "<soap:Envelope".into(),
        )
        .await;
    assert_eq!(a.status, 500);
    assert_eq!(a.fault_code(), "ErrorSchemaValidation");
    // No operation → ErrorInvalidRequest; an unknown schema version → ErrorInvalidServerVersion.
    let a = e
        .raw("/EWS/Exchange.asmx", Some((&u, &p)), envelope("", ""))
        .await;
    assert_eq!(
        (a.status.as_u16(), a.fault_code().as_str()),
        (500, "ErrorInvalidRequest")
    );
    let bad = envelope(
        "",
        "<m:ResolveNames><m:UnresolvedEntry>x</m:UnresolvedEntry></m:ResolveNames>",
    )
    .replace("Exchange2016", "Exchange2099");
    let a = e.raw("/EWS/Exchange.asmx", Some((&u, &p)), bad).await;
    assert_eq!(a.fault_code(), "ErrorInvalidServerVersion");
    // Credentials document.
    let c = e.t.creds();
    assert!(
        c["ews_url"]
            .as_str()
            .unwrap()
            .ends_with("/EWS/Exchange.asmx")
    );
    let imp: Vec<&str> = c["ews_accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["impersonation"].as_str().unwrap())
        .collect();
    assert_eq!(
        imp,
        vec!["all", "room-list:rooms-hq@contoso.example", "none"]
    );
}

#[tokio::test]
async fn impersonation_scopes_and_delegate_access() {
    let e = Ews::start().await;
    let get_cal = |mbx: &str| {
        format!(
            r#"<m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape><m:FolderIds><t:DistinguishedFolderId Id="calendar">{mbx}</t:DistinguishedFolderId></m:FolderIds></m:GetFolder>"#
        )
    };
    let mbx = |a: &str| format!("<t:Mailbox><t:EmailAddress>{a}</t:EmailAddress></t:Mailbox>");
    // svc-rooms: the HQ room list only.
    let a = e.call_as(1, &impersonate(HQ_ROOM), &get_cal("")).await;
    assert_eq!(a.code(0), "NoError");
    let a = e.call_as(1, &impersonate(LON_ROOM), &get_cal("")).await;
    assert_eq!(
        (a.status.as_u16(), a.fault_code().as_str()),
        (500, "ErrorImpersonateUserDenied")
    );
    let a = e
        .call_as(1, &impersonate("nobody@contoso.example"), &get_cal(""))
        .await;
    assert_eq!(a.fault_code(), "ErrorNonExistentMailbox");
    // Impersonated calls act as that user: another mailbox is denied.
    let a = e
        .call_as(1, &impersonate(HQ_ROOM), &get_cal(&mbx(LON_ROOM)))
        .await;
    assert_eq!(a.code(0), "ErrorAccessDenied");
    // svc-delegate: no impersonation, delegate access to the London rooms.
    let a = e.call_as(2, &impersonate(LON_ROOM), &get_cal("")).await;
    assert_eq!(a.fault_code(), "ErrorImpersonateUserDenied");
    let a = e.call_as(2, "", &get_cal(&mbx(LON_ROOM))).await;
    assert_eq!(a.code(0), "NoError");
    let a = e.call_as(2, "", &get_cal(&mbx(HQ_ROOM))).await;
    assert_eq!(a.code(0), "ErrorAccessDenied");
    let a = e
        .call_as(2, "", &get_cal(&mbx("nobody@contoso.example")))
        .await;
    assert_eq!(a.code(0), "ErrorNonExistentMailbox");
    // No mailbox of its own and no <t:Mailbox>.
    let a = e.call_as(2, "", &get_cal("")).await;
    assert_eq!(a.code(0), "ErrorMissingEmailAddress");
}

#[tokio::test]
async fn calendar_view_lists_instances_stably_and_enforces_limits() {
    let e = Ews::start().await;
    let (from, to) = (soon(-24 * 14), soon(24 * 28));
    let a = e.calendar_view(HQ_ROOM, from, to, "").await;
    assert_eq!(a.code(0), "NoError");
    let items = find_all(a.op(), "CalendarItem");
    assert!(items.len() > 5, "{}", items.len());
    let kinds: Vec<&str> = items
        .iter()
        .map(|i| i.child_text("CalendarItemType").unwrap())
        .collect();
    assert!(
        kinds
            .iter()
            .all(|k| matches!(*k, "Single" | "Occurrence" | "Exception"))
    );
    assert!(kinds.contains(&"Occurrence"), "{kinds:?}");
    let starts: Vec<&str> = items
        .iter()
        .map(|i| i.child_text("Start").unwrap())
        .collect();
    let mut sorted = starts.clone();
    sorted.sort();
    assert_eq!(starts, sorted, "sorted by start");
    // Occurrence ids are the same on every call.
    let ids = |a: &Answer| -> Vec<String> {
        find_all(a.op(), "ItemId")
            .iter()
            .map(|i| i.attr("Id").unwrap().to_owned())
            .collect()
    };
    let again = e.calendar_view(HQ_ROOM, from, to, "").await;
    assert_eq!(ids(&a), ids(&again));
    // MaxEntriesReturned: the first N by start, IncludesLastItemInRange=false.
    let few = e
        .calendar_view(HQ_ROOM, from, to, r#"MaxEntriesReturned="3""#)
        .await;
    let root = few.msg(0).child("RootFolder").unwrap();
    assert_eq!(root.attr("IncludesLastItemInRange"), Some("false"));
    assert_eq!(ids(&few), ids(&a)[..3].to_vec());
    // Over two years.
    let a = e
        .calendar_view(
            HQ_ROOM,
            from,
            from + SignedDuration::from_hours(24 * 800),
            "",
        )
        .await;
    assert_eq!(a.code(0), "ErrorCalendarViewRangeTooBig");
    // CalendarView + Restriction is refused.
    let a = e
        .call(
            HQ_ROOM,
            &format!(
                r#"<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape><m:CalendarView StartDate="{}" EndDate="{}"/><m:Restriction><t:Exists><t:FieldURI FieldURI="item:Subject"/></t:Exists></m:Restriction><m:ParentFolderIds><t:DistinguishedFolderId Id="calendar"/></m:ParentFolderIds></m:FindItem>"#,
                ts(from),
                ts(to)
            ),
        )
        .await;
    assert_eq!(a.code(0), "ErrorInvalidRequest");
}

#[tokio::test]
async fn create_is_shared_with_graph_and_extended_properties_are_one_property() {
    let e = Ews::start().await;
    let (s, en) = (soon(24 * 3), soon(24 * 3 + 1));
    let item = format!(
        r#"<t:Subject>Booking &lt;1&gt; &amp; co</t:Subject><t:Body BodyType="Text">body</t:Body><t:ExtendedProperty><t:ExtendedFieldURI PropertySetId="{EXT_SET}" PropertyName="calgate-booking" PropertyType="String"/><t:Value>b-42</t:Value></t:ExtendedProperty><t:Start>{}</t:Start><t:End>{}</t:End><t:LegacyFreeBusyStatus>OOF</t:LegacyFreeBusyStatus><t:Location>Desk 4</t:Location><t:StartTimeZone Id="W. Europe Standard Time"/>"#,
        ts(s),
        ts(en)
    );
    // SendMeetingInvitations is required.
    let a = e.create(HQ_ROOM, "", &item).await;
    assert_eq!(a.code(0), "ErrorSendMeetingInvitationsRequired");
    let a = e.create(HQ_ROOM, "SendToNone", &item).await;
    assert_eq!(a.code(0), "NoError");
    let (id, ck) = item_id(&a);
    assert!(!ck.is_empty());
    // Graph sees the same event, the property under its Graph id, showAs oof.
    let token = e.t.default_token().await;
    let prop = format!("String {{{EXT_SET}}} Name calgate-booking");
    let filter = format!(
        "/v1.0/users/{HQ_ROOM}/events?$filter=singleValueExtendedProperties/Any(ep:%20ep/id%20eq%20'{}'%20and%20ep/value%20eq%20'b-42')&$expand=singleValueExtendedProperties($filter=id%20eq%20'{}')",
        prop.replace(' ', "%20"),
        prop.replace(' ', "%20")
    );
    let (st, _, body) = e.t.get(&token, &filter).await;
    assert_eq!(st, 200, "{body}");
    let ev = &body["value"][0];
    assert_eq!(ev["subject"], "Booking <1> & co");
    assert_eq!(ev["showAs"], "oof");
    assert_eq!(ev["singleValueExtendedProperties"][0]["value"], "b-42");
    let graph_id = ev["id"].as_str().unwrap().to_owned();
    // Graph and EWS ids differ but name the same item; the Graph id sits inside the EWS id.
    assert_ne!(graph_id, id);
    // A Graph write of the property is visible through EWS, and a restriction finds it.
    let (st, _, _) =
        e.t.send_json(
            reqwest::Method::PATCH,
            &token,
            &format!("/v1.0/users/{HQ_ROOM}/events/{graph_id}"),
            &json!({"singleValueExtendedProperties": [{"id": prop, "value": "b-43"}]}),
        )
        .await;
    assert_eq!(st, 200);
    let ext = format!(
        r#"<t:ExtendedFieldURI PropertySetId="{EXT_SET}" PropertyName="calgate-booking" PropertyType="String"/>"#
    );
    let find = |restriction: String| {
        format!(
            r#"<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties>{ext}<t:FieldURI FieldURI="item:Subject"/></t:AdditionalProperties></m:ItemShape><m:IndexedPageItemView MaxEntriesReturned="50" Offset="0" BasePoint="Beginning"/><m:Restriction>{restriction}</m:Restriction><m:ParentFolderIds><t:DistinguishedFolderId Id="calendar"/></m:ParentFolderIds></m:FindItem>"#
        )
    };
    let a = e
        .call(
            HQ_ROOM,
            &find(format!(
                r#"<t:And><t:Exists>{ext}</t:Exists><t:IsEqualTo>{ext}<t:FieldURIOrConstant><t:Constant Value="b-43"/></t:FieldURIOrConstant></t:IsEqualTo></t:And>"#
            )),
        )
        .await;
    assert_eq!(a.code(0), "NoError");
    let items = find_all(a.op(), "CalendarItem");
    assert_eq!(items.len(), 1);
    assert_eq!(
        items[0].child("ItemId").unwrap().attr("Id"),
        Some(id.as_str())
    );
    let v = find_all(items[0], "Value");
    assert_eq!(v[0].text(), "b-43");
    let a = e
        .call(
            HQ_ROOM,
            &find(format!(
                r#"<t:IsEqualTo>{ext}<t:FieldURIOrConstant><t:Constant Value="b-42"/></t:FieldURIOrConstant></t:IsEqualTo>"#
            )),
        )
        .await;
    assert!(find_all(a.op(), "CalendarItem").is_empty());
    // GetItem shows what was written, in the start zone, escaped.
    let a = e
        .get_item(HQ_ROOM, &format!(r#"<t:ItemId Id="{id}"/>"#), "")
        .await;
    let it = find_all(a.op(), "CalendarItem")[0];
    assert_eq!(it.child_text("Subject"), Some("Booking <1> & co"));
    assert_eq!(it.child_text("LegacyFreeBusyStatus"), Some("OOF"));
    assert_eq!(it.child_text("CalendarItemType"), Some("Single"));
    assert_eq!(it.child_text("Start"), Some(ts(s).as_str()));
    assert_eq!(
        it.child("StartTimeZone").unwrap().attr("Id"),
        Some("W. Europe Standard Time")
    );
    assert_ne!(
        it.child("ItemId").unwrap().attr("ChangeKey"),
        Some(ck.as_str()),
        "changed by Graph"
    );
}

#[tokio::test]
async fn graph_and_control_changes_are_visible_through_ews() {
    let e = Ews::start().await;
    let s = soon(24 * 5);
    let ev = e
        .t
        .api
        .create_event(
            LON_ROOM,
            &json!({"subject": "From Outlook", "start": {"dateTime": s.strftime("%Y-%m-%dT%H:%M:%S").to_string(), "timeZone": "UTC"},
                    "end": {"dateTime": (s + SignedDuration::from_hours(1)).strftime("%Y-%m-%dT%H:%M:%S").to_string(), "timeZone": "UTC"},
                    "showAs": "tentative", "sensitivity": "private"}),
        )
        .await;
    let a = e
        .calendar_view(
            LON_ROOM,
            s - SignedDuration::from_hours(1),
            s + SignedDuration::from_hours(2),
            "",
        )
        .await;
    let subjects: Vec<&str> = find_all(a.op(), "Subject")
        .iter()
        .map(|x| x.text())
        .collect();
    assert!(subjects.contains(&"From Outlook"), "{subjects:?}");
    let id = find_all(a.op(), "CalendarItem")
        .into_iter()
        .find(|i| i.child_text("Subject") == Some("From Outlook"))
        .unwrap()
        .child("ItemId")
        .unwrap()
        .attr("Id")
        .unwrap()
        .to_owned();
    let a = e
        .get_item(LON_ROOM, &format!(r#"<t:ItemId Id="{id}"/>"#), "")
        .await;
    let it = find_all(a.op(), "CalendarItem")[0];
    assert_eq!(it.child_text("LegacyFreeBusyStatus"), Some("Tentative"));
    assert_eq!(it.child_text("Sensitivity"), Some("Private"));
    // The control API deletes it; EWS says so.
    let gid = ev["id"].as_str().unwrap();
    assert_eq!(e.t.api.delete_event(LON_ROOM, gid).await, 204);
    let a = e
        .get_item(LON_ROOM, &format!(r#"<t:ItemId Id="{id}"/>"#), "")
        .await;
    assert_eq!(a.code(0), "ErrorItemNotFound");
    // Garbage ids.
    let a = e
        .get_item(LON_ROOM, r#"<t:ItemId Id="not base64!"/>"#, "")
        .await;
    assert_eq!(a.code(0), "ErrorInvalidIdMalformed");
}

/// Creates a weekly series (5 occurrences) in `mailbox` through EWS; its EWS id.
async fn weekly_series(e: &Ews, mailbox: &str, start: Timestamp) -> String {
    let date = start.to_zoned(jiff::tz::TimeZone::UTC).date();
    let day = format!("{:?}", date.weekday());
    let item = format!(
        r#"<t:Subject>Weekly</t:Subject><t:Start>{}</t:Start><t:End>{}</t:End><t:Recurrence><t:WeeklyRecurrence><t:Interval>1</t:Interval><t:DaysOfWeek>{day}</t:DaysOfWeek></t:WeeklyRecurrence><t:NumberedRecurrence><t:StartDate>{date}</t:StartDate><t:NumberOfOccurrences>5</t:NumberOfOccurrences></t:NumberedRecurrence></t:Recurrence><t:StartTimeZone Id="UTC"/>"#,
        ts(start),
        ts(start + SignedDuration::from_hours(1))
    );
    let a = e.create(mailbox, "SendToNone", &item).await;
    assert_eq!(a.code(0), "NoError");
    item_id(&a).0
}

#[tokio::test]
async fn series_occurrences_exceptions_and_deletions() {
    let e = Ews::start().await;
    let start = soon(24 * 2);
    let master = weekly_series(&e, HQ_ROOM, start).await;
    let props = r#"<t:FieldURI FieldURI="calendar:Recurrence"/><t:FieldURI FieldURI="calendar:ModifiedOccurrences"/><t:FieldURI FieldURI="calendar:DeletedOccurrences"/>"#;
    // Second occurrence by index; its master back by RecurringMasterItemId.
    let a = e
        .get_item(
            HQ_ROOM,
            &format!(r#"<t:OccurrenceItemId RecurringMasterId="{master}" InstanceIndex="2"/>"#),
            "",
        )
        .await;
    assert_eq!(a.code(0), "NoError");
    let occ = find_all(a.op(), "CalendarItem")[0];
    assert_eq!(occ.child_text("CalendarItemType"), Some("Occurrence"));
    let occ_start = ts(start + SignedDuration::from_hours(24 * 7));
    assert_eq!(occ.child_text("Start"), Some(occ_start.as_str()));
    let occ_id = occ.child("ItemId").unwrap().attr("Id").unwrap().to_owned();
    let occ_ck = occ
        .child("ItemId")
        .unwrap()
        .attr("ChangeKey")
        .unwrap()
        .to_owned();
    let a = e
        .get_item(
            HQ_ROOM,
            &format!(r#"<t:RecurringMasterItemId OccurrenceId="{occ_id}"/>"#),
            props,
        )
        .await;
    let m = find_all(a.op(), "CalendarItem")[0];
    assert_eq!(m.child_text("CalendarItemType"), Some("RecurringMaster"));
    assert!(m.path(&["Recurrence", "WeeklyRecurrence"]).is_some());
    assert_eq!(
        m.path(&["Recurrence", "NumberedRecurrence", "NumberOfOccurrences"])
            .map(Element::text),
        Some("5")
    );
    let a = e
        .get_item(
            HQ_ROOM,
            &format!(r#"<t:OccurrenceItemId RecurringMasterId="{master}" InstanceIndex="6"/>"#),
            "",
        )
        .await;
    assert_eq!(
        a.code(0),
        "ErrorCalendarOccurrenceIndexIsOutOfRecurrenceRange"
    );
    // Move occurrence 2 (→ exception): a stale change key with NeverOverwrite is refused.
    let upd = |ck: &str, policy: &str, send: bool| {
        let send = if send {
            r#" SendMeetingInvitationsOrCancellations="SendToNone""#
        } else {
            ""
        };
        format!(
            r#"<m:UpdateItem ConflictResolution="{policy}"{send}><m:ItemChanges><t:ItemChange><t:ItemId Id="{occ_id}" ChangeKey="{ck}"/><t:Updates><t:SetItemField><t:FieldURI FieldURI="item:Subject"/><t:CalendarItem><t:Subject>Moved</t:Subject></t:CalendarItem></t:SetItemField><t:SetItemField><t:FieldURI FieldURI="calendar:Start"/><t:CalendarItem><t:Start>{}</t:Start></t:CalendarItem></t:SetItemField><t:SetItemField><t:FieldURI FieldURI="calendar:End"/><t:CalendarItem><t:End>{}</t:End></t:CalendarItem></t:SetItemField></t:Updates></t:ItemChange></m:ItemChanges></m:UpdateItem>"#,
            ts(start + SignedDuration::from_hours(24 * 7 + 2)),
            ts(start + SignedDuration::from_hours(24 * 7 + 3))
        )
    };
    let a = e.call(HQ_ROOM, &upd("AAAA", "NeverOverwrite", true)).await;
    assert_eq!(a.code(0), "ErrorIrresolvableConflict");
    let a = e
        .call(HQ_ROOM, &upd(&occ_ck, "NeverOverwrite", false))
        .await;
    assert_eq!(
        a.code(0),
        "ErrorSendMeetingInvitationsOrCancellationsRequired"
    );
    let a = e.call(HQ_ROOM, &upd(&occ_ck, "NeverOverwrite", true)).await;
    assert_eq!(a.code(0), "NoError");
    let (xid, xck) = item_id(&a);
    assert_eq!(xid, occ_id, "an exception keeps its occurrence's id");
    assert_ne!(xck, occ_ck);
    // Delete occurrence 3; SendMeetingCancellations is required.
    let del = |send: &str| {
        format!(
            r#"<m:DeleteItem DeleteType="HardDelete"{send}><m:ItemIds><t:OccurrenceItemId RecurringMasterId="{master}" InstanceIndex="3"/></m:ItemIds></m:DeleteItem>"#
        )
    };
    let a = e.call(HQ_ROOM, &del("")).await;
    assert_eq!(a.code(0), "ErrorSendMeetingCancellationsRequired");
    let a = e
        .call(HQ_ROOM, &del(r#" SendMeetingCancellations="SendToNone""#))
        .await;
    assert_eq!(a.code(0), "NoError");
    let a = e
        .get_item(HQ_ROOM, &format!(r#"<t:ItemId Id="{master}"/>"#), props)
        .await;
    let m = find_all(a.op(), "CalendarItem")[0];
    let modified = find_all(m.child("ModifiedOccurrences").unwrap(), "Occurrence");
    assert_eq!(modified.len(), 1);
    assert_eq!(
        modified[0].child_text("OriginalStart"),
        Some(occ_start.as_str())
    );
    let deleted = find_all(m.child("DeletedOccurrences").unwrap(), "DeletedOccurrence");
    assert_eq!(
        deleted[0].child_text("Start"),
        Some(ts(start + SignedDuration::from_hours(24 * 14)).as_str())
    );
    let a = e
        .get_item(
            HQ_ROOM,
            &format!(r#"<t:OccurrenceItemId RecurringMasterId="{master}" InstanceIndex="3"/>"#),
            "",
        )
        .await;
    assert_eq!(a.code(0), "ErrorCalendarOccurrenceIsDeletedFromRecurrence");
    // The view shows 4 instances, one an exception; no master.
    let a = e
        .calendar_view(
            HQ_ROOM,
            start - SignedDuration::from_hours(1),
            start + SignedDuration::from_hours(24 * 35),
            "",
        )
        .await;
    let weekly: Vec<&str> = find_all(a.op(), "CalendarItem")
        .into_iter()
        .filter(|i| matches!(i.child_text("Subject"), Some("Weekly" | "Moved")))
        .map(|i| i.child_text("CalendarItemType").unwrap())
        .collect();
    assert_eq!(
        weekly,
        vec!["Occurrence", "Exception", "Occurrence", "Occurrence"]
    );
    // Deleting the master deletes the series.
    let a = e
        .call(
            HQ_ROOM,
            &format!(
                r#"<m:DeleteItem DeleteType="MoveToDeletedItems" SendMeetingCancellations="SendToNone"><m:ItemIds><t:ItemId Id="{master}"/></m:ItemIds></m:DeleteItem>"#
            ),
        )
        .await;
    assert_eq!(a.code(0), "NoError");
    let a = e
        .get_item(HQ_ROOM, &format!(r#"<t:ItemId Id="{master}"/>"#), "")
        .await;
    assert_eq!(a.code(0), "ErrorItemNotFound");
}

#[tokio::test]
async fn meeting_invitations_follow_send_meeting_invitations() {
    let e = Ews::start().await;
    let organizer = "eva.jansen@contoso.example";
    let attendee = "noah.fischer@contoso.example";
    let s = soon(24 * 9);
    let item = |subject: &str| {
        format!(
            r#"<t:Subject>{subject}</t:Subject><t:Start>{}</t:Start><t:End>{}</t:End><t:RequiredAttendees><t:Attendee><t:Mailbox><t:EmailAddress>{attendee}</t:EmailAddress></t:Mailbox></t:Attendee></t:RequiredAttendees>"#,
            ts(s),
            ts(s + SignedDuration::from_mins(30))
        )
    };
    e.t.control(reqwest::Method::DELETE, "/invitations", None)
        .await;
    let a = e.create(organizer, "SendToNone", &item("Quiet")).await;
    assert_eq!(a.code(0), "NoError");
    let (_, inv) =
        e.t.control(reqwest::Method::GET, "/invitations", None)
            .await;
    assert_eq!(inv["totals"]["invitations"], 0, "{inv}");
    let a = e
        .create(organizer, "SendToAllAndSaveCopy", &item("Loud"))
        .await;
    assert_eq!(a.code(0), "NoError");
    let (_, inv) =
        e.t.control(reqwest::Method::GET, "/invitations", None)
            .await;
    assert_eq!(inv["totals"]["request"], 1, "{inv}");
    // The attendee's calendar has its copy (as the Graph face's meetings do).
    let a = e
        .calendar_view(
            attendee,
            s - SignedDuration::from_mins(1),
            s + SignedDuration::from_mins(31),
            "",
        )
        .await;
    let subjects: Vec<&str> = find_all(a.op(), "Subject")
        .iter()
        .map(|x| x.text())
        .collect();
    assert!(
        subjects.contains(&"Loud") && !subjects.contains(&"Quiet"),
        "{subjects:?}"
    );
}

#[tokio::test]
async fn sync_folder_items_reports_creates_updates_deletes_and_bad_states() {
    let e = Ews::start().await;
    let sync = |state: Option<&str>, max: u32| {
        let state = state
            .map(|s| format!("<m:SyncState>{s}</m:SyncState>"))
            .unwrap_or_default();
        format!(
            r#"<m:SyncFolderItems><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties><t:FieldURI FieldURI="item:Subject"/><t:FieldURI FieldURI="calendar:CalendarItemType"/></t:AdditionalProperties></m:ItemShape><m:SyncFolderId><t:DistinguishedFolderId Id="calendar"><t:Mailbox><t:EmailAddress>{LON_ROOM}</t:EmailAddress></t:Mailbox></t:DistinguishedFolderId></m:SyncFolderId>{state}<m:MaxChangesReturned>{max}</m:MaxChangesReturned></m:SyncFolderItems>"#
        )
    };
    // The full sync, in pages of 4: masters and singles only.
    let mut state: Option<String> = None;
    let mut created = 0;
    loop {
        let a = e.call_as(2, "", &sync(state.as_deref(), 4)).await;
        assert_eq!(a.code(0), "NoError");
        let m = a.msg(0);
        let changes = m.child("Changes").unwrap();
        assert!(changes.children.len() <= 4);
        for c in &changes.children {
            assert_eq!(c.name, "Create");
            let k = c
                .path(&["CalendarItem", "CalendarItemType"])
                .unwrap()
                .text();
            assert!(matches!(k, "Single" | "RecurringMaster"), "{k}");
        }
        created += changes.children.len();
        state = Some(m.child_text("SyncState").unwrap().to_owned());
        if m.child_text("IncludesLastItemInRange") == Some("true") {
            break;
        }
    }
    assert!(created > 4);
    // Nothing new.
    let a = e.call_as(2, "", &sync(state.as_deref(), 100)).await;
    assert!(a.msg(0).child("Changes").unwrap().children.is_empty());
    let state = a.msg(0).child_text("SyncState").unwrap().to_owned();
    // Create, then update, then delete through the other faces.
    let s = soon(24 * 6);
    let ev = e
        .t
        .api
        .create_event(
            LON_ROOM,
            &json!({"subject": "S1", "start": {"dateTime": s.strftime("%Y-%m-%dT%H:%M:%S").to_string(), "timeZone": "UTC"},
                    "end": {"dateTime": (s + SignedDuration::from_hours(1)).strftime("%Y-%m-%dT%H:%M:%S").to_string(), "timeZone": "UTC"}}),
        )
        .await;
    let a = e.call_as(2, "", &sync(Some(&state), 100)).await;
    let ch = &a.msg(0).child("Changes").unwrap().children;
    assert_eq!(ch.len(), 1);
    assert_eq!(ch[0].name, "Create");
    let state = a.msg(0).child_text("SyncState").unwrap().to_owned();
    let gid = ev["id"].as_str().unwrap();
    e.t.control(
        reqwest::Method::PATCH,
        &format!("/mailboxes/{LON_ROOM}/events/{gid}"),
        Some(&json!({"subject": "S2"})),
    )
    .await;
    let a = e.call_as(2, "", &sync(Some(&state), 100)).await;
    let ch = &a.msg(0).child("Changes").unwrap().children;
    assert_eq!((ch.len(), ch[0].name.as_str()), (1, "Update"));
    assert_eq!(
        ch[0].path(&["CalendarItem", "Subject"]).unwrap().text(),
        "S2"
    );
    let state2 = a.msg(0).child_text("SyncState").unwrap().to_owned();
    assert_eq!(e.t.api.delete_event(LON_ROOM, gid).await, 204);
    let a = e.call_as(2, "", &sync(Some(&state2), 100)).await;
    let ch = &a.msg(0).child("Changes").unwrap().children;
    assert_eq!((ch.len(), ch[0].name.as_str()), (1, "Delete"));
    // A replayed older state works again (states are snapshots).
    let a = e.call_as(2, "", &sync(Some(&state), 100)).await;
    assert_eq!(a.code(0), "NoError");
    // Garbage, and a state invalidated through the control API.
    let a = e.call_as(2, "", &sync(Some("H4sIAAA=="), 100)).await;
    assert_eq!(a.code(0), "ErrorInvalidSyncStateData");
    let (st, _) =
        e.t.control(
            reqwest::Method::POST,
            &format!("/ews/mailboxes/{LON_ROOM}/invalidate-sync-state"),
            None,
        )
        .await;
    assert_eq!(st, 200);
    let a = e.call_as(2, "", &sync(Some(&state2), 100)).await;
    assert_eq!(a.code(0), "ErrorInvalidSyncStateData");
    // MaxChangesReturned is 1..512 (schema).
    for bad in [0, 513] {
        let a = e.call_as(2, "", &sync(None, bad)).await;
        assert_eq!(
            (a.status.as_u16(), a.fault_code().as_str()),
            (500, "ErrorSchemaValidation")
        );
    }
}

#[tokio::test]
async fn folders_names_and_ids() {
    let e = Ews::start().await;
    let a = e
        .call(
            HQ_ROOM,
            r#"<m:GetFolder><m:FolderShape><t:BaseShape>AllProperties</t:BaseShape></m:FolderShape><m:FolderIds><t:DistinguishedFolderId Id="root"/><t:DistinguishedFolderId Id="msgfolderroot"/><t:DistinguishedFolderId Id="calendar"/><t:DistinguishedFolderId Id="inbox"/></m:FolderIds></m:GetFolder>"#,
        )
        .await;
    assert_eq!(
        (a.code(0), a.code(1), a.code(2), a.code(3)),
        (
            "NoError".into(),
            "NoError".into(),
            "NoError".into(),
            "ErrorFolderNotFound".into()
        )
    );
    let cal = find_all(a.msg(2), "CalendarFolder")[0];
    assert_eq!(cal.child_text("FolderClass"), Some("IPF.Appointment"));
    // CreateItem into that FolderId lands in the same mailbox.
    let fid = cal
        .child("FolderId")
        .unwrap()
        .attr("Id")
        .unwrap()
        .to_owned();
    let s = soon(30);
    let a = e
        .call(
            HQ_ROOM,
            &format!(
                r#"<m:CreateItem SendMeetingInvitations="SendToNone"><m:SavedItemFolderId><t:FolderId Id="{fid}"/></m:SavedItemFolderId><m:Items><t:CalendarItem><t:Subject>In folder</t:Subject><t:Start>{}</t:Start><t:End>{}</t:End></t:CalendarItem></m:Items></m:CreateItem>"#,
                ts(s),
                ts(s + SignedDuration::from_hours(1))
            ),
        )
        .await;
    assert_eq!(a.code(0), "NoError");
    // ResolveNames.
    let a = e
        .call(HQ_ROOM, r#"<m:ResolveNames ReturnFullContactData="false"><m:UnresolvedEntry>eva.jansen@contoso.example</m:UnresolvedEntry></m:ResolveNames>"#)
        .await;
    assert_eq!(a.code(0), "NoError");
    assert_eq!(
        find_all(a.op(), "EmailAddress")[0].text(),
        "eva.jansen@contoso.example"
    );
    let a = e
        .call(HQ_ROOM, r#"<m:ResolveNames ReturnFullContactData="false"><m:UnresolvedEntry>zzzz-nobody</m:UnresolvedEntry></m:ResolveNames>"#)
        .await;
    assert_eq!(a.code(0), "ErrorNameResolutionNoResults");
    // ConvertId: exchangelib's version probe gets a per-item error; real ids round-trip.
    let a = e
        .call(HQ_ROOM, r#"<m:ConvertId DestinationFormat="EntryId"><m:SourceIds><t:AlternateId Format="EwsId" Id="DUMMY" Mailbox="DUMMY"/></m:SourceIds></m:ConvertId>"#)
        .await;
    assert_eq!(a.code(0), "ErrorInvalidIdMalformed");
    let id = item_id(
        &e.create(HQ_ROOM, "SendToNone", "<t:Subject>x</t:Subject>")
            .await,
    )
    .0;
    let a = e
        .call(HQ_ROOM, &format!(r#"<m:ConvertId DestinationFormat="HexEntryId"><m:SourceIds><t:AlternateId Format="EwsId" Id="{id}" Mailbox="{HQ_ROOM}"/></m:SourceIds></m:ConvertId>"#))
        .await;
    assert_eq!(a.code(0), "NoError");
    let hex = find_all(a.op(), "AlternateId")[0]
        .attr("Id")
        .unwrap()
        .to_owned();
    assert!(hex.starts_with("00000000"));
    // The EWS id is base64 (standard alphabet).
    assert!(
        base64::engine::general_purpose::STANDARD
            .decode(&id)
            .is_ok()
    );
}

// ---------------------------------------------------------------------------------------------
// Stage 2: NTLM, throttling, availability, rooms
// ---------------------------------------------------------------------------------------------

fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

/// A client's AUTHENTICATE message for `challenge` (NTLMv2, Unicode).
fn ntlm_authenticate(challenge: &[u8], domain: &str, user: &str, password: &str) -> Vec<u8> {
    use calgate_sim::ews::ntlm::{nt_proof, ntowf_v2};
    let server_challenge: [u8; 8] = challenge[24..32].try_into().unwrap();
    let ti_len = usize::from(u16::from_le_bytes([challenge[40], challenge[41]]));
    let ti_off = u32::from_le_bytes(challenge[44..48].try_into().unwrap()) as usize;
    let target_info = &challenge[ti_off..ti_off + ti_len];
    let mut blob = vec![1, 1, 0, 0, 0, 0, 0, 0];
    blob.extend_from_slice(&[0u8; 8]); // timestamp
    blob.extend_from_slice(&[0xaa; 8]); // client challenge
    blob.extend_from_slice(&[0u8; 4]);
    blob.extend_from_slice(target_info);
    blob.extend_from_slice(&[0u8; 4]);
    let proof = nt_proof(&ntowf_v2(password, user, domain), &server_challenge, &blob);
    let mut nt = proof.to_vec();
    nt.extend_from_slice(&blob);
    let (dom, usr, ws) = (utf16(domain), utf16(user), utf16("WS"));
    let mut fields = Vec::new();
    let mut payload = Vec::new();
    let mut at = 88u32;
    for p in [&[0u8; 24][..], &nt, &dom, &usr, &ws, &[]] {
        let l = u16::try_from(p.len()).unwrap();
        fields.extend_from_slice(&l.to_le_bytes());
        fields.extend_from_slice(&l.to_le_bytes());
        fields.extend_from_slice(&at.to_le_bytes());
        at += u32::from(l);
        payload.extend_from_slice(p);
    }
    let mut m = b"NTLMSSP\0".to_vec();
    m.extend_from_slice(&3u32.to_le_bytes());
    m.extend_from_slice(&fields);
    m.extend_from_slice(&0xe288_8215u32.to_le_bytes());
    m.extend_from_slice(&[0u8; 24]); // version + MIC
    m.extend_from_slice(&payload);
    m
}

#[tokio::test]
async fn ntlm_handshake_is_bound_to_the_connection() {
    let e = Ews::start().await;
    let b64 = base64::engine::general_purpose::STANDARD;
    // One connection for the whole handshake, as an NTLM client keeps it.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .http1_only()
        .build()
        .unwrap();
    let url = e.t.url("/EWS/Exchange.asmx");
    let body = envelope(
        &impersonate(HQ_ROOM),
        r#"<m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape><m:FolderIds><t:DistinguishedFolderId Id="calendar"/></m:FolderIds></m:GetFolder>"#,
    );
    let (user, pass) = e.account(0);
    let (domain, sam) = user.split_once('\\').unwrap();
    let post = |auth: Option<String>| {
        let mut rb = http
            .post(&url)
            .header("content-type", "text/xml; charset=utf-8")
            .body(body.clone());
        if let Some(a) = auth {
            rb = rb.header("authorization", a);
        }
        rb.send()
    };
    let negotiate = {
        let mut m = b"NTLMSSP\0".to_vec();
        m.extend_from_slice(&1u32.to_le_bytes());
        m.extend_from_slice(&0xe208_8297u32.to_le_bytes());
        m.extend_from_slice(&[0u8; 16]);
        b64.encode(m)
    };
    for scheme in ["NTLM", "Negotiate"] {
        let r = post(Some(format!("{scheme} {negotiate}"))).await.unwrap();
        assert_eq!(r.status(), 401);
        let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
        let token = challenge.strip_prefix(&format!("{scheme} ")).unwrap();
        let challenge = b64.decode(token).unwrap();
        assert_eq!(&challenge[..8], b"NTLMSSP\0");
        let _ = r.text().await;
        let auth = ntlm_authenticate(&challenge, domain, sam, &pass);
        let r = post(Some(format!("{scheme} {}", b64.encode(auth))))
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{scheme}");
        let _ = r.text().await;
        // The connection stays authenticated.
        let r = post(None).await.unwrap();
        assert_eq!(r.status(), 200);
        let _ = r.text().await;
    }
    // A wrong password fails; another connection is not authenticated.
    let r = post(Some(format!("NTLM {negotiate}"))).await.unwrap();
    let token = r.headers()["www-authenticate"].to_str().unwrap()[5..].to_owned();
    let _ = r.text().await;
    let auth = ntlm_authenticate(&b64.decode(token).unwrap(), domain, sam, "wrong");
    let r = post(Some(format!("NTLM {}", b64.encode(auth))))
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let fresh = reqwest::Client::new();
    let r = fresh.post(&url).body(body.clone()).send().await.unwrap();
    assert_eq!(r.status(), 401);
    // With NTLM off, the challenge is not offered.
    e.t.control(
        reqwest::Method::PUT,
        "/ews/auth",
        Some(&json!({"ntlm": false})),
    )
    .await;
    let r = fresh
        .post(&url)
        .header("authorization", format!("NTLM {negotiate}"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let offers: Vec<String> = r
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert!(offers.iter().all(|o| o.starts_with("Basic")), "{offers:?}");
}

#[tokio::test]
async fn throttling_faults_are_injectable() {
    let e = Ews::start().await;
    let resolve = r#"<m:ResolveNames ReturnFullContactData="false"><m:UnresolvedEntry>eva.jansen@contoso.example</m:UnresolvedEntry></m:ResolveNames>"#;
    let (st, _) = e
        .t
        .control(
            reqwest::Method::PUT,
            "/ews/faults",
            Some(&json!({"http_503": 1, "server_busy": [{"account": "svc-calgate", "count": 2, "back_off_ms": 1234}]})),
        )
        .await;
    assert_eq!(st, 200);
    let a = e.call_as(0, "", resolve).await;
    assert_eq!(a.status, 503);
    for _ in 0..2 {
        let a = e.call_as(0, "", resolve).await;
        assert_eq!(
            (a.status.as_u16(), a.fault_code().as_str()),
            (500, "ErrorServerBusy")
        );
        let v = a
            .root
            .path(&["Body", "Fault", "detail", "MessageXml", "Value"])
            .unwrap();
        assert_eq!(
            (v.attr("Name"), v.text()),
            (Some("BackOffMilliseconds"), "1234")
        );
    }
    // Other accounts were not affected; the account is served again.
    assert_eq!(e.call_as(0, "", resolve).await.code(0), "NoError");
    // EWSMaxConcurrency: with 1 allowed and a slow request in flight, the next is refused.
    e.t.control(
        reqwest::Method::PUT,
        "/ews/faults",
        Some(&json!({"max_concurrency": 1})),
    )
    .await;
    e.t.control(
        reqwest::Method::PUT,
        "/settings",
        Some(&json!({"latency_ms": 400})),
    )
    .await;
    let (first, second) = tokio::join!(e.call_as(0, "", resolve), async {
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        e.call_as(0, "", resolve).await
    });
    assert_eq!(first.code(0), "NoError");
    assert_eq!(second.code(0), "ErrorExceededConnectionCount");
    let (_, o) = e.t.control(reqwest::Method::GET, "/ews", None).await;
    assert_eq!(o["stats"]["server_busy"], 2);
    assert_eq!(o["stats"]["exceeded_connection_count"], 1);
    assert_eq!(o["stats"]["http_503"], 1);
}

fn availability(addrs: &[String], from: &str, to: &str, view: &str, interval: u32) -> String {
    let data: String = addrs
        .iter()
        .map(|a| format!("<t:MailboxData><t:Email><t:Address>{a}</t:Address></t:Email><t:AttendeeType>Required</t:AttendeeType><t:ExcludeConflicts>false</t:ExcludeConflicts></t:MailboxData>"))
        .collect();
    format!(
        r#"<m:GetUserAvailabilityRequest><t:TimeZone><t:Bias>0</t:Bias><t:StandardTime><t:Bias>0</t:Bias><t:Time>02:00:00</t:Time><t:DayOrder>5</t:DayOrder><t:Month>10</t:Month><t:DayOfWeek>Sunday</t:DayOfWeek></t:StandardTime><t:DaylightTime><t:Bias>-60</t:Bias><t:Time>01:00:00</t:Time><t:DayOrder>5</t:DayOrder><t:Month>3</t:Month><t:DayOfWeek>Sunday</t:DayOfWeek></t:DaylightTime></t:TimeZone><m:MailboxDataArray>{data}</m:MailboxDataArray><t:FreeBusyViewOptions><t:TimeWindow><t:StartTime>{from}</t:StartTime><t:EndTime>{to}</t:EndTime></t:TimeWindow><t:MergedFreeBusyIntervalInMinutes>{interval}</t:MergedFreeBusyIntervalInMinutes><t:RequestedView>{view}</t:RequestedView></t:FreeBusyViewOptions></m:GetUserAvailabilityRequest>"#
    )
}

#[tokio::test]
async fn availability_room_lists_and_rooms() {
    let e = Ews::start().await;
    // A known busy hour in a room, in January (UK standard time = UTC in the request zone).
    let s: Timestamp = "2030-01-15T10:00:00Z".parse().unwrap();
    let a = e
        .create(
            LON_ROOM,
            "SendToNone",
            &format!(
                "<t:Subject>Busy hour</t:Subject><t:Start>{}</t:Start><t:End>{}</t:End>",
                ts(s),
                ts(s + SignedDuration::from_hours(1))
            ),
        )
        .await;
    assert_eq!(a.code(0), "NoError");
    let addrs = vec![LON_ROOM.to_owned(), "nobody@contoso.example".to_owned()];
    let a = e
        .call_as(
            0,
            "",
            &availability(
                &addrs,
                "2030-01-15T08:00:00",
                "2030-01-15T12:00:00",
                "DetailedMerged",
                60,
            ),
        )
        .await;
    assert_eq!(a.status, 200);
    let responses = find_all(a.op(), "FreeBusyResponse");
    assert_eq!(responses.len(), 2);
    let view = responses[0].child("FreeBusyView").unwrap();
    assert_eq!(view.child_text("FreeBusyViewType"), Some("DetailedMerged"));
    assert_eq!(view.child_text("MergedFreeBusy"), Some("0020"));
    let ev = find_all(view, "CalendarEvent");
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].child_text("StartTime"), Some("2030-01-15T10:00:00"));
    assert_eq!(ev[0].child_text("BusyType"), Some("Busy"));
    assert_eq!(
        ev[0]
            .path(&["CalendarEventDetails", "Subject"])
            .map(Element::text),
        Some("Busy hour")
    );
    assert!(view.path(&["WorkingHours", "TimeZone", "Bias"]).is_some());
    assert_eq!(
        responses[1]
            .path(&["ResponseMessage", "ResponseCode"])
            .map(Element::text),
        Some("ErrorMailRecipientNotFound")
    );
    // The same hour in summer, in the request's daylight time (UTC+1).
    let s: Timestamp = "2030-07-15T10:00:00Z".parse().unwrap();
    e.create(
        LON_ROOM,
        "SendToNone",
        &format!(
            "<t:Subject>Summer</t:Subject><t:Start>{}</t:Start><t:End>{}</t:End><t:LegacyFreeBusyStatus>Tentative</t:LegacyFreeBusyStatus>",
            ts(s),
            ts(s + SignedDuration::from_hours(1))
        ),
    )
    .await;
    let a = e
        .call_as(
            0,
            "",
            &availability(
                &addrs[..1],
                "2030-07-15T08:00:00",
                "2030-07-15T14:00:00",
                "FreeBusy",
                30,
            ),
        )
        .await;
    let ev = find_all(a.op(), "CalendarEvent");
    assert_eq!(ev[0].child_text("StartTime"), Some("2030-07-15T11:00:00"));
    assert!(ev[0].child("CalendarEventDetails").is_none());
    assert!(find_all(a.op(), "MergedFreeBusy").is_empty());
    // Limits.
    let many: Vec<String> = (0..101).map(|i| format!("u{i}@contoso.example")).collect();
    let a = e
        .call_as(
            0,
            "",
            &availability(
                &many,
                "2030-01-15T08:00:00",
                "2030-01-15T12:00:00",
                "FreeBusy",
                30,
            ),
        )
        .await;
    assert_eq!(a.fault_code(), "ErrorMailboxDataArrayTooBig");
    let a = e
        .call_as(
            0,
            "",
            &availability(
                &addrs[..1],
                "2030-01-15T08:00:00",
                "2030-01-15T12:00:00",
                "Detailed",
                2,
            ),
        )
        .await;
    assert_eq!(a.fault_code(), "ErrorInvalidMergedFreeBusyInterval");
    let a = e
        .call_as(
            0,
            "",
            &availability(
                &addrs[..1],
                "2030-01-01T00:00:00",
                "2030-03-01T00:00:00",
                "Detailed",
                30,
            ),
        )
        .await;
    assert_eq!(a.fault_code(), "ErrorTimeIntervalTooBig");
    let a = e
        .call_as(
            0,
            "",
            &availability(
                &addrs[..1],
                "2030-01-15T08:00:00",
                "2030-01-15T12:00:00",
                "None",
                30,
            ),
        )
        .await;
    assert_eq!(a.fault_code(), "ErrorInvalidFreeBusyViewType");
    // Room lists and rooms.
    let a = e.call_as(0, "", "<m:GetRoomLists/>").await;
    assert_eq!(a.op().attr("ResponseClass"), Some("Success"));
    let lists: Vec<&str> = find_all(a.op(), "EmailAddress")
        .iter()
        .map(|x| x.text())
        .collect();
    assert_eq!(
        lists,
        vec!["rooms-hq@contoso.example", "rooms-lon@contoso.example"]
    );
    let a = e
        .call_as(0, "", "<m:GetRooms><m:RoomList><t:EmailAddress>rooms-lon@contoso.example</t:EmailAddress></m:RoomList></m:GetRooms>")
        .await;
    let rooms: Vec<&str> = find_all(a.op(), "EmailAddress")
        .iter()
        .map(|x| x.text())
        .collect();
    assert!(rooms.contains(&LON_ROOM), "{rooms:?}");
    let a = e
        .call_as(0, "", "<m:GetRooms><m:RoomList><t:EmailAddress>nope@contoso.example</t:EmailAddress></m:RoomList></m:GetRooms>")
        .await;
    assert_eq!(a.op().attr("ResponseClass"), Some("Error"));
    assert_eq!(
        a.op().child_text("ResponseCode"),
        Some("ErrorNameResolutionNoResults")
    );
}
