//! SSH public keys as tenants save them (key pairs) or paste them at launch: one OpenSSH public key line,
//! really parsed (the `ssh-key` crate decodes the base64 wire format and checks that the algorithm in the
//! text matches the one inside), limited to algorithms worth trusting: Ed25519, ECDSA (NIST P-256/384/521),
//! their FIDO security-key forms, and RSA of at least 2048 bits. DSA and unknown algorithms are refused.
//! Also the name a key pair is saved under.

use app::error::AppError;
use ssh_key::public::KeyData;
use ssh_key::{HashAlg, PublicKey};

/// The longest public key line accepted (an RSA 16384-bit key is about 2.8 KiB).
pub const MAX_LINE_BYTES: usize = 8 * 1024;
/// RSA keys shorter than this are refused (OpenSSH's own minimum since 8.8 for new keys is 2048 too).
pub const MIN_RSA_BITS: usize = 2048;
/// RSA keys longer than this are refused (OpenSSH's maximum).
pub const MAX_RSA_BITS: usize = 16384;

/// A validated OpenSSH public key: the normalised line, what it is and its SHA256 fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKeyLine {
    /// `<algorithm> <base64> [comment]`, re-encoded from the parsed key (one line, single spaces).
    pub line: String,
    /// The algorithm as OpenSSH names it, e.g. `ssh-ed25519`.
    pub algorithm: String,
    /// Key size in bits (RSA modulus, ECDSA curve, 256 for Ed25519).
    pub bits: u32,
    /// `SHA256:<base64>`, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
}

impl PublicKeyLine {
    /// Parses one public key line; `field` names the form field in the error.
    pub fn parse(field: &str, input: &str) -> Result<Self, AppError> {
        let s = input.trim();
        let refuse = |message: &str| Err(AppError::invalid(field, message.to_string()));
        if s.is_empty() {
            return refuse("Paste an OpenSSH public key, e.g. \"ssh-ed25519 AAAAC3Nz... you@laptop\".");
        }
        if s.len() > MAX_LINE_BYTES {
            return refuse("A public key line must be at most 8 KiB.");
        }
        if s.contains(['\n', '\r', '\0']) {
            return refuse("Paste one public key: a single line.");
        }
        if s.starts_with("-----BEGIN") || s.starts_with("---- BEGIN") {
            return refuse("That is not an OpenSSH public key line; paste the contents of your .pub file.");
        }
        let Ok(key) = PublicKey::from_openssh(s) else {
            return refuse(
                "That is not a valid OpenSSH public key; paste the contents of your .pub file, e.g. \"ssh-ed25519 AAAAC3Nz... you@laptop\".",
            );
        };
        let bits = match key.key_data() {
            KeyData::Ed25519(_) | KeyData::SkEd25519(_) => 256,
            KeyData::Ecdsa(ec) => match ec {
                ssh_key::public::EcdsaPublicKey::NistP256(_) => 256,
                ssh_key::public::EcdsaPublicKey::NistP384(_) => 384,
                ssh_key::public::EcdsaPublicKey::NistP521(_) => 521,
            },
            KeyData::SkEcdsaSha2NistP256(_) => 256,
            KeyData::Rsa(rsa) => {
                let modulus = rsa.n.as_positive_bytes().unwrap_or_default();
                let bits = modulus_bits(modulus);
                if bits < MIN_RSA_BITS {
                    return refuse(&format!(
                        "This RSA key has {bits} bits; use at least {MIN_RSA_BITS} (or an Ed25519 key)."
                    ));
                }
                if bits > MAX_RSA_BITS {
                    return refuse(&format!("RSA keys may have at most {MAX_RSA_BITS} bits."));
                }
                u32::try_from(bits).unwrap_or(u32::MAX)
            }
            KeyData::Dsa(_) => {
                return refuse("DSA keys are not accepted (OpenSSH disabled them); use an Ed25519 key.")
            }
            _ => {
                return refuse(
                    "This key type is not accepted; use Ed25519, ECDSA or RSA (2048 bits or more).",
                )
            }
        };
        let line = key
            .to_openssh()
            .map_err(|_| AppError::invalid(field, "That public key cannot be re-encoded."))?;
        Ok(Self {
            line,
            algorithm: key.algorithm().as_str().to_string(),
            bits,
            fingerprint: key.fingerprint(HashAlg::Sha256).to_string(),
        })
    }
}

/// The bit length of a big-endian unsigned integer.
fn modulus_bits(bytes: &[u8]) -> usize {
    let bytes = match bytes.iter().position(|b| *b != 0) {
        Some(first) => &bytes[first..],
        None => return 0,
    };
    bytes.len() * 8 - bytes[0].leading_zeros() as usize
}

/// The name a key pair is saved under: 1–64 characters of letters, digits, `.`, `_`, `-` and `@`,
/// starting with a letter or digit. Names are unique within a tenant.
pub fn parse_key_pair_name(input: &str) -> Result<String, AppError> {
    let s = input.trim();
    let ok = (1..=64).contains(&s.len())
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c));
    if ok {
        Ok(s.to_string())
    } else {
        Err(AppError::invalid(
            "name",
            "A key pair name is 1 to 64 letters, digits, '.', '_', '-' or '@', starting with a letter or digit.",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const ED25519: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKN5C7LDhkyyST5qiBbSjsKYV0/8adrS5YukC4c+YExk alice@laptop";
    const ECDSA: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBH1YcQShMCISzgXau4QlnEfvnQ+isbVFqwPlym9zB6cqn+AW7MJ2k72UwF5r5MFMQbForIz0nBjyrc7qGAN0q3g= ec";
    const RSA_2048: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDD7mChdU9ypKuN4fp8e5Cm4eZ7mrJxAEvmY7RbX4qhE7yS2J1VGGqBd40pDL15TIfVd2b5KOj0GggmHGHrBkWGSxsKznr8kN6JDLa5bLHd1G0pxcB2DkGjG2P2BXwu+UDq4AjuV1Q21OloZoOkNx88MkOi+D62sN2qlIgcHLkkF3ZNlWvXnXiFMibquNuiSjc2GrUo8vaDsV455LYom58uP6muAWu3qIm5d/noyvUaOXi+1FsO67IY1rl1nGoqEIodvUGmmM9/zKfqzABgNZS7sAb3kQABb9e7darvboJsXiAzj14xj84AorHdZgU37WQoW5rbcf76ynDsTlkbWN0j rsa2048";
    const RSA_1024: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQCvSbFNNdk3Wq/uT3x/WU+Z6sSuIHyhF7BYFR6b69Y3EGVBa+OI6GwvkfSvXH6fi8yLz7KXd3QvTscftNvzj7EKrc0bcMux3r21JQgRqNuHHQoe+iy85Wlg39aOe3pLraq++Xwdb5enVpNzOFKx+HEbIxroZe/UjccsILNIyAF93w== rsa1024";

    #[test]
    fn real_keys_parse_with_the_fingerprint_ssh_keygen_prints() {
        let k = PublicKeyLine::parse("public_key", &format!("  {ED25519}\n")).unwrap();
        assert_eq!(k.line, ED25519);
        assert_eq!(k.algorithm, "ssh-ed25519");
        assert_eq!(k.bits, 256);
        // `ssh-keygen -lf` on the same key.
        assert_eq!(
            k.fingerprint,
            "SHA256:sf8CpO5+SaW8pFhkpky/2QVsWx57O67vgC2SBphIAtc"
        );
        assert_eq!(PublicKeyLine::parse("k", ECDSA).unwrap().bits, 256);
        assert_eq!(PublicKeyLine::parse("k", RSA_2048).unwrap().bits, 2048);
    }

    #[test]
    fn short_rsa_truncated_mismatched_and_multi_line_keys_are_refused() {
        let truncated = &ED25519[..60];
        let mismatched = ED25519.replace("ssh-ed25519", "ssh-rsa");
        let two = format!("{ED25519}\n{ECDSA}");
        for bad in ["", "hello", "ssh-ed25519", RSA_1024, truncated, &mismatched, &two] {
            let err = PublicKeyLine::parse("public_key", bad).unwrap_err();
            assert_eq!(err.field(), Some("public_key"), "{bad:?}: {err:?}");
        }
        let long = format!("{ED25519} {}", "x".repeat(MAX_LINE_BYTES));
        assert!(PublicKeyLine::parse("k", &long).is_err());
        let msg = PublicKeyLine::parse("k", RSA_1024).unwrap_err().to_string();
        assert!(msg.contains("1024 bits"), "{msg}");
    }

    #[test]
    fn key_pair_names_are_short_and_plain() {
        assert_eq!(parse_key_pair_name(" laptop ").unwrap(), "laptop");
        assert!(parse_key_pair_name("alice@work.example-1_x").is_ok());
        for bad in ["", "-a", "a b", "a/b", "ä", &"a".repeat(65)] {
            assert!(parse_key_pair_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn modulus_bits_counts_from_the_highest_set_bit() {
        assert_eq!(modulus_bits(&[0, 0x80, 0]), 16);
        assert_eq!(modulus_bits(&[0x01, 0xff]), 9);
        assert_eq!(modulus_bits(&[]), 0);
    }
}
