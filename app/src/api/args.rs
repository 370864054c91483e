//! Form values of server functions arrive as text; these turn them into numbers and flags with a message
//! naming the field, instead of an undecodable request. Ranges are the service's to check.

use crate::error::AppError;

/// A whole number, e.g. `"42"` or `" -1 "`. Anything else (`"abc"`, `"1e99"`, `"1.5"`) names the field.
pub fn whole_number(field: &str, input: &str) -> Result<i64, AppError> {
    input.trim().parse::<i64>().map_err(|_| {
        AppError::invalid(
            field,
            format!("{} must be a whole number.", crate::wire::label(field)),
        )
    })
}

/// A whole number for a field that cannot be negative or huge: out-of-range values become the nearest
/// bound, which the service's own range check then refuses with its message.
pub fn count(field: &str, input: &str) -> Result<u32, AppError> {
    let n = whole_number(field, input)?;
    Ok(u32::try_from(n.max(0)).unwrap_or(u32::MAX))
}

/// `true` or `false` (as a checkbox or toggle sends it).
pub fn flag(field: &str, input: &str) -> Result<bool, AppError> {
    match input.trim() {
        "true" | "on" => Ok(true),
        "false" | "off" => Ok(false),
        _ => Err(AppError::invalid(
            field,
            format!("{} must be true or false.", crate::wire::label(field)),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_flags_name_their_field_when_malformed() {
        assert_eq!(whole_number("vcpus", " 4 "), Ok(4));
        for bad in ["abc", "1e99", "1.5", "", "99999999999999999999"] {
            let err = whole_number("instances", bad).unwrap_err();
            assert_eq!(err.field(), Some("instances"), "{bad}");
            assert_eq!(err.to_string(), "Instances must be a whole number.");
        }
        assert_eq!(count("vcpus", "-1"), Ok(0));
        assert_eq!(count("vcpus", "9999999999"), Ok(u32::MAX));
        assert_eq!(flag("disabled", "true"), Ok(true));
        assert_eq!(flag("disabled", "maybe").unwrap_err().field(), Some("disabled"));
    }
}
