//! The portal's user interface (Leptos, server-rendered then hydrated) and the types and server functions
//! shared by the browser and the server.
#![forbid(unsafe_code)]
#![recursion_limit = "256"]

pub mod api;
pub mod components;
pub mod error;
pub mod model;
pub mod pages;
#[cfg(feature = "ssr")]
pub mod port;
mod routes;
pub mod wire;

pub use routes::{shell, App};
