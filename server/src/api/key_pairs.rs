//! `/api/v1/keypairs`: the caller's tenant's saved SSH public keys (pick them at launch with
//! `key_pair_ids`).

use app::model::{KeyPairView, NewKeyPair};
use app::port::KeyPairs;
use axum::extract::State;
use axum::Json;
use http::StatusCode;

use super::{ApiCaller, ApiError, ApiJson, ApiPath};
use crate::state::AppState;

#[utoipa::path(get, path = "/keypairs", tag = "keypairs",
    responses((status = 200, description = "The caller's tenant's key pairs, by name", body = [KeyPairView])))]
pub async fn list_key_pairs(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
) -> Result<Json<Vec<KeyPairView>>, ApiError> {
    Ok(Json(state.service.list_key_pairs(&caller).await?))
}

#[utoipa::path(post, path = "/keypairs", tag = "keypairs", request_body = NewKeyPair,
    responses((status = 201, description = "Saved, with its SHA256 fingerprint", body = KeyPairView),
              (status = 422, description = "Not an OpenSSH public key (or RSA under 2048 bits, DSA), or the name is taken"),
              (status = 403, description = "The tenant holds 100 key pairs already")))]
pub async fn create_key_pair(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    ApiJson(body): ApiJson<NewKeyPair>,
) -> Result<(StatusCode, Json<KeyPairView>), ApiError> {
    let key = state.service.create_key_pair(&caller, body).await?;
    Ok((StatusCode::CREATED, Json(key)))
}

#[utoipa::path(delete, path = "/keypairs/{id}", tag = "keypairs", params(("id" = String, Path, description = "Key pair id")),
    responses((status = 204, description = "Deleted; VMs launched with it keep their copy"),
              (status = 404, description = "No such key pair in the caller's tenant")))]
pub async fn delete_key_pair(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state.service.delete_key_pair(&caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
