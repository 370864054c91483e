//! `portal` — run the cloud portal, or administer it from the command line.
//!
//! ```text
//! portal                          serve (settings from portal.toml / PORTAL_* variables)
//! portal reset-password <user>    set a new generated password for a user and print it
//! ```
#![forbid(unsafe_code)]

use anyhow::Context;
use server::config::Settings;
use server::startup::Application;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    server::telemetry::init(&settings.log_format);
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        [] | ["serve"] => serve(settings).await,
        ["reset-password", username] => reset_password(settings, username).await,
        _ => {
            eprintln!("usage: portal [serve] | portal reset-password <username>");
            std::process::exit(2);
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let app = Application::build(settings).await?;
    tracing::info!(addr = %app.addr(), "portal listening");
    println!("==> Cloud portal on http://{}", app.addr());
    app.run_until_stopped().await?;
    Ok(())
}

async fn reset_password(settings: Settings, username: &str) -> anyhow::Result<()> {
    let pool = server::db::connect(&settings.data_dir).await?;
    let user = server::db::users::by_username(&pool, &username.to_lowercase())
        .await?
        .with_context(|| format!("no user named {username}"))?;
    let password = server::auth::password::generate(20);
    let hash = server::auth::password::hash(password.clone()).await?;
    let now = server::db::now();
    server::db::users::set_password(&pool, &user.id, &hash, now).await?;
    let revoked = server::db::tokens::revoke_all_of_user(&pool, &user.id, now).await?;
    println!(
        "==> New password for {}: {password} ({revoked} API tokens revoked)",
        user.username
    );
    Ok(())
}
