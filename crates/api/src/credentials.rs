//! Where a request carries its credential. Each face lists the readers
//! it accepts (`Face::CREDENTIALS`); the first that finds a value wins,
//! and the service layer decides what the value is (the root token, a
//! login's JWT, an API token).
//!
//! Credentials in request fields (RStack's md5 signature, XenSystem's
//! `api_username`/`api_key`) travel with the rest of the fields, in the
//! query string or the body: those faces read them from `kit::Fields`
//! with `field_credential` and `Md5Signature`.

use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use md5::{Digest, Md5};
use std::collections::BTreeMap;
use subtle::ConstantTimeEq;

/// One place a credential may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialReader {
    /// `Authorization: Bearer <t>` (also `JWT <t>`, `Token <t>`), or the
    /// bare token, as PTPB clients send it.
    Authorization,
    /// A header of this name holding the token alone.
    Header(&'static str),
    /// A cookie of this name.
    Cookie(&'static str),
    /// A query-string field of this name: an API key in a GET URL.
    QueryField(&'static str),
}

impl CredentialReader {
    /// The credential this reader finds, if any (never empty).
    pub fn read(self, parts: &Parts) -> Option<String> {
        let value = match self {
            CredentialReader::Authorization => authorization(&parts.headers),
            CredentialReader::Header(name) => parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            CredentialReader::Cookie(name) => cookie_value(&parts.headers, name),
            CredentialReader::QueryField(name) => query_field(parts.uri.query()?, name),
        }?;
        let value = value.trim();
        (!value.is_empty()).then(|| value.to_string())
    }

    /// How a client should send it, for the "missing credential" error.
    pub fn hint(self) -> String {
        match self {
            CredentialReader::Authorization => "Authorization: Bearer <token>".into(),
            CredentialReader::Header(name) => format!("{name}: <token>"),
            CredentialReader::Cookie(name) => format!("the {name} cookie"),
            CredentialReader::QueryField(name) => format!("?{name}=<token>"),
        }
    }
}

/// The first credential any of `readers` finds.
pub fn read_any(readers: &[CredentialReader], parts: &Parts) -> Option<String> {
    readers.iter().find_map(|r| r.read(parts))
}

/// "missing token (send A or B)" for a face's readers.
pub fn missing_message(readers: &[CredentialReader]) -> String {
    let hints: Vec<String> = readers.iter().map(|r| r.hint()).collect();
    format!("missing token (send {})", hints.join(" or "))
}

/// An API key sent as a request field (XenSystem's `api_key`), if present
/// and not empty.
pub fn field_credential(fields: &BTreeMap<String, String>, name: &str) -> Option<String> {
    let value = fields.get(name)?.trim();
    (!value.is_empty()).then(|| value.to_string())
}

/// A request signed as RStack's API v3 signs it:
/// `api_sign = md5(key + api_random + api_timestamp)`, lower-case hex.
/// The key itself never travels; the server finds which of its keys
/// made the signature.
#[derive(Debug, Clone)]
pub struct Md5Signature {
    sign: String,
    random: String,
    timestamp: String,
}

/// Why a signed request is refused. The messages say no more than the
/// category, so a caller learns nothing about which key came close.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("{0} is missing")]
    Missing(&'static str),
    #[error("timestamp out of window")]
    OutOfWindow,
    #[error("signature invalid")]
    Invalid,
}

impl Md5Signature {
    pub const SIGN: &'static str = "api_sign";
    pub const RANDOM: &'static str = "api_random";
    pub const TIMESTAMP: &'static str = "api_timestamp";

    /// The signature fields of a request.
    pub fn from_fields(fields: &BTreeMap<String, String>) -> Result<Self, SignatureError> {
        let field = |name: &'static str| {
            field_credential(fields, name).ok_or(SignatureError::Missing(name))
        };
        Ok(Self {
            sign: field(Self::SIGN)?.to_ascii_lowercase(),
            random: field(Self::RANDOM)?,
            timestamp: field(Self::TIMESTAMP)?,
        })
    }

    /// The `api_random` value, for the caller's replay check.
    pub fn nonce(&self) -> &str {
        &self.random
    }

    /// Which of `keys` made the signature, if `api_timestamp` is within
    /// `window_secs` of `now`. Every key is compared, each in constant
    /// time, so the time taken says nothing about which one matched.
    pub fn signer<'k, K>(
        &self,
        keys: impl IntoIterator<Item = (&'k K, &'k str)>,
        now: i64,
        window_secs: i64,
    ) -> Result<&'k K, SignatureError>
    where
        K: ?Sized + 'k,
    {
        let at: i64 = self
            .timestamp
            .parse()
            .map_err(|_| SignatureError::OutOfWindow)?;
        if now.abs_diff(at) > window_secs.unsigned_abs() {
            return Err(SignatureError::OutOfWindow);
        }
        let mut found = None;
        for (id, key) in keys {
            let expected = md5_hex(&[key, &self.random, &self.timestamp]);
            let same: bool = expected.as_bytes().ct_eq(self.sign.as_bytes()).into();
            if same && found.is_none() {
                found = Some(id);
            }
        }
        found.ok_or(SignatureError::Invalid)
    }
}

/// The lower-case hex md5 of the concatenated parts.
pub fn md5_hex(parts: &[&str]) -> String {
    let mut hasher = Md5::new();
    for part in parts {
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

fn authorization(headers: &HeaderMap) -> Option<String> {
    let header = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let is_scheme = ["bearer", "jwt", "token"]
        .iter()
        .any(|s| scheme.eq_ignore_ascii_case(s));
    Some(if is_scheme { rest } else { header }.to_string())
}

/// The value of cookie `name`, from any `Cookie` header.
pub fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty())
}

fn query_field(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parts(uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut req = axum::http::Request::builder().uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.body(()).unwrap().into_parts().0
    }

    #[test]
    fn authorization_accepts_schemes_and_bare_tokens() {
        let read =
            |v: &str| CredentialReader::Authorization.read(&parts("/", &[("authorization", v)]));
        assert_eq!(read("Bearer abc").as_deref(), Some("abc"));
        assert_eq!(read("JWT a.b.c").as_deref(), Some("a.b.c"));
        assert_eq!(read("abc").as_deref(), Some("abc"));
        assert_eq!(read("Bearer   ").as_deref(), None);
    }

    #[test]
    fn cookie_query_and_header_readers() {
        let p = parts(
            "/x?a=1&api_key=k%2B1",
            &[("cookie", "x=1; session=s1"), ("x-api-key", " h ")],
        );
        assert_eq!(
            CredentialReader::Cookie("session").read(&p).as_deref(),
            Some("s1")
        );
        assert_eq!(CredentialReader::Cookie("sess").read(&p), None);
        assert_eq!(
            CredentialReader::QueryField("api_key").read(&p).as_deref(),
            Some("k+1")
        );
        assert_eq!(
            CredentialReader::Header("x-api-key").read(&p).as_deref(),
            Some("h")
        );
        let readers = [
            CredentialReader::Authorization,
            CredentialReader::Cookie("session"),
        ];
        assert_eq!(read_any(&readers, &p).as_deref(), Some("s1"));
        assert_eq!(
            missing_message(&readers),
            "missing token (send Authorization: Bearer <token> or the session cookie)"
        );
    }

    fn fields(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn md5_signature_finds_its_key_within_the_window() {
        let now = 1_700_000_000;
        let sign = md5_hex(&["key-b", "r4nd", "1700000100"]);
        let request = fields(&[
            ("api_sign", &sign.to_uppercase()),
            ("api_random", "r4nd"),
            ("api_timestamp", "1700000100"),
        ]);
        let signed = Md5Signature::from_fields(&request).unwrap();
        let keys = [("a", "key-a"), ("b", "key-b")];
        let keys = || keys.iter().map(|(id, k)| (id, *k));
        assert_eq!(signed.signer(keys(), now, 300), Ok(&"b"));
        assert_eq!(signed.nonce(), "r4nd");
        assert_eq!(
            signed.signer(keys(), now + 401, 300),
            Err(SignatureError::OutOfWindow)
        );
        assert_eq!(
            signed.signer(keys().take(1), now, 300),
            Err(SignatureError::Invalid)
        );
        // md5("") as published, so the digest is the standard one.
        assert_eq!(md5_hex(&[]), "d41d8cd98f00b204e9800998ecf8427e");
    }

    #[test]
    fn md5_signature_names_a_missing_field() {
        let request = fields(&[("api_sign", "x"), ("api_timestamp", "1")]);
        assert_eq!(
            Md5Signature::from_fields(&request).unwrap_err(),
            SignatureError::Missing("api_random")
        );
        assert_eq!(
            field_credential(&fields(&[("api_key", "  ")]), "api_key"),
            None
        );
    }
}
