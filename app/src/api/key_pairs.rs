//! Key pairs: list, save, delete (the caller's tenant's only).

use leptos::prelude::*;

use crate::error::AppError;
use crate::model::KeyPairView;

/// Ids from a comma-separated form field, blanks dropped.
pub fn split_ids(ids: &str) -> Vec<String> {
    ids.split(',')
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(str::to_string)
        .collect()
}

#[server(prefix = "/api/fn", endpoint = "list_key_pairs")]
pub async fn list_key_pairs() -> Result<Vec<KeyPairView>, AppError> {
    crate::port::with_caller(|portal, caller, _| async move { portal.list_key_pairs(&caller).await }).await
}

#[server(prefix = "/api/fn", endpoint = "create_key_pair")]
pub async fn create_key_pair(name: String, public_key: String) -> Result<KeyPairView, AppError> {
    crate::port::with_caller(|portal, caller, _| async move {
        portal
            .create_key_pair(&caller, crate::model::NewKeyPair { name, public_key })
            .await
    })
    .await
}

#[server(prefix = "/api/fn", endpoint = "delete_key_pair")]
pub async fn delete_key_pair(id: String) -> Result<(), AppError> {
    crate::port::with_caller(|portal, caller, _| async move { portal.delete_key_pair(&caller, id).await })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_split_on_commas_without_blanks() {
        assert_eq!(split_ids(" a, ,b,"), ["a", "b"]);
        assert!(split_ids("").is_empty());
    }
}
