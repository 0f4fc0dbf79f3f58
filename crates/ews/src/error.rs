//! One error type; callers branch on its [`FailureKind`] (the same classes as the Graph
//! client's). Messages are for the Exchange administrator: each names the cause and the fix,
//! and never carries a password or a token.

use std::fmt;
use std::time::Duration;

use calgate_core::FailureKind;

/// An error from Exchange (a SOAP fault, a ResponseCode, an HTTP status), the network, or
/// calgate's own checks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    pub kind: FailureKind,
    /// HTTP status, when there was an answer.
    pub status: Option<u16>,
    /// EWS's `ResponseCode` (`ErrorServerBusy`, `ErrorImpersonateUserDenied`, …), or calgate's
    /// own code for failures before EWS answered (`HttpUnauthorized`, `TlsUntrusted`, …).
    pub code: Option<String>,
    /// One line: the cause and the fix.
    pub message: String,
    /// How long Exchange asked calgate to wait (`BackOffMilliseconds`, `Retry-After`).
    pub back_off: Option<Duration>,
}

impl Error {
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            status: None,
            code: None,
            message: message.into(),
            back_off: None,
        }
    }

    pub fn with_code(mut self, code: impl Into<String>) -> Error {
        self.code = Some(code.into());
        self
    }

    pub fn with_status(mut self, status: u16) -> Error {
        self.status = Some(status);
        self
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Error {
        Error::new(FailureKind::InvalidData, message)
    }

    pub(crate) fn config(message: impl Into<String>) -> Error {
        Error::new(FailureKind::Config, message)
    }

    pub fn is_code(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }
}

/// The class of an EWS `ResponseCode`, and the administrator's words for it (`None`: use
/// Exchange's own `MessageText`). `mailbox` is the mailbox the request was for.
pub fn classify(code: &str, mailbox: Option<&str>) -> (FailureKind, Option<String>) {
    let mb = mailbox.unwrap_or("the mailbox");
    use FailureKind as K;
    match code {
        "ErrorServerBusy" | "ErrorExceededConnectionCount" | "ErrorTimeoutExpired"
        | "ErrorInternalServerTransientError" | "ErrorMailboxStoreUnavailable"
        | "ErrorMailboxMoveInProgress" | "ErrorConnectionFailed" | "ErrorBatchProcessingStopped"
        | "ErrorExceededSubscriptionCount" | "ErrorTooManyObjectsOpened" => (
            K::Retryable,
            Some(format!(
                "Exchange is busy ({code}): calgate backs off and tries again; if this lasts, raise the EWS throttling policy of the service account (New-ThrottlingPolicy … EwsMaxConcurrency) or lower [sync] concurrency"
            )),
        ),
        "ErrorInvalidSyncStateData" | "ErrorInvalidSyncStateDataDetails" => (
            K::ResyncRequired,
            Some(format!("Exchange no longer knows calgate's sync state of {mb}: a full resync follows")),
        ),
        "ErrorImpersonateUserDenied" | "ErrorImpersonationDenied" => (
            K::Permission,
            Some(format!(
                "the service account may not impersonate {mb} (ErrorImpersonateUserDenied): grant it ApplicationImpersonation over a scope that includes {mb} (New-ManagementRoleAssignment -Role ApplicationImpersonation -User SERVICE -CustomRecipientWriteScope SCOPE), or connect without --impersonation and give it delegate access (Add-MailboxFolderPermission)"
            )),
        ),
        "ErrorImpersonationFailed" => (
            K::Permission,
            Some(format!("Exchange could not impersonate {mb} (ErrorImpersonationFailed): check that the mailbox is enabled and the service account's ApplicationImpersonation scope includes it")),
        ),
        "ErrorAccessDenied" | "ErrorFolderNotFound" | "ErrorNoPublicFolderReplicaAvailable" => (
            K::Permission,
            Some(format!(
                "the service account may not open {mb}'s calendar ({code}): give it delegate access (Add-MailboxFolderPermission -Identity {mb}:\\Calendar -User SERVICE -AccessRights Editor) or connect with --impersonation and grant ApplicationImpersonation"
            )),
        ),
        "ErrorNonExistentMailbox" | "ErrorMailboxNotFound" | "ErrorInvalidSmtpAddress"
        | "ErrorNotAllowedExternalSharingByPolicy" => (
            K::NotFound,
            Some(format!("Exchange has no mailbox {mb} ({code}): check the address (its primary SMTP address) or unlink it")),
        ),
        "ErrorItemNotFound" | "ErrorCalendarOccurrenceIsDeletedFromRecurrence" => (K::NotFound, None),
        "ErrorCalendarViewRangeTooBig" => (
            K::Fatal,
            Some("Exchange refuses a calendar view over more than 2 years (ErrorCalendarViewRangeTooBig): shorten the sync window ([sync] window)".into()),
        ),
        "ErrorInvalidIdMalformed" | "ErrorInvalidIdEmpty" | "ErrorInvalidIdNotAnItemAttachmentId"
        | "ErrorInvalidIdReturnedByResolveNames" | "ErrorInvalidIdStoreObjectIdTooLong"
        | "ErrorInvalidIdXml" | "ErrorInvalidIdMonikerTooLong" => (K::NotFound, None),
        "ErrorSchemaValidation" | "ErrorInvalidRequest" | "ErrorInvalidServerVersion"
        | "ErrorInvalidPropertyRequest" | "ErrorInvalidPropertySet" => (K::Fatal, None),
        "ErrorIrresolvableConflict" | "ErrorStaleObject" => (K::Retryable, None),
        "ErrorQuotaExceeded" | "ErrorMessageSizeExceeded" => (K::Fatal, None),
        _ => (K::Fatal, None),
    }
}

/// A redacted value for `Debug` of anything secret.
pub(crate) struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}
