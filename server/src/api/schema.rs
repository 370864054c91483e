//! The input rules of the REST API's request schemas, written once here as JSON Schema constraints
//! (patterns, lengths, ranges) and applied to the generated document (`Constraints`), so a client or a
//! schema-driven fuzzer knows exactly what the server accepts. They restate `domain.rs` and the services'
//! range checks; the tests below hold each pattern against the parser it describes.
//!
//! Patterns are ECMA-262 and Python `re` compatible. Surrounding whitespace is allowed where the server
//! trims it; `WS` is Rust's `char::is_whitespace` (Unicode White_Space), which is what `str::trim` removes.

use utoipa::openapi::schema::Schema;
use utoipa::openapi::{OpenApi, RefOr};
use utoipa::Modify;

macro_rules! ws {
    () => {
        r"\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
    };
}
/// Anything but whitespace and control characters (`char::is_control`: C0, DEL, C1).
macro_rules! visible {
    () => {
        concat!(r"[^", ws!(), r"\x00-\x1f\x7f-\x9f]")
    };
}
/// Anything but control characters.
macro_rules! text {
    () => {
        r"[^\x00-\x1f\x7f-\x9f]"
    };
}
macro_rules! pad {
    () => {
        concat!("[", ws!(), "]*")
    };
}

/// A label of 1–64 characters after trimming, no control characters (`Label::parse(.., 1, 64)`).
pub const LABEL_1_64: &str = concat!(
    "^",
    pad!(),
    visible!(),
    "(?:",
    text!(),
    "{0,62}",
    visible!(),
    ")?",
    pad!(),
    "$"
);
/// A label of 0–200 characters after trimming (`Label::parse(.., 0, 200)`).
pub const LABEL_0_200: &str = concat!(
    "^",
    pad!(),
    "(?:",
    visible!(),
    "(?:",
    text!(),
    "{0,198}",
    visible!(),
    ")?)?",
    pad!(),
    "$"
);
/// A display name: 0–64 characters (empty: the username).
pub const LABEL_0_64: &str = concat!(
    "^",
    pad!(),
    "(?:",
    visible!(),
    "(?:",
    text!(),
    "{0,62}",
    visible!(),
    ")?)?",
    pad!(),
    "$"
);
/// `TenantName::parse`.
pub const TENANT_NAME: &str = concat!("^", pad!(), "[A-Za-z][A-Za-z0-9-]{0,38}[A-Za-z0-9]", pad!(), "$");
/// `Username::parse`.
pub const USERNAME: &str = concat!("^", pad!(), "[A-Za-z0-9][A-Za-z0-9._-]{2,31}", pad!(), "$");
/// `FlavorName::parse`.
pub const FLAVOR_NAME: &str = concat!("^", pad!(), "[A-Za-z][A-Za-z0-9.-]{1,39}", pad!(), "$");
/// `VmName::parse`.
pub const VM_NAME: &str = concat!(
    "^",
    pad!(),
    "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?",
    pad!(),
    "$"
);
/// `NewPassword::parse`: not only whitespace (with 10–256 characters as lengths).
pub const NOT_ONLY_SPACES: &str = concat!("[^", ws!(), "]");
/// `SshKey::parse`: empty, or one OpenSSH public key line.
pub const SSH_KEY: &str = concat!(
    "^",
    pad!(),
    r"(?:(?:ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp256|ecdsa-sha2-nistp384|ecdsa-sha2-nistp521|sk-ssh-ed25519@openssh\.com)",
    r" [A-Za-z0-9+/=]{16,4000}(?: [A-Za-z0-9@._ -]{0,200})?)?",
    pad!(),
    "$"
);
/// `parse_user_data`: text without NUL.
pub const USER_DATA: &str = r"^[^\x00]*$";
/// `Period::parse`: `YYYY-MM` from 2000, or empty for this month.
pub const MONTH: &str = concat!("^", pad!(), r"(?:[2-9][0-9]{3}-(?:0[1-9]|1[0-2]))?", pad!(), "$");
/// A UUID as the server writes ids (path ids of other shapes are simply not found).
pub const UUID: &str = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$";

/// One rule on one property of one request schema.
enum Rule {
    Pattern(&'static str),
    Length(usize, usize),
    Range(f64, f64),
}

/// (schema, property, rule).
const RULES: &[(&str, &str, Rule)] = &[
    ("CreateToken", "name", Rule::Pattern(LABEL_1_64)),
    ("CreateToken", "expires_in_days", Rule::Range(1.0, 3650.0)),
    ("CreateTenant", "name", Rule::Pattern(TENANT_NAME)),
    ("CreateTenant", "description", Rule::Pattern(LABEL_0_200)),
    ("NewUser", "tenant_id", Rule::Pattern(UUID)),
    ("NewUser", "username", Rule::Pattern(USERNAME)),
    ("NewUser", "display_name", Rule::Pattern(LABEL_0_64)),
    ("NewUser", "password", Rule::Length(10, 256)),
    ("NewUser", "password", Rule::Pattern(NOT_ONLY_SPACES)),
    ("ResetPassword", "password", Rule::Length(10, 256)),
    ("ResetPassword", "password", Rule::Pattern(NOT_ONLY_SPACES)),
    ("NewFlavor", "name", Rule::Pattern(FLAVOR_NAME)),
    ("NewFlavor", "vcpus", Rule::Range(1.0, 4.0)),
    ("NewFlavor", "memory_mib", Rule::Range(64.0, 8192.0)),
    ("NewFlavor", "disk_gib", Rule::Range(1.0, 2048.0)),
    ("NewFlavor", "hourly_price_minor", Rule::Range(0.0, 100_000_000.0)),
    ("QuotaSet", "instances", Rule::Range(0.0, 10_000.0)),
    ("QuotaSet", "vcpus", Rule::Range(0.0, 100_000.0)),
    ("QuotaSet", "memory_mib", Rule::Range(0.0, 1_073_741_824.0)),
    ("QuotaSet", "disk_gib", Rule::Range(0.0, 16_777_216.0)),
    ("QuotaSet", "networks", Rule::Range(0.0, 1_000.0)),
    ("QuotaSet", "floating_ips", Rule::Range(0.0, 1_000.0)),
    ("QuotaSet", "port_forwards", Rule::Range(0.0, 10_000.0)),
    ("LaunchRequest", "name", Rule::Pattern(VM_NAME)),
    ("LaunchRequest", "image_id", Rule::Pattern(UUID)),
    ("LaunchRequest", "flavor_id", Rule::Pattern(UUID)),
    ("LaunchRequest", "ssh_key", Rule::Pattern(SSH_KEY)),
    ("LaunchRequest", "user_data", Rule::Length(0, 65_536)),
    ("LaunchRequest", "user_data", Rule::Pattern(USER_DATA)),
];

/// (query parameter, rule) wherever the parameter appears.
const PARAMETER_RULES: &[(&str, Rule)] = &[("month", Rule::Pattern(MONTH))];

fn apply(prop: &mut utoipa::openapi::schema::Object, rule: &Rule) {
    match rule {
        Rule::Pattern(p) => prop.pattern = Some((*p).to_string()),
        Rule::Length(min, max) => {
            prop.min_length = Some(*min);
            prop.max_length = Some(*max);
        }
        Rule::Range(min, max) => {
            prop.minimum = Some((*min).into());
            prop.maximum = Some((*max).into());
        }
    }
}

/// Applies `RULES` and `PARAMETER_RULES` to the document.
pub struct Constraints;

impl Modify for Constraints {
    fn modify(&self, openapi: &mut OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let ops = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for op in ops.into_iter().flatten() {
                for param in op.parameters.iter_mut().flatten() {
                    let Some(RefOr::T(Schema::Object(prop))) = param.schema.as_mut() else {
                        continue;
                    };
                    for (name, rule) in PARAMETER_RULES {
                        if param.name == *name {
                            apply(prop, rule);
                        }
                    }
                }
            }
        }
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        for (schema, property, rule) in RULES {
            let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(*schema) else {
                tracing::warn!(schema, "OpenAPI constraint for a schema the document lacks");
                continue;
            };
            let Some(RefOr::T(Schema::Object(prop))) = object.properties.get_mut(*property) else {
                tracing::warn!(
                    schema,
                    property,
                    "OpenAPI constraint for a property the schema lacks"
                );
                continue;
            };
            apply(prop, rule);
        }
    }
}
