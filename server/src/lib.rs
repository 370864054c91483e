//! The cloud portal server: axum + Leptos SSR, SQLite, sessions, REST API. The `portal` binary runs it.
#![forbid(unsafe_code)]

pub mod api;
pub mod auth;
pub mod billing;
pub mod bootstrap;
pub mod capacity;
pub mod config;
pub mod console;
pub mod db;
pub mod domain;
pub mod health;
pub mod metrics;
pub mod middleware;
pub mod net;
pub mod seed;
pub mod service;
pub mod ssh_public_key;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod vm;
