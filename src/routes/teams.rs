//! `/v1/readers/{reader_id}/seats`: the owner of a subscription sold by the seat gives its seats
//! to members, takes them back and hands the team on (service keys, for the site's team page).

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

use crate::domain::time::rfc3339;
use crate::domain::{ReaderId, SeatRole};
use crate::http::error::ApiError;
use crate::http::json::ApiJson;
use crate::http::paths::reader_id;
use crate::http::state::AppState;
use crate::services::teams::{SeatView, Team};

/// A seat as the API shows it.
#[derive(Debug, Serialize)]
struct SeatJson {
    reader_id: ReaderId,
    role: SeatRole,
    added_at: Option<String>,
    over: bool,
}

impl From<SeatView> for SeatJson {
    fn from(seat: SeatView) -> Self {
        Self {
            reader_id: seat.reader_id,
            role: seat.role,
            added_at: seat.added_at.map(rfc3339),
            over: seat.over,
        }
    }
}

/// A team as the API shows it.
#[derive(Debug, Serialize)]
struct TeamJson {
    subscription_id: String,
    in_good_standing: bool,
    seats: i64,
    used: usize,
    members: Vec<SeatJson>,
}

impl From<Team> for TeamJson {
    fn from(team: Team) -> Self {
        Self {
            subscription_id: team.subscription_id,
            in_good_standing: team.in_good_standing,
            seats: team.seats,
            used: team.members.len(),
            members: team.members.into_iter().map(SeatJson::from).collect(),
        }
    }
}

/// `POST /v1/readers/{reader_id}/seats` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddSeat {
    reader_id: ReaderId,
}

/// `POST /v1/readers/{reader_id}/seats/transfer` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transfer {
    new_owner: ReaderId,
}

/// The owner's team: its seats and who holds them.
#[tracing::instrument(skip_all)]
pub async fn list(
    state: web::Data<AppState>,
    owner: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let owner = reader_id(&owner)?;
    let team = state.teams().team(&owner).await?;
    Ok(HttpResponse::Ok().json(TeamJson::from(team)))
}

/// Seats a member: 201 when seated now, 200 when they held a seat already.
#[tracing::instrument(skip_all)]
pub async fn add(
    state: web::Data<AppState>,
    owner: web::Path<String>,
    body: ApiJson<AddSeat>,
) -> Result<HttpResponse, ApiError> {
    let owner = reader_id(&owner)?;
    let ApiJson(body) = body;
    let added = state.teams().add(&owner, &body.reader_id).await?;
    let view = TeamJson::from(added.team);
    Ok(if added.new {
        HttpResponse::Created().json(view)
    } else {
        HttpResponse::Ok().json(view)
    })
}

/// Takes a member's seat back.
#[tracing::instrument(skip_all)]
pub async fn remove(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (owner, member) = path.into_inner();
    let (owner, member) = (reader_id(&owner)?, reader_id(&member)?);
    state.teams().remove(&owner, &member).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Hands the team to another reader.
#[tracing::instrument(skip_all)]
pub async fn transfer(
    state: web::Data<AppState>,
    owner: web::Path<String>,
    body: ApiJson<Transfer>,
) -> Result<HttpResponse, ApiError> {
    let owner = reader_id(&owner)?;
    let ApiJson(body) = body;
    let team = state.teams().transfer(&owner, &body.new_owner).await?;
    Ok(HttpResponse::Ok().json(TeamJson::from(team)))
}
