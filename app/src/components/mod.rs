//! Reusable UI pieces: the signed-in layout, error displays, form fields and small layout helpers.

pub mod admin_filters;
pub mod after_render;
pub mod billing;
pub mod boot;
pub mod errors;
pub mod form;
pub mod image_choice;
pub mod launch;
pub mod launch_keys;
pub mod launch_network;
pub mod layout;
pub mod list_query;
pub mod live;
pub mod metrics;
pub mod metrics_chart;
pub mod month;
pub mod nav_toggle;
pub mod network;
pub mod quota;
pub mod ui;
pub mod vm;
pub mod vm_filters;
pub mod vm_network;
pub mod vm_rename;

pub use errors::{ErrorBox, FieldError, FormError};
pub use form::{action_error, action_succeeded, Field};
pub use layout::{AppLayout, PRODUCT_NAME};
pub use live::vm_changes;
pub use ui::{fmt_time, mark_hydrated, AdminOnly, EmptyState, PageHeader};
pub mod console;
pub mod console_gate;
