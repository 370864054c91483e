//! Argon2id password hashing, always off the async threads, with a dummy hash for unknown users so that a
//! wrong username costs the same time as a wrong password.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::distributions::{Alphanumeric, DistString};

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("Failed to hash a password: {0}")]
    Hash(String),
    #[error("Password task failed")]
    Join(#[source] tokio::task::JoinError),
}

/// Hashes with Argon2id (argon2 crate defaults: m = 19 MiB, t = 2, p = 1) on the blocking pool.
pub async fn hash(password: String) -> Result<String, PasswordError> {
    tokio::task::spawn_blocking(move || hash_blocking(&password))
        .await
        .map_err(PasswordError::Join)?
}

fn hash_blocking(password: &str) -> Result<String, PasswordError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Verifies `password` against a PHC hash string on the blocking pool. A malformed stored hash verifies false.
pub async fn verify(password: String, stored: String) -> Result<bool, PasswordError> {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&stored)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .map_err(PasswordError::Join)
}

/// A real Argon2id hash of a random password, verified against when the user does not exist.
pub async fn dummy_hash() -> Result<String, PasswordError> {
    hash(generate(24)).await
}

/// A random alphanumeric password (for the first admin and resets from the command line).
pub fn generate(len: usize) -> String {
    Alphanumeric.sample_string(&mut rand::thread_rng(), len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_and_verify_only_the_right_password() {
        let stored = hash("correct horse battery".into()).await.unwrap();
        assert!(stored.starts_with("$argon2id$"));
        assert!(verify("correct horse battery".into(), stored.clone())
            .await
            .unwrap());
        assert!(!verify("wrong horse battery".into(), stored).await.unwrap());
    }

    #[tokio::test]
    async fn a_corrupt_stored_hash_never_verifies() {
        assert!(!verify("anything".into(), "not-a-hash".into()).await.unwrap());
    }
}
