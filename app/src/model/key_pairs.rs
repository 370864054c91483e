//! Key pairs: named SSH public keys a tenant saves once and picks at launch.

use serde::{Deserialize, Serialize};

/// A saved SSH public key, as its tenant sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct KeyPairView {
    pub id: String,
    pub name: String,
    /// As OpenSSH names it, e.g. `ssh-ed25519`.
    pub algorithm: String,
    pub bits: u32,
    /// `SHA256:<base64>`, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
    /// The OpenSSH public key line.
    pub public_key: String,
    pub created_at: String,
}

/// A key pair to save: a name and one OpenSSH public key line (Ed25519, ECDSA, or RSA of 2048 bits or more).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewKeyPair {
    pub name: String,
    pub public_key: String,
}
