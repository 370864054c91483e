//! The administration area: tenants and users (admins only).

pub mod tenants;
pub mod users;
