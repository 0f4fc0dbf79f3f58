//! The directory: users, mailbox settings, and places (room lists and rooms).

use reqwest::Url;

use super::GraphClient;
use crate::convert::{self, MailboxSettings, Room, RoomList, UserInfo};
use crate::error::Error;
use crate::wire;

impl GraphClient {
    pub async fn get_user(&self, mailbox: &str) -> Result<UserInfo, Error> {
        let url = self.url(
            &["users", mailbox],
            &[(
                "$select",
                "id,displayName,mail,userPrincipalName,accountEnabled",
            )],
        )?;
        convert::parse_user(&self.get_json(url, Some(mailbox)).await?)
    }

    pub async fn mailbox_settings(&self, mailbox: &str) -> Result<MailboxSettings, Error> {
        let url = self.url(&["users", mailbox, "mailboxSettings"], &[])?;
        convert::parse_mailbox_settings(&self.get_json(url, Some(mailbox)).await?)
    }

    /// Every place of the collection at `segments` (all pages) that `read` accepts; places
    /// that are not readable are left out.
    async fn places<T>(
        &self,
        segments: &[&str],
        read: fn(wire::Place) -> Option<T>,
    ) -> Result<Vec<T>, Error> {
        let first: Url = self.url(segments, &[])?;
        self.collect_pages(
            first,
            None,
            10_000,
            "Graph kept sending next links for places",
            |body| {
                let (items, next, _) = convert::parse_page(body, "places")?;
                let places = items
                    .into_iter()
                    .filter_map(|v| serde_json::from_str::<wire::Place>(v.get()).ok())
                    .filter_map(read)
                    .collect();
                Ok((places, next.filter(|n| !n.trim().is_empty())))
            },
        )
        .await
    }

    pub async fn list_room_lists(&self) -> Result<Vec<RoomList>, Error> {
        self.places(
            &["places", "microsoft.graph.roomlist"],
            convert::place_to_room_list,
        )
        .await
    }

    pub async fn list_rooms(&self) -> Result<Vec<Room>, Error> {
        self.places(&["places", "microsoft.graph.room"], convert::place_to_room)
            .await
    }

    /// The rooms of a room list, given by the list's email address.
    pub async fn rooms_in_list(&self, room_list_email: &str) -> Result<Vec<Room>, Error> {
        self.places(
            &[
                "places",
                room_list_email,
                "microsoft.graph.roomlist",
                "rooms",
            ],
            convert::place_to_room,
        )
        .await
    }
}
