//! The one check of a mailbox address (SMTP address or UPN) that every way in uses: `mailbox
//! link`, CSV import, room discovery, the REST API. Exchange addresses are plain `local@domain`;
//! anything else (quotes, paths, query characters, control characters, terminal escapes,
//! kilobytes of text) is refused before it reaches a URL, the store or a terminal.

use std::fmt;

/// The longest address accepted (RFC 5321 §4.5.3.1: a path holds at most 256 octets, 254 of
/// them the address).
pub const MAX_ADDRESS_LEN: usize = 254;
/// The longest local part (RFC 5321 §4.5.3.1.1).
const MAX_LOCAL_LEN: usize = 64;
/// The longest domain label (RFC 1035 §2.3.4).
const MAX_LABEL_LEN: usize = 63;

/// Why an address was refused, in words that are safe to print: the address is quoted with
/// control characters escaped and cut to a readable length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressError {
    message: String,
}

impl AddressError {
    fn new(address: &str, why: &str) -> AddressError {
        AddressError {
            message: format!(
                "{} is not an email address ({why}): give the mailbox's primary SMTP address or UPN (name@domain)",
                printable(address)
            ),
        }
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for AddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for AddressError {}

/// `address` quoted for a message: control and invisible characters escaped, at most 60
/// characters shown.
pub fn printable(address: &str) -> String {
    const SHOWN: usize = 60;
    let mut out = String::from("'");
    for (i, c) in address.chars().enumerate() {
        if i == SHOWN {
            out.push('…');
            break;
        }
        if c.is_control() || is_invisible(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// `text` on one line, with control and invisible characters escaped (for messages that quote
/// input).
pub fn printable_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c == '\n' || c == '\r' {
            out.push(' ');
        } else if c.is_control() || is_invisible(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// Zero-width and bidirectional-override characters: they make an address print as another.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// Checks the shape of an SMTP address / UPN (the caller trims surrounding blanks first).
pub fn check_address(address: &str) -> Result<(), AddressError> {
    let err = |why: &str| Err(AddressError::new(address, why));
    if address.is_empty() {
        return Err(AddressError {
            message:
                "the address is empty: give the mailbox's primary SMTP address or UPN (name@domain)"
                    .to_owned(),
        });
    }
    if address.len() > MAX_ADDRESS_LEN {
        return err(&format!(
            "{} characters; an address has at most {MAX_ADDRESS_LEN}",
            address.chars().count()
        ));
    }
    if let Some(c) = address.chars().find(|&c| {
        c.is_whitespace()
            || c.is_control()
            || is_invisible(c)
            || matches!(
                c,
                '<' | '>'
                    | '('
                    | ')'
                    | ','
                    | ';'
                    | ':'
                    | '"'
                    | '['
                    | ']'
                    | '\\'
                    | '/'
                    | '?'
                    | '#'
                    | '%'
            )
    }) {
        let what = match c {
            ' ' => "a space".to_owned(),
            c if c.is_whitespace() || c.is_control() || is_invisible(c) => {
                format!("the character {}", c.escape_unicode())
            }
            c => format!("'{c}'"),
        };
        return err(&format!("it contains {what}"));
    }
    let Some((local, domain)) = address.split_once('@') else {
        return err("no '@'");
    };
    if domain.contains('@') {
        return err("more than one '@'");
    }
    if local.is_empty() || local.len() > MAX_LOCAL_LEN {
        return err("the part before '@' is empty or longer than 64 characters");
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return err("misplaced '.' before '@'");
    }
    let labels_ok = domain.contains('.')
        && domain.split('.').all(|l| {
            !l.is_empty() && l.len() <= MAX_LABEL_LEN && !l.starts_with('-') && !l.ends_with('-')
        });
    if !labels_ok {
        return err("the domain is not a domain name");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_addresses_pass() {
        for a in [
            "priya.sharma@contoso.example",
            "room-amstel@contoso.example",
            "o'brien+cal@sub.contoso.co.uk",
            "Ünïcødé@bücher.example",
        ] {
            assert_eq!(check_address(a), Ok(()), "{a}");
        }
    }

    #[test]
    fn hostile_addresses_fail_with_printable_messages() {
        let long = format!("{}@contoso.example", "a".repeat(10_000));
        for (a, needle) in [
            ("", "empty"),
            ("no-at-sign", "no '@'"),
            ("a@b@contoso.example", "more than one"),
            ("\"quoted\"@contoso.example", "contains '\"'"),
            ("a/b@contoso.example", "contains '/'"),
            ("a?b@contoso.example", "contains '?'"),
            ("a#b@contoso.example", "contains '#'"),
            ("a%b@contoso.example", "contains '%'"),
            ("a b@contoso.example", "contains a space"),
            (
                "\u{1b}[31mred@contoso.example",
                "contains the character \\u{1b}",
            ),
            ("evil\u{202e}@contoso.example", "contains"),
            (".a@contoso.example", "misplaced"),
            ("a..b@contoso.example", "misplaced"),
            ("a@localhost", "not a domain"),
            ("a@-x.example", "not a domain"),
            (long.as_str(), "at most 254"),
        ] {
            let e = check_address(a).expect_err(a).to_string();
            assert!(e.contains(needle), "{a:?}: {e}");
            assert!(
                !e.chars().any(|c| c.is_control() || is_invisible(c)),
                "{e:?}"
            );
            assert!(e.len() < 400, "a short message: {}", e.len());
        }
    }
}
