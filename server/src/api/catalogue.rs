//! `/api/v1/flavors` and `/api/v1/images` (listing for everyone; changes for admins).

use app::model::{FlavorView, ImageView, NewFlavor};
use app::port::Catalogue;
use axum::extract::State;
use axum::Json;
use http::StatusCode;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use utoipa::ToSchema;

use super::{AnyCaller, ApiCaller, ApiError, ApiJson, ApiMultipart, ApiPath};
use crate::service::images::{UploadMeta, INITRD_FILE, KERNEL_FILE, ROOT_DISK_FILE};
use crate::state::AppState;
use app::error::AppError;

#[utoipa::path(get, path = "/flavors", tag = "catalogue", responses((status = 200, body = [FlavorView])))]
pub async fn list_flavors(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
) -> Result<Json<Vec<FlavorView>>, ApiError> {
    Ok(Json(state.service.list_flavors(&caller).await?))
}

#[utoipa::path(post, path = "/flavors", tag = "catalogue", request_body = NewFlavor,
    responses((status = 201, body = FlavorView), (status = 403, description = "Admins only")))]
pub async fn create_flavor(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    ApiJson(body): ApiJson<NewFlavor>,
) -> Result<(StatusCode, Json<FlavorView>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(state.service.create_flavor(&caller, body).await?),
    ))
}

/// A change to a flavor: offered or not, and/or its hourly price (for usage from now on).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FlavorPatch {
    disabled: Option<bool>,
    /// Minor units per hour for intervals opened from now on; running VMs keep their price until their
    /// next start, and past invoices never change.
    hourly_price_minor: Option<i64>,
}

#[utoipa::path(patch, path = "/flavors/{id}", tag = "catalogue", request_body = FlavorPatch,
    params(("id" = String, Path, description = "Flavor id")),
    responses((status = 200, body = FlavorView), (status = 403, description = "Admins only"),
        (status = 422, description = "Nothing to change, or a price out of range")))]
pub async fn update_flavor(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<FlavorPatch>,
) -> Result<Json<FlavorView>, ApiError> {
    if body.disabled.is_none() && body.hourly_price_minor.is_none() {
        return Err(AppError::invalid("disabled", "Give disabled, hourly_price_minor or both.").into());
    }
    let mut view = None;
    if let Some(price) = body.hourly_price_minor {
        view = Some(state.service.set_flavor_price(&caller, id.clone(), price).await?);
    }
    if let Some(disabled) = body.disabled {
        view = Some(state.service.set_flavor_disabled(&caller, id, disabled).await?);
    }
    view.map(Json).ok_or_else(|| AppError::Internal.into())
}

#[utoipa::path(get, path = "/images", tag = "catalogue", responses((status = 200, body = [ImageView])))]
pub async fn list_images(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
) -> Result<Json<Vec<ImageView>>, ApiError> {
    Ok(Json(state.service.list_images(&caller).await?))
}

#[utoipa::path(delete, path = "/images/{id}", tag = "catalogue", params(("id" = String, Path, description = "Image id")),
    responses((status = 204), (status = 409, description = "In use by VMs")))]
pub async fn delete_image(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state.service.delete_image(&caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Multipart form: text fields `name`, `os`, `cmdline`, `owner_tenant_id` (optional) and files `kernel`
/// (required), `initrd` and `root_disk` (optional).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ImageUpload {
    name: String,
    os: String,
    cmdline: Option<String>,
    owner_tenant_id: Option<String>,
    #[schema(format = Binary, content_media_type = "application/octet-stream")]
    kernel: Vec<u8>,
    #[schema(format = Binary, content_media_type = "application/octet-stream")]
    initrd: Option<Vec<u8>>,
    #[schema(format = Binary, content_media_type = "application/octet-stream")]
    root_disk: Option<Vec<u8>>,
}

/// Longest text field of an upload.
const MAX_TEXT_FIELD: usize = 4096;

/// A text field, read chunk by chunk and refused as soon as it passes `MAX_TEXT_FIELD` (or the upload passes
/// its total limit), so a huge field is never held in memory.
async fn text_field(
    name: &str,
    field: &mut axum::extract::multipart::Field<'_>,
    total: &mut u64,
    limit: u64,
) -> Result<String, ApiError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(bad_form)? {
        *total += chunk.len() as u64;
        if *total > limit {
            return Err(ApiError(AppError::TooLarge));
        }
        if bytes.len() + chunk.len() > MAX_TEXT_FIELD {
            return Err(ApiError(AppError::invalid(
                name,
                format!("This field is longer than {MAX_TEXT_FIELD} bytes."),
            )));
        }
        bytes.extend_from_slice(&chunk);
    }
    String::from_utf8(bytes).map_err(|_| ApiError(AppError::invalid(name, "This field must be UTF-8 text.")))
}

fn bad_form(e: axum::extract::multipart::MultipartError) -> ApiError {
    if e.status() == http::StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError(AppError::TooLarge);
    }
    ApiError(AppError::invalid(
        "body",
        format!("The upload is not a valid multipart form: {}", e.body_text()),
    ))
}

#[utoipa::path(post, path = "/images", tag = "catalogue",
    request_body(content = ImageUpload, content_type = "multipart/form-data"),
    responses((status = 201, body = ImageView), (status = 413, description = "Larger than the upload limit"),
              (status = 422, description = "A file is not what it should be")))]
pub async fn upload_image(
    State(state): State<AppState>,
    AnyCaller(caller): AnyCaller,
    ApiMultipart(mut form): ApiMultipart,
) -> Result<(StatusCode, Json<ImageView>), ApiError> {
    let service = &state.service;
    let staging = service.stage_upload(&caller).await?;
    let mut meta = UploadMeta::default();
    let mut total: u64 = 0;
    let limit = service.max_upload_bytes();
    while let Some(mut field) = form.next_field().await.map_err(bad_form)? {
        let name = field.name().unwrap_or_default().to_string();
        let file = match name.as_str() {
            "kernel" => Some(KERNEL_FILE),
            "initrd" => Some(INITRD_FILE),
            "root_disk" => Some(ROOT_DISK_FILE),
            _ => None,
        };
        if let Some(file) = file {
            let path = staging.dir().join(file);
            let mut out = tokio::fs::File::create(&path)
                .await
                .map_err(|e| ApiError(crate::service::internal(e)))?;
            let mut written = 0u64;
            while let Some(chunk) = field.chunk().await.map_err(bad_form)? {
                total += chunk.len() as u64;
                written += chunk.len() as u64;
                if total > limit {
                    return Err(ApiError(AppError::TooLarge));
                }
                out.write_all(&chunk)
                    .await
                    .map_err(|e| ApiError(crate::service::internal(e)))?;
            }
            out.flush()
                .await
                .map_err(|e| ApiError(crate::service::internal(e)))?;
            drop(out);
            if written == 0 {
                // An empty file input: as if not sent.
                let _ = tokio::fs::remove_file(&path).await;
            }
            continue;
        }
        let slot = match name.as_str() {
            "name" => &mut meta.name,
            "os" => &mut meta.os,
            "cmdline" => &mut meta.cmdline,
            "owner_tenant_id" => &mut meta.owner_tenant_id,
            other => {
                return Err(ApiError(AppError::invalid(
                    other,
                    format!(
                        "Unknown field {other}: send name, os, cmdline, owner_tenant_id, kernel, initrd or root_disk."
                    ),
                )));
            }
        };
        *slot = text_field(&name, &mut field, &mut total, limit).await?;
    }
    let image = service.finish_upload(&caller, meta, staging).await?;
    Ok((StatusCode::CREATED, Json(image)))
}
