//! The cloud portal server: axum + Leptos SSR, SQLite, sessions, REST API. The `portal` binary runs it.
#![forbid(unsafe_code)]

/// Every binary built on the portal (the `portal` server, its tests and benches) allocates with mimalloc.
/// A server-rendered page allocates and frees many short-lived strings and buffers: under 64 concurrent
/// dashboard clients glibc's malloc (`_int_malloc`, `malloc_consolidate`, `_int_free`, `unlink_chunk`)
/// took about a third of the portal's CPU samples (perf on `cargo bench -p server --bench lifecycle`), and
/// the same build with mimalloc preloaded served 248 instead of 168 pages/s side by side. The VMM is a
/// separate binary and keeps glibc's (its seccomp filters are written for it).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
