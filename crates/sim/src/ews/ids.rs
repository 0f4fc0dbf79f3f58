//! EWS item and folder ids.
//!
//! Like Exchange's, an EWS id names its mailbox as well as the item, so that `GetItem` on an id
//! reaches the right mailbox without a `<t:Mailbox>`. Ids are standard base64 (`+`, `/`,
//! `=`), opaque to clients, and stable:
//!
//! - item: `0x01 'I'` + mailbox GUID (16 bytes) + the stored item's id in the tenant model
//!   (the id the Graph face shows, so a Graph id and an EWS id of one item differ but map to
//!   each other). Occurrences use the model's occurrence id, derived from the series master's
//!   id and the occurrence's original start, so they are the same on every call.
//! - folder: `0x01 'F'` + mailbox GUID + one byte naming the distinguished folder.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use uuid::Uuid;

const ITEM: [u8; 2] = [0x01, b'I'];
const FOLDER: [u8; 2] = [0x01, b'F'];

/// The folders the simulator knows in each mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FolderKind {
    Root,
    MsgFolderRoot,
    Calendar,
}

impl FolderKind {
    fn byte(self) -> u8 {
        match self {
            FolderKind::Root => 1,
            FolderKind::MsgFolderRoot => 2,
            FolderKind::Calendar => 3,
        }
    }
    fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(FolderKind::Root),
            2 => Some(FolderKind::MsgFolderRoot),
            3 => Some(FolderKind::Calendar),
            _ => None,
        }
    }

    /// `DistinguishedFolderId/@Id` (case-sensitive in the schema; EWS compares it so).
    pub fn from_distinguished(id: &str) -> Option<Self> {
        match id {
            "root" => Some(FolderKind::Root),
            "msgfolderroot" => Some(FolderKind::MsgFolderRoot),
            "calendar" => Some(FolderKind::Calendar),
            _ => None,
        }
    }
}

/// The EWS id of stored item (or occurrence) `model_id` in mailbox `mailbox`.
pub fn item_id(mailbox: Uuid, model_id: &str) -> String {
    let mut raw = Vec::with_capacity(18 + model_id.len());
    raw.extend_from_slice(&ITEM);
    raw.extend_from_slice(mailbox.as_bytes());
    raw.extend_from_slice(model_id.as_bytes());
    STANDARD.encode(raw)
}

/// Why an id was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdError {
    Empty,
    Malformed,
}

fn decode(id: &str, prefix: [u8; 2]) -> Result<(Uuid, Vec<u8>), IdError> {
    let id = id.trim();
    if id.is_empty() {
        return Err(IdError::Empty);
    }
    let raw = STANDARD.decode(id).map_err(|_| IdError::Malformed)?;
    let rest = raw.strip_prefix(&prefix[..]).ok_or(IdError::Malformed)?;
    if rest.len() < 16 {
        return Err(IdError::Malformed);
    }
    let (m, tail) = rest.split_at(16);
    let mailbox = Uuid::from_slice(m).map_err(|_| IdError::Malformed)?;
    Ok((mailbox, tail.to_vec()))
}

/// (mailbox, model id) of an EWS item id.
pub fn parse_item_id(id: &str) -> Result<(Uuid, String), IdError> {
    let (mailbox, tail) = decode(id, ITEM)?;
    let model = String::from_utf8(tail).map_err(|_| IdError::Malformed)?;
    if model.is_empty() {
        return Err(IdError::Malformed);
    }
    Ok((mailbox, model))
}

pub fn folder_id(mailbox: Uuid, kind: FolderKind) -> String {
    let mut raw = Vec::with_capacity(19);
    raw.extend_from_slice(&FOLDER);
    raw.extend_from_slice(mailbox.as_bytes());
    raw.push(kind.byte());
    STANDARD.encode(raw)
}

pub fn parse_folder_id(id: &str) -> Result<(Uuid, FolderKind), IdError> {
    let (mailbox, tail) = decode(id, FOLDER)?;
    match tail.as_slice() {
        [b] => FolderKind::from_byte(*b)
            .map(|k| (mailbox, k))
            .ok_or(IdError::Malformed),
        _ => Err(IdError::Malformed),
    }
}

/// A folder's change key (folders never change here).
pub fn folder_change_key(kind: FolderKind) -> String {
    STANDARD.encode([0x01, 0x00, 0x00, 0x00, kind.byte()])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_differ_by_kind() {
        let m = Uuid::new_v4();
        let id = item_id(m, "AAMkAGI2-x_y=");
        assert_eq!(parse_item_id(&id).unwrap(), (m, "AAMkAGI2-x_y=".to_owned()));
        assert_eq!(item_id(m, "abc"), item_id(m, "abc"), "stable");
        let f = folder_id(m, FolderKind::Calendar);
        assert_eq!(parse_folder_id(&f).unwrap(), (m, FolderKind::Calendar));
        assert_eq!(parse_item_id(&f), Err(IdError::Malformed));
        assert_eq!(parse_folder_id(&id), Err(IdError::Malformed));
        assert_eq!(parse_item_id("DUMMY"), Err(IdError::Malformed));
        assert_eq!(parse_item_id(""), Err(IdError::Empty));
    }
}
