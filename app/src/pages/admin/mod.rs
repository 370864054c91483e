//! The administration area (admins only): tenants, users, quotas, flavors, images, usage and the audit log.

pub mod audit;
pub mod flavors;
pub mod host;
pub mod images;
pub mod quotas;
pub mod tenants;
pub mod usage;
pub mod users;
pub mod vms;
