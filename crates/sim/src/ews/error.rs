//! EWS errors: per-item `ResponseClass="Error"` messages (inside an HTTP 200) and SOAP faults
//! (HTTP 500), worded as Exchange words them. Every `ResponseCode` used here is one of
//! `responsecode.md`'s values (the conformance example checks [`USED_CODES`] against
//! `responsecode-values.csv`).

use super::xml::Writer;

/// An EWS error. `fault`: answered as a SOAP fault (HTTP 500) instead of a response message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EwsError {
    pub code: &'static str,
    pub message: String,
    pub fault: bool,
    /// `BackOffMilliseconds` for `ErrorServerBusy`.
    pub back_off_ms: Option<u64>,
    /// Elements the operation still writes after the error (markup made by a writer), as
    /// SyncFolderItems writes an empty `m:SyncState` and `m:IncludesLastItemInRange`.
    pub trailer: Option<String>,
}

impl EwsError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        EwsError {
            code,
            message: message.into(),
            fault: false,
            back_off_ms: None,
            trailer: None,
        }
    }

    /// A SOAP fault.
    pub fn fault(code: &'static str, message: impl Into<String>) -> Self {
        EwsError {
            fault: true,
            ..EwsError::new(code, message)
        }
    }

    /// `ErrorSchemaValidation` (a SOAP fault, as the schema check runs before any operation).
    pub fn schema(detail: impl Into<String>) -> Self {
        EwsError::fault(
            "ErrorSchemaValidation",
            format!("The request failed schema validation: {}", detail.into()),
        )
    }

    pub fn item_not_found() -> Self {
        EwsError::new(
            "ErrorItemNotFound",
            "The specified object was not found in the store., The process failed to get the correct properties.",
        )
    }

    pub fn id_malformed() -> Self {
        EwsError::new("ErrorInvalidIdMalformed", "Id is malformed.")
    }

    pub fn id_empty() -> Self {
        EwsError::new("ErrorInvalidIdEmpty", "Id must be non-empty.")
    }

    pub fn access_denied() -> Self {
        EwsError::new(
            "ErrorAccessDenied",
            "Access is denied. Check credentials and try again.",
        )
    }

    pub fn non_existent_mailbox(addr: &str) -> Self {
        EwsError::new(
            "ErrorNonExistentMailbox",
            format!("The SMTP address has no mailbox associated with it. ({addr})"),
        )
    }

    pub fn impersonate_denied() -> Self {
        EwsError::fault(
            "ErrorImpersonateUserDenied",
            "The account does not have permission to impersonate the requested user.",
        )
    }

    pub fn server_busy(back_off_ms: u64) -> Self {
        EwsError {
            back_off_ms: Some(back_off_ms),
            ..EwsError::fault(
                "ErrorServerBusy",
                "The server cannot service this request right now. Try again later.",
            )
        }
    }

    /// Writes the `m:MessageText`, `m:ResponseCode`, `m:DescriptiveLinkKey` (and
    /// `m:MessageXml`) of a response message.
    pub fn write_message_body(&self, w: &mut Writer) {
        w.leaf("m:MessageText", &self.message)
            .leaf("m:ResponseCode", self.code)
            .leaf("m:DescriptiveLinkKey", "0");
        if let Some(ms) = self.back_off_ms {
            w.start("m:MessageXml", &[])
                .leaf_attrs(
                    "t:Value",
                    &[("Name", "BackOffMilliseconds")],
                    &ms.to_string(),
                )
                .end("m:MessageXml");
        }
        if let Some(t) = &self.trailer {
            w.raw(t);
        }
    }
}

/// Every `ResponseCode` the EWS face can answer with (the conformance example checks each is
/// in `responsecode-values.csv`).
pub const USED_CODES: &[&str] = &[
    "NoError",
    "ErrorAccessDenied",
    "ErrorCalendarEndDateIsEarlierThanStartDate",
    "ErrorCalendarFolderIsInvalidForCalendarView",
    "ErrorCalendarInvalidRecurrence",
    "ErrorCalendarInvalidTimeZone",
    "ErrorCalendarOccurrenceIndexIsOutOfRecurrenceRange",
    "ErrorCalendarOccurrenceIsDeletedFromRecurrence",
    "ErrorCalendarViewRangeTooBig",
    "ErrorExceededConnectionCount",
    "ErrorExceededFindCountLimit",
    "ErrorFolderNotFound",
    "ErrorImpersonateUserDenied",
    "ErrorInternalServerError",
    "ErrorInvalidArgument",
    "ErrorInvalidExchangeImpersonationHeaderData",
    "ErrorInvalidExtendedProperty",
    "ErrorInvalidExtendedPropertyValue",
    "ErrorInvalidFreeBusyViewType",
    "ErrorInvalidIdEmpty",
    "ErrorInvalidIdMalformed",
    "ErrorInvalidIndexedPagingParameters",
    "ErrorInvalidMergedFreeBusyInterval",
    "ErrorInvalidOperation",
    "ErrorInvalidPagingMaxRows",
    "ErrorInvalidPropertyRequest",
    "ErrorInvalidPropertySet",
    "ErrorInvalidRequest",
    "ErrorInvalidRestriction",
    "ErrorInvalidServerVersion",
    "ErrorInvalidSyncStateData",
    "ErrorInvalidTimeInterval",
    "ErrorInvalidValueForProperty",
    "ErrorIrresolvableConflict",
    "ErrorItemNotFound",
    "ErrorMailRecipientNotFound",
    "ErrorMailboxDataArrayTooBig",
    "ErrorMissingEmailAddress",
    "ErrorMissingInformationSharingFolderId",
    "ErrorNameResolutionMultipleResults",
    "ErrorNameResolutionNoResults",
    "ErrorNonExistentMailbox",
    "ErrorRestrictionTooComplex",
    "ErrorSchemaValidation",
    "ErrorSendMeetingCancellationsRequired",
    "ErrorSendMeetingInvitationsOrCancellationsRequired",
    "ErrorSendMeetingInvitationsRequired",
    "ErrorServerBusy",
    "ErrorTimeIntervalTooBig",
    "ErrorTimeZone",
    "ErrorTooManyObjectsOpened",
    "ErrorUnsupportedPathForQuery",
    "ErrorUnsupportedPathForSortGroup",
];
