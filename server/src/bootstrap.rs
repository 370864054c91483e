//! First start: with no users at all, create the `admin` tenant and the `admin` user, with the password from
//! `PORTAL_ADMIN_PASSWORD` or a generated one that is printed once.

use app::error::AppError;
use app::model::Role;
use secrecy::ExposeSecret;

use crate::auth::password;
use crate::config::Settings;
use crate::domain::{Label, NewPassword, TenantName, Username};
use crate::service::Service;

pub const ADMIN_USERNAME: &str = "admin";

pub async fn ensure_admin(service: &Service, settings: &Settings) -> Result<(), AppError> {
    if service.has_users().await? {
        return Ok(());
    }
    let (password, generated) = match &settings.admin_password {
        Some(p) => (p.expose_secret().to_string(), false),
        None => (password::generate(20), true),
    };
    let tenant = service
        .insert_tenant(
            &TenantName::parse("admin")?,
            &Label::parse("description", "Description", "Cloud administrators", 0, 200)?,
        )
        .await?;
    let username = Username::parse(ADMIN_USERNAME)?;
    let display = Label::parse("display_name", "Display name", "Administrator", 1, 64)?;
    service
        .insert_user(
            &tenant,
            &username,
            &display,
            Role::Admin,
            NewPassword::parse("password", password.clone())?,
        )
        .await?;
    tracing::info!(username = ADMIN_USERNAME, generated, "created the first admin");
    if generated {
        // CLI output, shown once: the password is not stored anywhere else in clear.
        println!("==> First start: admin login is   user: {ADMIN_USERNAME}   password: {password}");
        println!("==> (shown only now; reset it later with `portal reset-password {ADMIN_USERNAME}`)");
    } else {
        println!(
            "==> First start: admin login is   user: {ADMIN_USERNAME}   password: from PORTAL_ADMIN_PASSWORD"
        );
    }
    Ok(())
}
