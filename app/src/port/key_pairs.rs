//! The port for a tenant's saved SSH key pairs.

use async_trait::async_trait;

use super::Caller;
use crate::error::AppError;
use crate::model::{KeyPairView, NewKeyPair};

/// The caller's tenant's key pairs: every call is scoped to it (another tenant's key pair is "not found").
#[async_trait]
pub trait KeyPairs: Send + Sync {
    async fn list_key_pairs(&self, caller: &Caller) -> Result<Vec<KeyPairView>, AppError>;
    /// Validates the key (a real OpenSSH parse) and saves it; a taken name or a full tenant is refused.
    async fn create_key_pair(&self, caller: &Caller, req: NewKeyPair) -> Result<KeyPairView, AppError>;
    /// VMs launched with it keep their copy.
    async fn delete_key_pair(&self, caller: &Caller, id: String) -> Result<(), AppError>;
}
