//! Request decoding shared by the faces. Failures are `CoreError::Invalid`
//! naming the field (or `body`), which each face renders its own way.

use axum::extract::{FromRequest, Request};
use ironidc_core::CoreError;
use serde::de::DeserializeOwned;

pub type JsonMap = serde_json::Map<String, serde_json::Value>;

/// The whole body; an unreadable one (too large, cut off) is refused.
pub async fn body_bytes<S: Send + Sync>(
    req: Request,
    state: &S,
) -> Result<axum::body::Bytes, CoreError> {
    axum::body::Bytes::from_request(req, state)
        .await
        .map_err(|e| CoreError::invalid("body", e.to_string()))
}

/// A JSON object body; an empty body is an empty object. Malformed JSON or
/// a non-object is refused.
pub async fn json_object<S: Send + Sync>(req: Request, state: &S) -> Result<JsonMap, CoreError> {
    let bytes = body_bytes(req, state).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(JsonMap::new());
    }
    parse_object(&bytes)
}

/// JSON text that must be one object.
fn parse_object(text: &[u8]) -> Result<JsonMap, CoreError> {
    match serde_json::from_slice::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        Ok(_) => Err(CoreError::invalid("body", "must be a JSON object")),
        Err(e) => Err(CoreError::invalid("body", format!("malformed JSON: {e}"))),
    }
}

/// Decode a JSON value into `T`; an error names the field's path.
pub fn from_json<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, CoreError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        CoreError::invalid(&path, e.into_inner().to_string())
    })
}

/// Decode a query string or a form-encoded body into `T`; an error names
/// the field.
pub fn from_form<T: DeserializeOwned>(encoded: &[u8]) -> Result<T, CoreError> {
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(encoded));
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        CoreError::invalid(&path, e.into_inner().to_string())
    })
}

/// The fields of a request as the billing dialects send them: the query
/// string, then a JSON-object or form-encoded body, a body field winning
/// over a query field of the same name. JSON scalars become their text
/// (PHP clients send `"2"` and `2` alike); `null` is an absent field.
pub fn request_fields(
    query: Option<&str>,
    body: &[u8],
) -> Result<std::collections::BTreeMap<String, String>, CoreError> {
    let mut fields: std::collections::BTreeMap<String, String> = query
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let text = body.trim_ascii_start();
    if text.first() == Some(&b'{') {
        for (key, value) in parse_object(text)? {
            let text = match value {
                serde_json::Value::Null => continue,
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            fields.insert(key, text);
        }
    } else {
        fields.extend(form_urlencoded::parse(body).into_owned());
    }
    Ok(fields)
}
