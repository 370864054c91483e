//! Domain newtypes that parse user input at the edge ("parse, don't validate"): a value of one of these
//! types is known good, and a bad input gets a message that says what to fix.

use app::error::AppError;

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// A login name: 3–32 characters of `a-z 0-9 . _ -`, starting with a letter or digit. Stored lowercase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(input: &str) -> Result<Self, AppError> {
        let s = input.trim().to_lowercase();
        let ok_chars = s
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || ".-_".contains(c));
        let ok_start = s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
        if !(3..=32).contains(&s.len()) || !ok_chars || !ok_start {
            return Err(AppError::invalid(
                "username",
                "Usernames are 3 to 32 characters: letters, digits, '.', '_' or '-', starting with a letter or digit.",
            ));
        }
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A tenant (project) name: 2–40 characters of `a-z 0-9 -`, starting with a letter. Stored lowercase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantName(String);

impl TenantName {
    pub fn parse(input: &str) -> Result<Self, AppError> {
        let s = input.trim().to_lowercase();
        let ok_chars = s
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        let ok_start = s.chars().next().is_some_and(|c| c.is_ascii_lowercase());
        if !(2..=40).contains(&s.len()) || !ok_chars || !ok_start || s.ends_with('-') {
            return Err(AppError::invalid(
                "name",
                "Tenant names are 2 to 40 characters: lowercase letters, digits and '-', starting with a letter.",
            ));
        }
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Free text shown to people (display names, descriptions, token names): trimmed, bounded, no control
/// characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label(String);

impl Label {
    pub fn parse(field: &str, what: &str, input: &str, min: usize, max: usize) -> Result<Self, AppError> {
        let s = input.trim();
        let len = s.chars().count();
        if has_control(s) {
            return Err(AppError::invalid(
                field,
                format!("{what} must not contain control characters."),
            ));
        }
        if len < min {
            return Err(AppError::invalid(field, format!("{what} is required.")));
        }
        if len > max {
            return Err(AppError::invalid(
                field,
                format!("{what} must be at most {max} characters."),
            ));
        }
        Ok(Self(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// A new password: 10–256 characters, not only spaces. Never logged.
pub struct NewPassword(String);

impl NewPassword {
    pub const MIN: usize = 10;
    pub const MAX: usize = 256;

    pub fn parse(field: &str, input: String) -> Result<Self, AppError> {
        let len = input.chars().count();
        if len < Self::MIN || input.trim().is_empty() {
            return Err(AppError::invalid(
                field,
                format!("Passwords must be at least {} characters.", Self::MIN),
            ));
        }
        if len > Self::MAX {
            return Err(AppError::invalid(
                field,
                format!("Passwords must be at most {} characters.", Self::MAX),
            ));
        }
        Ok(Self(input))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewPassword(..)")
    }
}

/// A VM name, usable as its hostname: 1–63 characters of `a-z 0-9 -` (a DNS label), not starting or ending
/// with '-'. Stored lowercase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmName(String);

impl VmName {
    pub fn parse(input: &str) -> Result<Self, AppError> {
        let s = input.trim().to_lowercase();
        let ok_chars = s
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !(1..=63).contains(&s.len()) || !ok_chars || s.starts_with('-') || s.ends_with('-') {
            return Err(AppError::invalid(
                "name",
                "VM names are 1 to 63 characters: lowercase letters, digits and '-', not starting or ending with '-'.",
            ));
        }
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A flavor name such as `m1.small`: 2–40 characters of `a-z 0-9 . -`, starting with a letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlavorName(String);

impl FlavorName {
    pub fn parse(input: &str) -> Result<Self, AppError> {
        let s = input.trim().to_lowercase();
        let ok_chars = s
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || ".-".contains(c));
        let ok_start = s.chars().next().is_some_and(|c| c.is_ascii_lowercase());
        if !(2..=40).contains(&s.len()) || !ok_chars || !ok_start {
            return Err(AppError::invalid(
                "name",
                "Flavor names are 2 to 40 characters: lowercase letters, digits, '.' and '-', starting with a letter.",
            ));
        }
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An OpenSSH public key line (`<type> <base64> [comment]`), or empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshKey(String);

impl SshKey {
    /// Empty, or one public key line really parsed by `ssh_public_key::PublicKeyLine` (normalised).
    pub fn parse(input: &str) -> Result<Self, AppError> {
        if input.trim().is_empty() {
            return Ok(Self(String::new()));
        }
        crate::ssh_public_key::PublicKeyLine::parse("ssh_key", input).map(|k| Self(k.line))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// User data for the guest: up to 64 KiB of text.
pub fn parse_user_data(input: &str) -> Result<&str, AppError> {
    if input.len() > 64 * 1024 {
        return Err(AppError::invalid(
            "user_data",
            "User data must be at most 64 KiB.",
        ));
    }
    if input.contains('\0') {
        return Err(AppError::invalid("user_data", "User data must be text."));
    }
    Ok(input)
}

/// An id taken from a URL or form. A malformed id is answered like an unknown one: `what` not found.
pub fn parse_id(what: &str, input: &str) -> Result<String, AppError> {
    uuid::Uuid::parse_str(input.trim())
        .map(|u| u.to_string())
        .map_err(|_| AppError::not_found(what))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_normalised_and_bounded() {
        assert_eq!(Username::parse("  Alice.B ").unwrap().as_str(), "alice.b");
        for bad in ["", "ab", "-abc", "a b c", "ü-user", &"x".repeat(33), "a\u{0}bc"] {
            assert!(Username::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn tenant_names_follow_dns_label_rules() {
        assert_eq!(TenantName::parse("Acme-Dev").unwrap().as_str(), "acme-dev");
        for bad in ["a", "1abc", "acme_dev", "acme-", &"a".repeat(41)] {
            assert!(TenantName::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn labels_reject_control_characters_and_overflow() {
        assert!(Label::parse("name", "Name", "ok", 1, 10).is_ok());
        assert!(Label::parse("name", "Name", "  ", 1, 10).is_err());
        assert!(Label::parse("name", "Name", "bell\u{7}", 1, 10).is_err());
        let err = Label::parse("name", "Name", &"x".repeat(11), 1, 10).unwrap_err();
        assert_eq!(err.field(), Some("name"));
    }

    #[test]
    fn passwords_have_a_minimum_and_maximum_length() {
        assert!(NewPassword::parse("password", "short".into()).is_err());
        assert!(NewPassword::parse("password", " ".repeat(12)).is_err());
        assert!(NewPassword::parse("password", "long enough pw".into()).is_ok());
        assert!(NewPassword::parse("password", "x".repeat(257)).is_err());
    }

    #[test]
    fn vm_names_are_dns_labels() {
        assert_eq!(VmName::parse(" Web-1 ").unwrap().as_str(), "web-1");
        for bad in ["", "-a", "a-", "a_b", "a.b", &"a".repeat(64)] {
            assert!(VmName::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn ssh_keys_must_look_like_openssh_public_keys() {
        assert!(SshKey::parse("").unwrap().as_str().is_empty());
        assert!(SshKey::parse(
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKN5C7LDhkyyST5qiBbSjsKYV0/8adrS5YukC4c+YExk me@host"
        )
        .is_ok());
        for bad in [
            "hello",
            "ssh-ed25519",
            "ssh-dss AAAAB3NzaC1kc3MAAACBAP",
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG\nrm -rf /",
        ] {
            assert!(SshKey::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn malformed_ids_read_as_not_found() {
        assert_eq!(parse_id("Token", "1 OR 1=1"), Err(AppError::not_found("Token")));
        assert!(parse_id("Token", "67e55044-10b1-426f-9247-bb680e5fe0c8").is_ok());
    }
}
