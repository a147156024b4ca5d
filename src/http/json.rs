//! `ApiJson<T>`: the JSON body extractor of every route. It tells a body that is not JSON at all
//! (400) from well-formed JSON that breaks the endpoint's rules (422), which a single serde pass
//! cannot: serde_json reports some type mismatches (a number where an enum was expected) as
//! syntax errors.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::state::AppState;

/// For an optional field that may be left out but not given as `null`, which the contract does
/// not allow: `#[serde(default, deserialize_with = "json::present")]`.
pub(crate) fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// For an optional field whose `null` means something (`seats: null`, no limit) apart from its
/// absence (leave it as it is): `#[serde(default, deserialize_with = "json::nullable")]` gives
/// `None` when absent, `Some(None)` for `null`.
pub(crate) fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    <Option<T> as serde::Deserialize>::deserialize(deserializer).map(Some)
}

/// A JSON request body, parsed into `T`.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for ApiJson<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let declared_json = req
            .mime_type()
            .map(|mime| mime.map(|m| m.subtype() == mime::JSON || m.suffix() == Some(mime::JSON)));
        let limit = req
            .app_data::<web::Data<AppState>>()
            .map_or(0, |state| state.settings.body_limit);
        let body = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            // A missing content type is read as JSON; any other than JSON is refused.
            match declared_json {
                Ok(Some(true)) | Ok(None) => {}
                Ok(Some(false)) | Err(_) => return Err(ApiError::UnsupportedMediaType),
            }
            let bytes = body
                .await
                .map_err(|err| match err.as_error::<PayloadError>() {
                    Some(PayloadError::Overflow) => ApiError::PayloadTooLarge(limit),
                    _ => ApiError::MalformedJson("the request body could not be read".into()),
                })?;
            let value: serde_json::Value = serde_json::from_slice(&bytes)
                .map_err(|e| ApiError::MalformedJson(format!("the body is not valid JSON: {e}")))?;
            // serde reads a struct from an array of its fields in order too; the contract says
            // every body is an object.
            if !value.is_object() {
                return Err(ApiError::invalid(
                    "invalid_body",
                    "the body must be a JSON object",
                ));
            }
            T::deserialize(value)
                .map(ApiJson)
                .map_err(|e| ApiError::invalid("invalid_body", e.to_string()))
        })
    }
}
