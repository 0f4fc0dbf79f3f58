//! Change notifications: subscriptions to a mailbox's events (`/subscriptions`), so that Graph
//! tells calgate when a calendar changed instead of calgate polling it.

use jiff::Timestamp;
use reqwest::Method;
use serde_json::json;

use super::GraphClient;
use crate::error::Error;

/// A subscription to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionRequest {
    /// Where Graph POSTs change notifications (https; http only to loopback).
    pub notification_url: String,
    /// Where Graph POSTs lifecycle notifications (`reauthorizationRequired`, …).
    pub lifecycle_url: Option<String>,
    /// Echoed in every notification; at most 128 characters. A secret: not for logs.
    pub client_state: String,
    pub expires: Timestamp,
}

/// A subscription as Graph answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub id: String,
    pub expires: Timestamp,
}

fn parse(body: &[u8]) -> Result<Subscription, Error> {
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        Error::invalid_data(format!(
            "Graph sent a subscription calgate cannot read: {e}"
        ))
    })?;
    let id = v["id"]
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::invalid_data("Graph sent a subscription without an id"))?;
    let expires = v["expirationDateTime"]
        .as_str()
        .and_then(|s| s.parse::<Timestamp>().ok())
        .ok_or_else(|| {
            Error::invalid_data("Graph sent a subscription without a readable expirationDateTime")
        })?;
    Ok(Subscription {
        id: id.to_owned(),
        expires,
    })
}

fn instant(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.fZ").to_string()
}

impl GraphClient {
    /// Subscribes to created, updated and deleted events of `mailbox`. Graph validates the
    /// notification URLs before it answers (the endpoint must echo the validation token).
    pub async fn create_subscription(
        &self,
        mailbox: &str,
        r: &SubscriptionRequest,
    ) -> Result<Subscription, Error> {
        let url = self.url(&["subscriptions"], &[])?;
        let mut body = json!({
            "changeType": "created,updated,deleted",
            "notificationUrl": r.notification_url,
            "resource": format!("users/{mailbox}/events"),
            "expirationDateTime": instant(r.expires),
            "clientState": r.client_state,
        });
        if let Some(l) = &r.lifecycle_url {
            body["lifecycleNotificationUrl"] = json!(l);
        }
        let mut req = self.req(Method::POST, url, Some(mailbox));
        req.body = Some(body.to_string().into_bytes());
        let resp = self.execute(req).await?;
        parse(&resp.body)
    }

    /// Moves a subscription's expiry (`PATCH /subscriptions/{id}`).
    pub async fn renew_subscription(
        &self,
        mailbox: &str,
        id: &str,
        expires: Timestamp,
    ) -> Result<Subscription, Error> {
        let url = self.url(&["subscriptions", id], &[])?;
        let mut req = self.req(Method::PATCH, url, Some(mailbox));
        req.body = Some(
            json!({ "expirationDateTime": instant(expires) })
                .to_string()
                .into_bytes(),
        );
        let resp = self.execute(req).await?;
        parse(&resp.body)
    }

    /// `POST /subscriptions/{id}/reauthorize` (after `reauthorizationRequired`).
    pub async fn reauthorize_subscription(&self, mailbox: &str, id: &str) -> Result<(), Error> {
        let url = self.url(&["subscriptions", id, "reauthorize"], &[])?;
        let mut req = self.req(Method::POST, url, Some(mailbox));
        req.body = Some(b"{}".to_vec());
        self.execute(req).await?;
        Ok(())
    }

    pub async fn delete_subscription(&self, mailbox: &str, id: &str) -> Result<(), Error> {
        let url = self.url(&["subscriptions", id], &[])?;
        self.execute(self.req(Method::DELETE, url, Some(mailbox)))
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subscription_needs_an_id_and_an_expiry() {
        let s = parse(br#"{"id":"7f1","expirationDateTime":"2026-12-09T10:00:00.0000000Z"}"#)
            .expect("parsed");
        assert_eq!(s.id, "7f1");
        assert!(parse(br#"{"expirationDateTime":"2026-12-09T10:00:00Z"}"#).is_err());
        assert!(parse(br#"{"id":"x","expirationDateTime":"soon"}"#).is_err());
        assert!(parse(b"<html>").is_err());
    }
}
