//! A string that must never be printed: client secrets, private keys, access tokens. calgate
//! has one such type, `calgate_core::SecretString` (zeroed on drop, redacted in `Debug`); the
//! graph crate uses it as is.

pub use calgate_core::SecretString;
