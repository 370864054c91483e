//! Secret tokens, the one implementation behind personal API tokens (`cpt_…`) and console tokens
//! (`cct_…`): a kind prefix + 43 characters of base64url (256 random bits). Only the SHA-256 of a secret is
//! stored; the secret itself is shown once, to whoever asked for it.
//!
//! No secret is ever compared in this process: a presented secret is hashed and the hash looked up
//! (`WHERE token_hash = ?`). Timing of that lookup can at most reveal a prefix of a SHA-256 output, which
//! says nothing about a 256-bit secret, so no constant-time comparison is needed anywhere.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Base64url characters of 32 random bytes, unpadded.
const ENCODED_LEN: usize = 43;
/// Characters of a secret kept in clear (with its prefix) so users can tell their tokens apart.
const SHOWN: usize = 12;

/// What a secret is for, told by its prefix: a console token can never pass as an API token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenKind {
    prefix: &'static str,
}

/// Personal API tokens (`Authorization: Bearer cpt_…`).
pub const API_TOKEN: TokenKind = TokenKind { prefix: "cpt_" };
/// Single-use console tokens (`/console/{vm}/ws?token=cct_…`).
pub const CONSOLE_TOKEN: TokenKind = TokenKind { prefix: "cct_" };

/// A fresh secret and what is stored of it.
pub struct Minted {
    pub secret: String,
    pub hash: String,
}

impl Minted {
    /// The start of the secret that may be stored and shown in clear (`cpt_AbCdEfGh`).
    pub fn shown(&self) -> String {
        self.secret.chars().take(SHOWN).collect()
    }
}

impl TokenKind {
    pub fn prefix(self) -> &'static str {
        self.prefix
    }

    /// A new random secret of this kind and its hash.
    pub fn mint(self) -> Minted {
        let mut bytes = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut bytes);
        let secret = format!("{}{}", self.prefix, URL_SAFE_NO_PAD.encode(bytes));
        let hash = hash(&secret);
        Minted { secret, hash }
    }

    /// Cheap shape check before touching the database.
    pub fn looks_valid(self, secret: &str) -> bool {
        secret.len() == self.prefix.len() + ENCODED_LEN
            && secret.starts_with(self.prefix)
            && secret[self.prefix.len()..]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    }
}

/// What is stored of a secret, and looked up when one is presented.
pub fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_api_tokens_are_unique_well_formed_and_stored_only_as_hashes() {
        let a = API_TOKEN.mint();
        let b = API_TOKEN.mint();
        assert_ne!(a.secret, b.secret);
        assert!(API_TOKEN.looks_valid(&a.secret));
        assert!(a.secret.starts_with(&a.shown()));
        assert_eq!(a.hash, hash(&a.secret));
        assert!(!a.hash.contains(&a.secret[4..]));
        assert!(!API_TOKEN.looks_valid("cpt_short"));
        assert!(!API_TOKEN.looks_valid(&format!("xyz_{}", &a.secret[4..])));
    }

    #[test]
    fn minted_console_tokens_are_unique_well_formed_and_stored_only_as_hashes() {
        let Minted { secret: a, hash: ha } = CONSOLE_TOKEN.mint();
        let Minted { secret: b, hash: hb } = CONSOLE_TOKEN.mint();
        assert_ne!(a, b);
        assert!(CONSOLE_TOKEN.looks_valid(&a) && CONSOLE_TOKEN.looks_valid(&b));
        assert_eq!(ha, hash(&a));
        assert!(!ha.contains(&a[CONSOLE_TOKEN.prefix().len()..]));
        assert_ne!(ha, hb);
    }

    #[test]
    fn malformed_console_tokens_are_rejected_before_the_database() {
        for bad in [
            "",
            "cct_",
            "cct_short",
            "cpt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            &"x".repeat(5000),
        ] {
            assert!(!CONSOLE_TOKEN.looks_valid(bad), "{bad}");
        }
        let good = CONSOLE_TOKEN.mint().secret;
        let tampered = format!("{}%", &good[..good.len() - 1]);
        assert!(!CONSOLE_TOKEN.looks_valid(&tampered));
    }
}
