//! The SOAP envelope around every EWS operation, and reading Exchange's answer: HTTP status,
//! SOAP faults, and each response message's `ResponseClass` / `ResponseCode`.

use std::time::Duration;

use calgate_core::FailureKind;
use reqwest::StatusCode;

use crate::error::{Error, classify};
use crate::transport::{Answer, retry_after};
use crate::xml::{Element, NS_MESSAGES, NS_SOAP, NS_TYPES, Writer};

/// Whom a request acts as: the service account itself (delegate access to the mailbox named in
/// the folder id) or the mailbox, through `ExchangeImpersonation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acting<'a> {
    Account,
    Impersonating(&'a str),
}

/// A whole request envelope. `body` writes the operation element (`m:FindItem` …).
pub fn envelope(version: &str, acting: Acting<'_>, body: impl FnOnce(&mut Writer)) -> String {
    let mut w = Writer::new();
    w.open(
        "soap:Envelope",
        &[
            ("xmlns:soap", NS_SOAP),
            ("xmlns:t", NS_TYPES),
            ("xmlns:m", NS_MESSAGES),
        ],
    );
    w.open("soap:Header", &[]);
    w.empty("t:RequestServerVersion", &[("Version", version)]);
    if let Acting::Impersonating(address) = acting {
        w.open("t:ExchangeImpersonation", &[])
            .open("t:ConnectingSID", &[])
            .leaf("t:PrimarySmtpAddress", address)
            .close()
            .close();
    }
    w.close();
    w.open("soap:Body", &[]);
    body(&mut w);
    w.close();
    w.close();
    let mut doc = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>");
    doc.push_str(&w.finish());
    doc
}

/// The server's `ServerVersionInfo` (e.g. `15.2.1118.7`, version `V2017_07_11`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerVersion {
    pub build: String,
    pub version: Option<String>,
}

impl ServerVersion {
    /// The product, in an administrator's words.
    pub fn product(&self) -> &'static str {
        let mut parts = self.build.split('.');
        let major = parts
            .next()
            .and_then(|p| p.parse::<u32>().ok())
            .unwrap_or(0);
        let minor = parts
            .next()
            .and_then(|p| p.parse::<u32>().ok())
            .unwrap_or(0);
        match (major, minor) {
            (15, 2) => "Exchange Server 2019 / Subscription Edition",
            (15, 1) => "Exchange Server 2016",
            (15, 0) => "Exchange Server 2013",
            (14, _) => "Exchange Server 2010",
            (8, _) => "Exchange Server 2007",
            _ => "Exchange Server",
        }
    }
}

/// A read answer: the operation's response element (`FindItemResponse` …) and the server's
/// version.
#[derive(Debug)]
pub struct Response {
    pub body: Element,
    pub server: Option<ServerVersion>,
}

impl Response {
    /// The response messages (`ResponseMessages/*`), in request order.
    pub fn messages(&self) -> Vec<&Element> {
        self.body
            .child("ResponseMessages")
            .map(|m| m.children.iter().collect())
            .unwrap_or_default()
    }

    /// The single response message of a one-item request, checked.
    pub fn single(&self, mailbox: Option<&str>) -> Result<&Element, Error> {
        let first = self
            .messages()
            .into_iter()
            .next()
            .ok_or_else(|| Error::invalid("Exchange's answer has no response message"))?;
        check(first, mailbox)?;
        Ok(first)
    }
}

/// A response message's outcome: `Ok` for `Success` (and `Warning`), else the classified
/// error.
pub fn check(msg: &Element, mailbox: Option<&str>) -> Result<(), Error> {
    let class = msg.attr("ResponseClass").unwrap_or("Success");
    if class == "Success" || class == "Warning" {
        return Ok(());
    }
    Err(message_error(msg, mailbox))
}

/// `BackOffMilliseconds` from a `MessageXml`.
fn back_off(el: &Element) -> Option<Duration> {
    let mx = el.find("MessageXml")?;
    mx.children
        .iter()
        .find(|v| v.attr("Name") == Some("BackOffMilliseconds"))
        .and_then(|v| v.text.trim().parse::<u64>().ok())
        .map(|ms| Duration::from_millis(ms.min(3_600_000)))
}

fn message_error(msg: &Element, mailbox: Option<&str>) -> Error {
    let code = msg
        .text_of("ResponseCode")
        .unwrap_or("ErrorInternalServerError");
    let text = msg.text_of("MessageText").unwrap_or("");
    let (kind, words) = classify(code, mailbox);
    let message = words.unwrap_or_else(|| {
        if text.is_empty() {
            format!("Exchange refused the request ({code})")
        } else {
            format!("Exchange refused the request: {text} ({code})")
        }
    });
    let mut e = Error::new(kind, message).with_code(code);
    e.back_off = back_off(msg);
    e
}

fn server_version(header: Option<&Element>) -> Option<ServerVersion> {
    let info = header?.child("ServerVersionInfo")?;
    let n = |k: &str| info.attr(k).unwrap_or("0").to_owned();
    Some(ServerVersion {
        build: format!(
            "{}.{}.{}.{}",
            n("MajorVersion"),
            n("MinorVersion"),
            n("MajorBuildNumber"),
            n("MinorBuildNumber")
        ),
        version: info.attr("Version").map(str::to_owned),
    })
}

/// Reads an answer to a request for `mailbox`: HTTP errors, SOAP faults, garbage.
pub fn read(answer: Answer, mailbox: Option<&str>) -> Result<Response, Error> {
    let status = answer.status;
    if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS {
        let mut e = Error::new(
            FailureKind::Retryable,
            format!(
                "Exchange is overloaded (HTTP {}): calgate backs off and tries again",
                status.as_u16()
            ),
        )
        .with_status(status.as_u16())
        .with_code(format!("Http{}", status.as_u16()));
        e.back_off = retry_after(&answer.headers);
        return Err(e);
    }
    if status == StatusCode::NOT_FOUND {
        return Err(Error::config(
            "there is no EWS at this URL (HTTP 404): the URL is usually https://MAIL-SERVER/EWS/Exchange.asmx",
        )
        .with_status(404)
        .with_code("Http404"));
    }
    if status == StatusCode::FORBIDDEN {
        return Err(Error::new(
            FailureKind::Permission,
            "Exchange refused EWS to the service account (HTTP 403): EWS may be disabled for it (Set-CASMailbox SERVICE -EwsEnabled $true) or by an EWS allow list",
        )
        .with_status(403)
        .with_code("Http403"));
    }
    let parsed = Element::parse(&answer.body);
    let root = match parsed {
        Ok(r) if r.name == "Envelope" => r,
        _ if status.is_server_error() => {
            return Err(Error::new(
                FailureKind::Retryable,
                format!(
                    "Exchange failed (HTTP {}): calgate tries again",
                    status.as_u16()
                ),
            )
            .with_status(status.as_u16())
            .with_code(format!("Http{}", status.as_u16())));
        }
        Ok(_) | Err(_) => {
            return Err(Error::invalid(format!(
                "Exchange answered HTTP {} with something that is not a SOAP envelope (a sign-in page or a proxy in between?): check --ews-url",
                status.as_u16()
            ))
            .with_status(status.as_u16()));
        }
    };
    let server = server_version(root.child("Header"));
    let body = root
        .child("Body")
        .ok_or_else(|| Error::invalid("Exchange's SOAP answer has no Body"))?;
    if let Some(fault) = body.child("Fault") {
        let detail = fault.child("detail").or_else(|| fault.child("Detail"));
        let code = detail
            .and_then(|d| d.text_of("ResponseCode"))
            .map(str::to_owned)
            .or_else(|| {
                fault
                    .text_of("faultcode")
                    .map(|c| c.rsplit(':').next().unwrap_or(c).to_owned())
            })
            .unwrap_or_else(|| "ErrorInternalServerError".to_owned());
        let text = detail
            .and_then(|d| d.text_of("Message"))
            .or_else(|| fault.text_of("faultstring"))
            .unwrap_or("");
        let (mut kind, words) = classify(&code, mailbox);
        if code == "ErrorInternalServerError" && status.is_server_error() {
            kind = FailureKind::Retryable;
        }
        let message =
            words.unwrap_or_else(|| format!("Exchange refused the request: {text} ({code})"));
        let mut e = Error::new(kind, message)
            .with_code(code)
            .with_status(status.as_u16());
        e.back_off = detail.and_then(back_off);
        return Err(e);
    }
    if !status.is_success() {
        return Err(Error::new(
            if status.is_server_error() {
                FailureKind::Retryable
            } else {
                FailureKind::Fatal
            },
            format!("Exchange answered HTTP {}", status.as_u16()),
        )
        .with_status(status.as_u16()));
    }
    let op = body
        .children
        .first()
        .cloned()
        .ok_or_else(|| Error::invalid("Exchange's SOAP Body is empty"))?;
    Ok(Response { body: op, server })
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderMap;

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            status: StatusCode::from_u16(status).expect("status"),
            headers: HeaderMap::new(),
            body: body.to_owned(),
        }
    }

    #[test]
    fn envelope_carries_version_and_escaped_impersonation() {
        let doc = envelope(
            "Exchange2013_SP1",
            Acting::Impersonating("a&b@x.org"),
            |w| {
                w.empty("m:GetFolder", &[]);
            },
        );
        let el = Element::parse(&doc).expect("well-formed");
        assert_eq!(
            el.find("RequestServerVersion")
                .and_then(|v| v.attr("Version")),
            Some("Exchange2013_SP1")
        );
        assert_eq!(
            el.find("PrimarySmtpAddress").map(|e| e.text.as_str()),
            Some("a&b@x.org")
        );
        assert!(el.at(&["Body", "GetFolder"]).is_some());
    }

    #[test]
    fn server_busy_in_a_message_is_retryable_with_its_back_off() {
        let body = r#"<s:Envelope xmlns:s="x"><s:Header><h:ServerVersionInfo xmlns:h="t" MajorVersion="15" MinorVersion="2" MajorBuildNumber="1118" MinorBuildNumber="7"/></s:Header><s:Body><m:FindItemResponse xmlns:m="m"><m:ResponseMessages><m:FindItemResponseMessage ResponseClass="Error"><m:MessageText>The server cannot service this request right now.</m:MessageText><m:ResponseCode>ErrorServerBusy</m:ResponseCode><m:DescriptiveLinkKey>0</m:DescriptiveLinkKey><m:MessageXml><t:Value xmlns:t="t" Name="BackOffMilliseconds">1500</t:Value></m:MessageXml></m:FindItemResponseMessage></m:ResponseMessages></m:FindItemResponse></s:Body></s:Envelope>"#;
        let r = read(answer(200, body), Some("room@x")).expect("a SOAP answer");
        assert_eq!(
            r.server.as_ref().map(|s| s.build.as_str()),
            Some("15.2.1118.7")
        );
        assert_eq!(
            r.server.as_ref().map(|s| s.product()),
            Some("Exchange Server 2019 / Subscription Edition")
        );
        let e = r.single(Some("room@x")).expect_err("busy");
        assert_eq!(e.kind, FailureKind::Retryable);
        assert_eq!(e.back_off, Some(Duration::from_millis(1500)));
        assert!(e.is_code("ErrorServerBusy"));
    }

    #[test]
    fn faults_http_errors_and_garbage_are_classified() {
        let fault = r#"<s:Envelope xmlns:s="x"><s:Body><s:Fault><faultcode>a:ErrorSchemaValidation</faultcode><faultstring>The request failed schema validation.</faultstring><detail><e:ResponseCode xmlns:e="e">ErrorSchemaValidation</e:ResponseCode></detail></s:Fault></s:Body></s:Envelope>"#;
        let e = read(answer(500, fault), None).expect_err("fault");
        assert!(e.is_code("ErrorSchemaValidation"));
        assert_eq!(e.kind, FailureKind::Fatal);
        let e = read(answer(503, "busy"), None).expect_err("503");
        assert_eq!(e.kind, FailureKind::Retryable);
        let e = read(answer(200, "<html><body>Sign in</body></html>"), None).expect_err("html");
        assert_eq!(e.kind, FailureKind::InvalidData);
        let e =
            read(answer(200, "<s:Envelope xmlns:s=\"x\"><s:Body>"), None).expect_err("truncated");
        assert_eq!(e.kind, FailureKind::InvalidData);
        let e = read(answer(404, ""), None).expect_err("404");
        assert_eq!(e.kind, FailureKind::Config);
        let denied = r#"<s:Envelope xmlns:s="x"><s:Body><m:R xmlns:m="m"><m:ResponseMessages><m:M ResponseClass="Error"><m:MessageText>x</m:MessageText><m:ResponseCode>ErrorImpersonateUserDenied</m:ResponseCode></m:M></m:ResponseMessages></m:R></s:Body></s:Envelope>"#;
        let e = read(answer(200, denied), Some("room@x"))
            .expect("soap")
            .single(Some("room@x"))
            .expect_err("denied");
        assert_eq!(e.kind, FailureKind::Permission);
        assert!(e.message.contains("ApplicationImpersonation"), "{e}");
    }
}
