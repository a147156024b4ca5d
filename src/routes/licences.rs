//! `/v1/licences`: institutional licences (admin), their members, and seats claimed by e-mail
//! domain (`POST /v1/readers/{reader_id}/licence-claims`, service).

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::time::rfc3339;
use crate::domain::{EmailDomain, Entitlement, IpRange, Licence, LicenceId, LicenceSpec, ReaderId};
use crate::http::auth::{Acting, Caller};
use crate::http::error::ApiError;
use crate::http::json::{self, ApiJson};
use crate::http::paths::reader_id;
use crate::http::state::AppState;
use crate::http::views::Page;
use crate::services::licences::LicencePatch;
use crate::store::LicenceMember;

/// A licence as the API shows it.
#[derive(Debug, Serialize)]
struct LicenceView {
    id: LicenceId,
    name: String,
    entitlements: Vec<Entitlement>,
    ip_ranges: Vec<String>,
    email_domains: Vec<EmailDomain>,
    seats: Option<u32>,
    members: u32,
    starts_at: String,
    expires_at: String,
    created_at: String,
}

impl From<Licence> for LicenceView {
    fn from(licence: Licence) -> Self {
        let spec = licence.spec;
        Self {
            id: licence.id,
            name: spec.name,
            entitlements: spec.entitlements,
            ip_ranges: spec.ip_ranges.iter().map(IpRange::to_string).collect(),
            email_domains: spec.email_domains,
            seats: spec.seats,
            members: licence.members,
            starts_at: rfc3339(spec.starts_at),
            expires_at: rfc3339(spec.expires_at),
            created_at: rfc3339(licence.created_at),
        }
    }
}

/// `POST /v1/licences` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateLicence {
    name: String,
    entitlements: Vec<Entitlement>,
    #[serde(default)]
    ip_ranges: Vec<IpRange>,
    #[serde(default)]
    email_domains: Vec<EmailDomain>,
    #[serde(default)]
    seats: Option<u32>,
    #[serde(default, deserialize_with = "json::present")]
    starts_at: Option<DateTime<Utc>>,
    expires_at: DateTime<Utc>,
}

/// Makes a licence; `409` when a range or domain is another licence's at the same time.
#[tracing::instrument(skip_all, fields(created_by = %caller.0.id))]
pub async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    acting: Acting,
    body: ApiJson<CreateLicence>,
) -> Result<HttpResponse, ApiError> {
    let ApiJson(body) = body;
    let spec = LicenceSpec {
        name: body.name,
        entitlements: body.entitlements,
        ip_ranges: body.ip_ranges,
        email_domains: body.email_domains,
        seats: body.seats,
        starts_at: body.starts_at.unwrap_or_else(|| state.clock.now()),
        expires_at: body.expires_at,
    };
    let licence = state
        .licences()
        .create(spec, caller.0.id.as_str(), &acting.0)
        .await?;
    Ok(HttpResponse::Created().json(LicenceView::from(licence)))
}

/// Every licence, by id.
#[tracing::instrument(skip_all)]
pub async fn list(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let licences = state.licences().list().await?;
    Ok(HttpResponse::Ok().json(Page {
        items: licences
            .into_iter()
            .map(LicenceView::from)
            .collect::<Vec<_>>(),
        next_cursor: None::<String>,
    }))
}

/// One licence.
#[tracing::instrument(skip_all, fields(licence_id = %id))]
pub async fn get(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let licence = state.licences().get(&id).await?;
    Ok(HttpResponse::Ok().json(LicenceView::from(licence)))
}

/// `PATCH /v1/licences/{id}` body: the fields to change.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchLicence {
    #[serde(default, deserialize_with = "json::present")]
    name: Option<String>,
    #[serde(default, deserialize_with = "json::present")]
    entitlements: Option<Vec<Entitlement>>,
    #[serde(default, deserialize_with = "json::present")]
    ip_ranges: Option<Vec<IpRange>>,
    #[serde(default, deserialize_with = "json::present")]
    email_domains: Option<Vec<EmailDomain>>,
    #[serde(default, deserialize_with = "json::nullable")]
    seats: Option<Option<u32>>,
    #[serde(default, deserialize_with = "json::present")]
    starts_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "json::present")]
    expires_at: Option<DateTime<Utc>>,
}

/// Changes a licence, under the rules a new one follows.
#[tracing::instrument(skip_all, fields(licence_id = %id))]
pub async fn update(
    state: web::Data<AppState>,
    acting: Acting,
    id: web::Path<String>,
    body: ApiJson<PatchLicence>,
) -> Result<HttpResponse, ApiError> {
    let ApiJson(body) = body;
    let patch = LicencePatch {
        name: body.name,
        entitlements: body.entitlements,
        ip_ranges: body.ip_ranges,
        email_domains: body.email_domains,
        seats: body.seats,
        starts_at: body.starts_at,
        expires_at: body.expires_at,
    };
    let licence = state.licences().update(&id, patch, &acting.0).await?;
    Ok(HttpResponse::Ok().json(LicenceView::from(licence)))
}

/// Deletes a licence: its readers lose what it gave at once; its usage stays in the reports.
#[tracing::instrument(skip_all, fields(licence_id = %id))]
pub async fn delete(
    state: web::Data<AppState>,
    acting: Acting,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.licences().delete(&id, &acting.0).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A member as listed.
#[derive(Debug, Serialize)]
struct MemberView {
    reader_id: ReaderId,
    email_domain: EmailDomain,
    joined_at: String,
}

impl From<LicenceMember> for MemberView {
    fn from(member: LicenceMember) -> Self {
        Self {
            reader_id: member.reader_id,
            email_domain: member.domain,
            joined_at: rfc3339(member.joined_at),
        }
    }
}

/// The readers holding a seat, by when they joined.
#[tracing::instrument(skip_all, fields(licence_id = %id))]
pub async fn members(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let members = state.licences().members(&id).await?;
    Ok(HttpResponse::Ok().json(Page {
        items: members
            .into_iter()
            .map(MemberView::from)
            .collect::<Vec<_>>(),
        next_cursor: None::<String>,
    }))
}

/// Frees a reader's seat.
#[tracing::instrument(skip_all)]
pub async fn remove_member(
    state: web::Data<AppState>,
    acting: Acting,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, reader) = path.into_inner();
    let reader = reader_id(&reader)?;
    state
        .licences()
        .remove_member(&id, &reader, &acting.0)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /v1/readers/{reader_id}/licence-claims` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimSeat {
    email: String,
}

/// Enrols a reader in the licence of their (site-verified) e-mail domain: 201 when enrolled
/// now, 200 when they held a seat already.
#[tracing::instrument(skip_all)]
pub async fn claim(
    state: web::Data<AppState>,
    reader: web::Path<String>,
    body: ApiJson<ClaimSeat>,
) -> Result<HttpResponse, ApiError> {
    let reader = reader_id(&reader)?;
    let ApiJson(body) = body;
    if body.email.len() > 254 || body.email.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "invalid_email",
            "email must be an address of at most 254 characters",
        ));
    }
    let enrolment = state.licences().claim(&reader, &body.email).await?;
    let view = LicenceView::from(enrolment.licence);
    Ok(if enrolment.new {
        HttpResponse::Created().json(view)
    } else {
        HttpResponse::Ok().json(view)
    })
}
