//! Updating an applied ruleset in place. Launching or deleting a VM changes only set and map elements
//! (its TAP, MAC and address in the anti-spoofing sets, its entry in the security-group map, its address
//! in its groups' member sets); replacing the whole ruleset for that costs time in proportion to every
//! VM on the host (~150 ms at 1,000 VMs), while `delete element`/`add element` for the difference costs
//! the same at any size. The update is one `nft -f` batch, atomic like the full replace.
//!
//! [`Rendered::changes_from`] returns the update only when the two rulesets are equal apart from
//! elements (same tables, chains, rules and set declarations); anything else — a new network or group, a
//! changed rule — is a full replace. The caller falls back to the full replace if the kernel refuses the
//! update (e.g. someone changed the table behind our back) and replaces it in full periodically anyway.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::TABLE;

/// The elements of each set and map, by (family, name), as rendered (key, optional comment, and for a
/// map ` : value`).
pub(super) type Elements = BTreeMap<(String, String), BTreeSet<String>>;

/// A rendered ruleset: its `nft -f` text and what an in-place update is computed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub(super) text: String,
    /// The text without set and map elements.
    pub(super) skeleton: String,
    pub(super) elements: Elements,
}

impl Rendered {
    /// The batch that replaces the whole ruleset.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The batch that turns the applied ruleset `before` into this one by deleting and adding elements
    /// only (`Some("")` when they are equal), or `None` when more than elements differ.
    pub fn changes_from(&self, before: &Rendered) -> Option<String> {
        if self.skeleton != before.skeleton {
            return None;
        }
        let none = BTreeSet::new();
        let mut deletes = String::new();
        let mut adds = String::new();
        for (key, now) in &self.elements {
            let was = before.elements.get(key).unwrap_or(&none);
            let (family, name) = key;
            let gone: Vec<&str> = was.difference(now).map(|e| element_key(e)).collect();
            let new: Vec<&str> = now.difference(was).map(String::as_str).collect();
            if !gone.is_empty() {
                let _ = writeln!(
                    deletes,
                    "delete element {family} {TABLE} {name} {{ {} }}",
                    gone.join(", ")
                );
            }
            if !new.is_empty() {
                let _ = writeln!(
                    adds,
                    "add element {family} {TABLE} {name} {{ {} }}",
                    new.join(", ")
                );
            }
        }
        // A map entry whose value changed is deleted and added again: deletes first.
        Some(deletes + &adds)
    }
}

/// What identifies an element when deleting it: the key without its comment or map value.
fn element_key(element: &str) -> &str {
    let end = [element.find(" comment \""), element.find(" : ")]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(element.len());
    &element[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(skeleton: &str, elements: &[(&str, &str, &[&str])]) -> Rendered {
        Rendered {
            text: String::new(),
            skeleton: skeleton.into(),
            elements: elements
                .iter()
                .map(|(f, n, e)| {
                    (
                        (f.to_string(), n.to_string()),
                        e.iter().map(|s| s.to_string()).collect(),
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn element_keys_drop_comments_and_values() {
        assert_eq!(
            element_key(r#""cpbr1" . 10.0.0.5 comment "port p vm v" : jump ps_0"#),
            r#""cpbr1" . 10.0.0.5"#
        );
        assert_eq!(
            element_key(r#""cpt1" . 52:54:00:00:00:01"#),
            r#""cpt1" . 52:54:00:00:00:01"#
        );
        assert_eq!(element_key("10.0.0.0/24 : accept"), "10.0.0.0/24");
    }

    #[test]
    fn only_element_changes_become_an_update() {
        let before = rendered(
            "s",
            &[
                ("inet", "port_sg", &[r#""b" . 1.1.1.1 : jump ps_0"#]),
                ("bridge", "taps", &["\"t1\""]),
            ],
        );
        let after = rendered(
            "s",
            &[
                ("inet", "port_sg", &[r#""b" . 1.1.1.1 : jump ps_1"#]),
                ("bridge", "taps", &["\"t1\"", "\"t2\""]),
            ],
        );
        assert_eq!(after.changes_from(&after).as_deref(), Some(""));
        let batch = after.changes_from(&before).unwrap();
        assert_eq!(
            batch,
            format!(
                "delete element inet {TABLE} port_sg {{ \"b\" . 1.1.1.1 }}\n\
                 add element bridge {TABLE} taps {{ \"t2\" }}\n\
                 add element inet {TABLE} port_sg {{ \"b\" . 1.1.1.1 : jump ps_1 }}\n"
            )
        );
        assert!(rendered("other", &[]).changes_from(&before).is_none());
    }
}
