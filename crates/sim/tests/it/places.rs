//! Places: rooms, room lists, rooms of a list (by email), paging, permissions.

use calgate_sim::model::{MailboxKind, RoomInfo};

use crate::common::*;
use crate::throttle::fx;

/// Three rooms in two lists plus a person; returns (sim, token, list emails, list ids).
async fn tenant() -> (TestSim, String, [String; 2], [String; 2]) {
    let t = fx::sim().await;
    let big = fx::mailbox(&t, "room-big", MailboxKind::Room);
    let small = fx::mailbox(&t, "room-small", MailboxKind::Room);
    let far = fx::mailbox(&t, "room-far", MailboxKind::Room);
    fx::mailbox(&t, "person", MailboxKind::User);
    fx::room_info(
        &t,
        &big,
        RoomInfo {
            capacity: Some(20),
            building: Some("North".into()),
            floor_number: Some(3),
            floor_label: Some("3rd".into()),
            is_wheelchair_accessible: true,
            tags: vec!["video".into()],
            video_device_name: Some("Teams Room".into()),
            booking_type: Some("standard".into()),
            ..RoomInfo::default()
        },
    );
    let (l1, id1) = fx::room_list(&t, "north-rooms", "North building", &[&big, &small]);
    let (l2, id2) = fx::room_list(&t, "far-rooms", "Far building", &[&far]);
    let token = t.default_token().await;
    (t, token, [l1, l2], [id1, id2])
}

#[tokio::test]
async fn lists_rooms_with_the_room_properties() {
    let (t, token, _, _) = tenant().await;
    let (s, _, v) = t.get(&token, "/v1.0/places/microsoft.graph.room").await;
    assert_eq!(s, 200, "{v}");
    assert!(
        v["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("$metadata#places/microsoft.graph.room")
    );
    let rooms = v["value"].as_array().unwrap();
    assert_eq!(rooms.len(), 3, "people are not rooms: {v}");
    let big = rooms
        .iter()
        .find(|r| r["displayName"] == "room-big")
        .unwrap();
    assert_eq!(big["capacity"], 20, "capacity is an integer: {big}");
    assert_eq!(big["building"], "North");
    assert_eq!(big["floorNumber"], 3);
    assert_eq!(big["floorLabel"], "3rd");
    assert_eq!(big["isWheelChairAccessible"], true);
    assert_eq!(big["bookingType"], "standard");
    assert_eq!(big["tags"], json!(["video"]));
    assert_eq!(big["videoDeviceName"], "Teams Room");
    assert!(
        big["emailAddress"]
            .as_str()
            .unwrap()
            .starts_with("room-big@")
    );
    assert!(big["id"].is_string());
    for key in [
        "address",
        "geoCoordinates",
        "phone",
        "nickname",
        "audioDeviceName",
        "displayDeviceName",
        "label",
    ] {
        assert!(big.get(key).is_some(), "missing {key}: {big}");
    }
}

#[tokio::test]
async fn lists_room_lists_and_rooms_of_a_list_by_email() {
    let (t, token, lists, ids) = tenant().await;
    let (s, _, v) = t.get(&token, "/v1.0/places/microsoft.graph.roomlist").await;
    assert_eq!(s, 200, "{v}");
    let names: Vec<&str> = v["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["displayName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["North building", "Far building"]);
    assert_eq!(v["value"][0]["emailAddress"], lists[0].as_str());

    let (s, _, v) = t
        .get(
            &token,
            &format!("/v1.0/places/{}/microsoft.graph.roomlist/rooms", lists[0]),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let rooms: Vec<&str> = v["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["displayName"].as_str().unwrap())
        .collect();
    assert_eq!(rooms, ["room-big", "room-small"]);
    assert!(
        v["@odata.context"]
            .as_str()
            .unwrap()
            .contains("places('north-rooms%40"),
        "{v}"
    );

    // By id: not how Graph names a room list.
    let (s, _, v) = t
        .get(
            &token,
            &format!("/v1.0/places/{}/microsoft.graph.roomlist/rooms", ids[0]),
        )
        .await;
    assert_eq!(s, 404, "{v}");
    assert_graph_error(&v, "ErrorItemNotFound");

    // One place by email.
    let (s, _, v) = t.get(&token, &format!("/v1.0/places/{}", lists[1])).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["@odata.type"], "#microsoft.graph.roomList");
}

#[tokio::test]
async fn pages_by_100_and_honours_top_skip_count_and_filter() {
    let t = fx::sim().await;
    for i in 0..105 {
        fx::mailbox(&t, &format!("room-{i:03}"), MailboxKind::Room);
    }
    let token = t.default_token().await;
    let (s, _, v) = t
        .get(&token, "/v1.0/places/microsoft.graph.room?$count=true")
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["value"].as_array().unwrap().len(), 100);
    assert_eq!(v["@odata.count"], 105);
    let next = v["@odata.nextLink"].as_str().expect("nextLink").to_owned();
    let path = next.strip_prefix(&t.sim.base_url).unwrap();
    let (s, _, v2) = t.get(&token, path).await;
    assert_eq!(s, 200, "{v2}");
    assert_eq!(v2["value"].as_array().unwrap().len(), 5);
    assert!(v2.get("@odata.nextLink").is_none());
    assert_eq!(v2["value"][4]["displayName"], "room-104");

    let (_, _, v) = t
        .get(&token, "/v1.0/places/microsoft.graph.room?$top=2&$skip=3")
        .await;
    let names: Vec<&str> = v["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["displayName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["room-003", "room-004"]);

    let (_, _, v) = t
        .get(&token, "/v1.0/places/microsoft.graph.room?$filter=startswith(displayName,'room-10')&$select=displayName")
        .await;
    let rooms = v["value"].as_array().unwrap();
    assert_eq!(rooms.len(), 5, "{v}");
    assert!(rooms[0].get("capacity").is_none(), "$select: {v}");

    let (s, _, v) = t
        .get(
            &token,
            "/v1.0/places/microsoft.graph.room?$filter=capacity ge 9",
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["value"].as_array().unwrap().len(), 0);

    let (s, _, v) = t
        .get(&token, "/v1.0/places/microsoft.graph.room?$top=-3")
        .await;
    assert_eq!(s, 400);
    assert_graph_error(&v, "BadRequest");
    let (s, _, v) = t
        .get(
            &token,
            "/v1.0/places/microsoft.graph.room?$filter=capacity wobbles 3",
        )
        .await;
    assert_eq!(s, 400, "{v}");
}

#[tokio::test]
async fn places_need_place_read_all() {
    let (t, _, lists, _) = tenant().await;
    let token = fx::app_token(&t, "calendars-only", &["Calendars.Read"]).await;
    for path in [
        "/v1.0/places/microsoft.graph.room".to_owned(),
        "/v1.0/places/microsoft.graph.roomlist".to_owned(),
        format!("/v1.0/places/{}/microsoft.graph.roomlist/rooms", lists[0]),
    ] {
        let (s, _, v) = t.get(&token, &path).await;
        assert_eq!(s, 403, "{path}: {v}");
        assert_graph_error(&v, "ErrorAccessDenied");
    }
    let (s, _, v) = t.get("garbage", "/v1.0/places/microsoft.graph.room").await;
    assert_eq!(s, 401, "{v}");
}

#[tokio::test]
async fn demo_tenant_has_two_room_lists_of_rooms() {
    let t = start(Seed::Demo).await;
    let token = t.default_token().await;
    let (s, _, v) = t.get(&token, "/v1.0/places/microsoft.graph.roomlist").await;
    assert_eq!(s, 200, "{v}");
    let lists = v["value"].as_array().unwrap();
    assert_eq!(lists.len(), 2, "{v}");
    let mut total = 0;
    for l in lists {
        let email = l["emailAddress"].as_str().unwrap();
        let (s, _, r) = t
            .get(
                &token,
                &format!("/v1.0/places/{email}/microsoft.graph.roomlist/rooms"),
            )
            .await;
        assert_eq!(s, 200, "{r}");
        total += r["value"].as_array().unwrap().len();
    }
    let (_, _, all) = t.get(&token, "/v1.0/places/microsoft.graph.room").await;
    assert_eq!(total, all["value"].as_array().unwrap().len());
    assert!(total >= 8, "{all}");
}
