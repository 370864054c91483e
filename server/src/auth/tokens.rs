//! Personal API token secrets: `cpt_` + 43 characters of base64url (256 random bits). Only the SHA-256 of
//! a secret is stored; the secret is shown once at creation.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

const PREFIX: &str = "cpt_";
/// Characters of the secret kept in clear so users can tell tokens apart.
const SHOWN: usize = 12;

pub struct Minted {
    pub secret: String,
    pub prefix: String,
    pub hash: String,
}

pub fn mint() -> Minted {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let secret = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    let prefix = secret.chars().take(SHOWN).collect();
    let hash = hash(&secret);
    Minted { secret, prefix, hash }
}

pub fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Cheap shape check before touching the database.
pub fn looks_valid(secret: &str) -> bool {
    secret.len() == PREFIX.len() + 43
        && secret.starts_with(PREFIX)
        && secret[PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_are_unique_well_formed_and_stored_only_as_hashes() {
        let a = mint();
        let b = mint();
        assert_ne!(a.secret, b.secret);
        assert!(looks_valid(&a.secret));
        assert!(a.secret.starts_with(&a.prefix));
        assert_eq!(a.hash, hash(&a.secret));
        assert!(!a.hash.contains(&a.secret[4..]));
        assert!(!looks_valid("cpt_short"));
        assert!(!looks_valid(&format!("xyz_{}", &a.secret[4..])));
    }
}
