//! Where a request carries its credential. Each face lists the readers
//! it accepts (`Face::CREDENTIALS`); the first that finds a value wins,
//! and the service layer decides what the value is (the root token, a
//! login's JWT, an API token).
//!
//! Credentials in a form body (RStack's `api_key`/`api_sign`, XenSystem's
//! `api_username`/`api_key`) are read by those faces' body extractors,
//! since a reader here sees only the request head.

use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::request::Parts;
use axum::http::HeaderMap;

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
}
