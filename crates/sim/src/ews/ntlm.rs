//! NTLM (MS-NLMP, NTLMv2 only) for the EWS face, bound to the TCP connection as IIS binds it.
//!
//! NEGOTIATE (type 1) → `401` with `WWW-Authenticate: <scheme> <CHALLENGE>` (type 2, with a
//! random server challenge and the target info a domain member sends) → AUTHENTICATE (type 3):
//! the NTProofStr is checked against `HMAC-MD5(NTOWFv2, ServerChallenge ‖ blob)`, with
//! `NTOWFv2 = HMAC-MD5(MD4(UTF-16LE(password)), UTF-16LE(UPPER(user) ‖ domain))`. The
//! connection then stays authenticated for later requests without an `Authorization` header.
//! The scheme is `NTLM` or `Negotiate` (a raw NTLM token under `Negotiate`, as pyspnego sends
//! without Kerberos); SPNEGO-wrapped tokens, NTLMv1/LM responses and anonymous logons are
//! refused with a plain 401. The MIC is not checked.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use md4::{Digest, Md4};
use md5::Md5;
use uuid::Uuid;

use crate::state::lock;

/// What a connection has done so far.
#[derive(Debug, Clone)]
pub enum ConnAuth {
    /// A challenge was sent; the server challenge waits for the AUTHENTICATE message.
    Challenged { server_challenge: [u8; 8] },
    /// The connection is authenticated as this account (tenant, account index by logon).
    Authenticated { tenant: Uuid, logon: String },
}

/// NTLM state per connection id (see [`crate::server::ConnId`]).
#[derive(Debug, Default)]
pub struct Connections {
    map: Mutex<HashMap<u64, ConnAuth>>,
}

/// Most connections remembered (the oldest entries are dropped past it).
const MAX_CONNECTIONS: usize = 10_000;

impl Connections {
    pub fn get(&self, conn: u64) -> Option<ConnAuth> {
        lock(&self.map).get(&conn).cloned()
    }

    pub fn set(&self, conn: u64, a: ConnAuth) {
        let mut m = lock(&self.map);
        if m.len() >= MAX_CONNECTIONS
            && !m.contains_key(&conn)
            && let Some(k) = m.keys().min().copied()
        {
            m.remove(&k);
        }
        m.insert(conn, a);
    }

    pub fn forget(&self, conn: u64) {
        lock(&self.map).remove(&conn);
    }

    pub fn clear(&self) {
        lock(&self.map).clear();
    }
}

const SIGNATURE: &[u8; 8] = b"NTLMSSP\0";
const NEGOTIATE_UNICODE: u32 = 0x0000_0001;
const REQUEST_TARGET: u32 = 0x0000_0004;
const NEGOTIATE_SIGN: u32 = 0x0000_0010;
const NEGOTIATE_SEAL: u32 = 0x0000_0020;
const NEGOTIATE_NTLM: u32 = 0x0000_0200;
const NEGOTIATE_ALWAYS_SIGN: u32 = 0x0000_8000;
const TARGET_TYPE_DOMAIN: u32 = 0x0001_0000;
const EXTENDED_SESSIONSECURITY: u32 = 0x0008_0000;
const NEGOTIATE_TARGET_INFO: u32 = 0x0080_0000;
const NEGOTIATE_VERSION: u32 = 0x0200_0000;
const NEGOTIATE_128: u32 = 0x2000_0000;
const NEGOTIATE_KEY_EXCH: u32 = 0x4000_0000;
const NEGOTIATE_56: u32 = 0x8000_0000;

/// The simulated Exchange server's NetBIOS and DNS names (the CHALLENGE's target info).
pub const SERVER_NETBIOS: &str = "EXCH01";
pub const DOMAIN_DNS: &str = "contoso.example";

fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

fn from_utf16(b: &[u8]) -> Option<String> {
    if !b.len().is_multiple_of(2) {
        return None;
    }
    let units: Vec<u16> = b
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16(&units).ok()
}

fn hmac_md5(key: &[u8], parts: &[&[u8]]) -> [u8; 16] {
    let mut m = match <Hmac<Md5> as KeyInit>::new_from_slice(key) {
        Ok(m) => m,
        // HMAC takes keys of any length; this cannot happen.
        Err(_) => return [0; 16],
    };
    for p in parts {
        m.update(p);
    }
    let out = m.finalize().into_bytes();
    let mut r = [0u8; 16];
    r.copy_from_slice(&out);
    r
}

/// `NTOWFv2(password, user, domain)` (MS-NLMP 3.3.2).
pub fn ntowf_v2(password: &str, user: &str, domain: &str) -> [u8; 16] {
    let nt_hash = Md4::digest(utf16(password));
    let who = utf16(&format!("{}{domain}", user.to_uppercase()));
    hmac_md5(&nt_hash, &[&who])
}

/// The NTProofStr of an NTLMv2 response (MS-NLMP 3.3.2).
pub fn nt_proof(ntowf: &[u8; 16], server_challenge: &[u8; 8], blob: &[u8]) -> [u8; 16] {
    hmac_md5(ntowf, &[server_challenge, blob])
}

fn av_pair(out: &mut Vec<u8>, id: u16, value: &[u8]) {
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&u16::try_from(value.len()).unwrap_or(0).to_le_bytes());
    out.extend_from_slice(value);
}

/// The CHALLENGE message for a client's NEGOTIATE flags.
pub fn challenge_message(client_flags: u32, server_challenge: &[u8; 8], now_unix: i64) -> Vec<u8> {
    let optional = NEGOTIATE_SIGN
        | NEGOTIATE_SEAL
        | NEGOTIATE_ALWAYS_SIGN
        | EXTENDED_SESSIONSECURITY
        | NEGOTIATE_128
        | NEGOTIATE_56
        | NEGOTIATE_KEY_EXCH
        | NEGOTIATE_VERSION;
    let flags = NEGOTIATE_UNICODE
        | REQUEST_TARGET
        | NEGOTIATE_NTLM
        | TARGET_TYPE_DOMAIN
        | NEGOTIATE_TARGET_INFO
        | (client_flags & optional);
    let domain = crate::seed::DEMO_NETBIOS;
    let target_name = utf16(domain);
    let mut info = Vec::new();
    av_pair(&mut info, 2, &utf16(domain));
    av_pair(&mut info, 1, &utf16(SERVER_NETBIOS));
    av_pair(&mut info, 4, &utf16(DOMAIN_DNS));
    av_pair(
        &mut info,
        3,
        &utf16(&format!("{}.{DOMAIN_DNS}", SERVER_NETBIOS.to_lowercase())),
    );
    av_pair(&mut info, 5, &utf16(DOMAIN_DNS));
    let filetime = u64::try_from(now_unix.saturating_add(11_644_473_600))
        .unwrap_or(0)
        .saturating_mul(10_000_000);
    av_pair(&mut info, 7, &filetime.to_le_bytes());
    av_pair(&mut info, 0, &[]);
    let header_len: u32 = 56;
    let mut m = Vec::with_capacity(56 + target_name.len() + info.len());
    m.extend_from_slice(SIGNATURE);
    m.extend_from_slice(&2u32.to_le_bytes());
    let tn_len = u16::try_from(target_name.len()).unwrap_or(0);
    m.extend_from_slice(&tn_len.to_le_bytes());
    m.extend_from_slice(&tn_len.to_le_bytes());
    m.extend_from_slice(&header_len.to_le_bytes());
    m.extend_from_slice(&flags.to_le_bytes());
    m.extend_from_slice(server_challenge);
    m.extend_from_slice(&[0u8; 8]);
    let ti_len = u16::try_from(info.len()).unwrap_or(0);
    m.extend_from_slice(&ti_len.to_le_bytes());
    m.extend_from_slice(&ti_len.to_le_bytes());
    m.extend_from_slice(&(header_len + u32::from(tn_len)).to_le_bytes());
    // Version: Windows Server 2016-like 10.0.14393, NTLM revision 15.
    m.extend_from_slice(&[10, 0, 0x39, 0x38, 0, 0, 0, 0x0f]);
    m.extend_from_slice(&target_name);
    m.extend_from_slice(&info);
    m
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The payload a security buffer (`len`, `maxlen`, `offset`) at `at` points to.
fn field(b: &[u8], at: usize) -> Option<&[u8]> {
    let len = usize::from(u16_at(b, at)?);
    let off = usize::try_from(u32_at(b, at + 4)?).ok()?;
    b.get(off..off.checked_add(len)?)
}

/// What an AUTHENTICATE message carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticate {
    pub domain: String,
    pub user: String,
    pub nt_response: Vec<u8>,
}

pub fn parse_authenticate(b: &[u8]) -> Option<Authenticate> {
    if b.get(..8)? != SIGNATURE || u32_at(b, 8)? != 3 {
        return None;
    }
    let flags = u32_at(b, 60)?;
    let text = |raw: &[u8]| {
        if flags & NEGOTIATE_UNICODE != 0 {
            from_utf16(raw)
        } else {
            Some(raw.iter().map(|c| char::from(*c)).collect())
        }
    };
    Some(Authenticate {
        nt_response: field(b, 20)?.to_vec(),
        domain: text(field(b, 28)?)?,
        user: text(field(b, 36)?)?,
    })
}

/// Handles an `Authorization: NTLM|Negotiate <token>` header on connection `conn`: a CHALLENGE
/// (as a 401), the authenticated caller, or a plain 401.
pub fn handle_header(
    st: &crate::state::SimState,
    conn: u64,
    scheme: &str,
    token: &str,
    host: &str,
) -> Result<super::Caller, axum::response::Response> {
    let deny = |st: &crate::state::SimState| {
        st.ews.ntlm.forget(conn);
        super::unauthorized(st, host, None)
    };
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(token) else {
        return Err(deny(st));
    };
    if raw.get(..8) != Some(&SIGNATURE[..]) {
        // SPNEGO (0x60 / 0xa1 ASN.1) or garbage: not offered by this server.
        return Err(deny(st));
    }
    match u32_at(&raw, 8) {
        Some(1) => {
            let client_flags = u32_at(&raw, 12).unwrap_or(0);
            let server_challenge: [u8; 8] = rand::random();
            let msg = challenge_message(client_flags, &server_challenge, st.now().as_second());
            st.ews
                .ntlm
                .set(conn, ConnAuth::Challenged { server_challenge });
            let b64 = base64::engine::general_purpose::STANDARD.encode(msg);
            Err(super::unauthorized(st, host, Some((scheme, &b64))))
        }
        Some(3) => {
            let Some(ConnAuth::Challenged { server_challenge }) = st.ews.ntlm.get(conn) else {
                return Err(deny(st));
            };
            let Some(auth) = parse_authenticate(&raw) else {
                return Err(deny(st));
            };
            // NTLMv2 only: the response is NTProofStr (16) + a blob of at least 28 bytes.
            if auth.user.is_empty() || auth.nt_response.len() < 16 + 28 {
                return Err(deny(st));
            }
            let Some((tenant, account)) = super::account_by_logon(st, &auth.domain, &auth.user)
            else {
                return Err(deny(st));
            };
            let (proof, blob) = auth.nt_response.split_at(16);
            let key = ntowf_v2(&account.password, &auth.user, &auth.domain);
            if nt_proof(&key, &server_challenge, blob)[..] != *proof {
                return Err(deny(st));
            }
            st.ews.ntlm.set(
                conn,
                ConnAuth::Authenticated {
                    tenant,
                    logon: account.logon_name(),
                },
            );
            Ok(super::Caller { tenant, account })
        }
        _ => Err(deny(st)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn ntowf_v2_matches_ms_nlmp_4_2_4() {
        // MS-NLMP 4.2.4.1.1: User "User", UserDom "Domain", Password "Password".
        assert_eq!(
            hex(&ntowf_v2("Password", "User", "Domain")),
            "0c868a403bfd7a93a3001ef22ef02e3f"
        );
    }

    #[test]
    fn challenge_parses_back_and_authenticate_fields_are_read() {
        let c = challenge_message(0xe2088297, &[1, 2, 3, 4, 5, 6, 7, 8], 1_700_000_000);
        assert_eq!(&c[..8], SIGNATURE);
        assert_eq!(u32_at(&c, 8), Some(2));
        assert_eq!(&c[24..32], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(from_utf16(field(&c, 12).unwrap()).unwrap(), "CONTOSO");
        let info = field(&c, 40).unwrap();
        assert_eq!(&info[info.len() - 4..], &[0, 0, 0, 0], "MsvAvEOL");
        // A hand-made AUTHENTICATE message.
        let (dom, user, nt) = (utf16("CONTOSO"), utf16("svc"), vec![7u8; 60]);
        let mut m = Vec::new();
        m.extend_from_slice(SIGNATURE);
        m.extend_from_slice(&3u32.to_le_bytes());
        let mut payload_at = 88u32;
        let mut fields = Vec::new();
        let mut payload = Vec::new();
        for p in [&[][..], &nt, &dom, &user, &[], &[]] {
            let l = u16::try_from(p.len()).unwrap();
            fields.extend_from_slice(&l.to_le_bytes());
            fields.extend_from_slice(&l.to_le_bytes());
            fields.extend_from_slice(&payload_at.to_le_bytes());
            payload_at += u32::from(l);
            payload.extend_from_slice(p);
        }
        m.extend_from_slice(&fields);
        m.extend_from_slice(&NEGOTIATE_UNICODE.to_le_bytes());
        m.extend_from_slice(&[0u8; 24]);
        m.extend_from_slice(&payload);
        let a = parse_authenticate(&m).unwrap();
        assert_eq!((a.domain.as_str(), a.user.as_str()), ("CONTOSO", "svc"));
        assert_eq!(a.nt_response, nt);
    }
}
