//! Cloud administration: tenants and users. Admin only; an admin cannot lock themselves or everyone out.

use app::error::AppError;
use app::model::{NewUser, TenantView, TokenView, UserView};
use app::port::{Admin, Caller};
use async_trait::async_trait;

use super::{internal, Revoked, Service};
use crate::auth::password;
use crate::db::{self, format_time, tenants, users};
use crate::domain::{parse_id, Label, NewPassword, TenantName, Username};

fn tenant_view(row: &tenants::TenantRow) -> TenantView {
    TenantView {
        id: row.id.clone(),
        name: row.name.clone(),
        description: row.description.clone(),
        disabled: row.disabled,
        user_count: row.user_count,
        created_at: format_time(row.created_at),
    }
}

fn user_view(row: &users::UserRow) -> UserView {
    UserView {
        id: row.id.clone(),
        username: row.username.clone(),
        display_name: row.display_name.clone(),
        role: row.role(),
        tenant_id: row.tenant_id.clone(),
        tenant_name: row.tenant_name.clone(),
        disabled: row.disabled,
        created_at: format_time(row.created_at),
    }
}

impl Service {
    async fn tenant(&self, id: &str) -> Result<tenants::TenantRow, AppError> {
        tenants::get(self.pool(), id)
            .await
            .map_err(internal)?
            .ok_or_else(|| AppError::not_found("Tenant"))
    }

    async fn user(&self, id: &str) -> Result<users::UserRow, AppError> {
        users::by_id(self.pool(), id)
            .await
            .map_err(internal)?
            .ok_or_else(|| AppError::not_found("User"))
    }

    /// Whether any user exists (first-start bootstrap creates the admin when none does).
    pub(crate) async fn has_users(&self) -> Result<bool, AppError> {
        Ok(users::count(self.pool()).await.map_err(internal)? > 0)
    }

    /// Creates a tenant without an admin check: for first-start bootstrap and the service methods below.
    pub(crate) async fn insert_tenant(
        &self,
        name: &TenantName,
        description: &Label,
    ) -> Result<String, AppError> {
        let id = uuid::Uuid::new_v4().to_string();
        match tenants::insert(self.pool(), &id, name.as_str(), description.as_str(), db::now()).await {
            Ok(()) => Ok(id),
            Err(e) if db::is_unique_violation(&e) => Err(AppError::invalid(
                "name",
                format!("A tenant named {} already exists.", name.as_str()),
            )),
            Err(e) => Err(internal(e)),
        }
    }

    /// Creates a user without an admin check: for first-start bootstrap and the service methods below.
    pub(crate) async fn insert_user(
        &self,
        tenant_id: &str,
        username: &Username,
        display_name: &Label,
        role: app::model::Role,
        password: NewPassword,
    ) -> Result<String, AppError> {
        let hash = password::hash(password.expose().to_string())
            .await
            .map_err(internal)?;
        let id = uuid::Uuid::new_v4().to_string();
        let row = users::NewUserRow {
            id: &id,
            tenant_id,
            username: username.as_str(),
            display_name: display_name.as_str(),
            password_hash: &hash,
            role,
            now: db::now(),
        };
        match users::insert(self.pool(), row).await {
            Ok(()) => Ok(id),
            Err(e) if db::is_unique_violation(&e) => Err(AppError::invalid(
                "username",
                format!("The username {} is already taken.", username.as_str()),
            )),
            Err(e) => Err(internal(e)),
        }
    }
}

#[async_trait]
impl Admin for Service {
    async fn list_tenants(&self, caller: &Caller) -> Result<Vec<TenantView>, AppError> {
        caller.require_admin()?;
        let rows = tenants::list(self.pool()).await.map_err(internal)?;
        Ok(rows.iter().map(tenant_view).collect())
    }

    async fn create_tenant(
        &self,
        caller: &Caller,
        name: String,
        description: String,
    ) -> Result<TenantView, AppError> {
        caller.require_admin()?;
        let name = TenantName::parse(&name)?;
        let description = Label::parse("description", "Description", &description, 0, 200)?;
        let id = self.insert_tenant(&name, &description).await?;
        tracing::info!(admin = %caller.username, tenant_id = %id, tenant = name.as_str(), "tenant created");
        self.audit(
            Some(caller),
            "tenant_create",
            &format!("tenant:{id}"),
            &format!("name={}", name.as_str()),
        )
        .await;
        Ok(tenant_view(&self.tenant(&id).await?))
    }

    async fn set_tenant_disabled(
        &self,
        caller: &Caller,
        tenant_id: String,
        disabled: bool,
    ) -> Result<TenantView, AppError> {
        caller.require_admin()?;
        let id = parse_id("Tenant", &tenant_id)?;
        if disabled && id == caller.tenant_id {
            return Err(AppError::conflict(
                "You cannot disable the tenant your own account belongs to.",
            ));
        }
        // Disabling ends the members' sessions and revokes their tokens for good: re-enabling the tenant
        // revives neither.
        let mut tx = self.pool().begin().await.map_err(internal)?;
        if !tenants::set_disabled(&mut *tx, &id, disabled)
            .await
            .map_err(internal)?
        {
            return Err(AppError::not_found("Tenant"));
        }
        if disabled {
            users::end_sessions_of_tenant(&mut *tx, &id)
                .await
                .map_err(internal)?;
            db::tokens::revoke_all_of_tenant(&mut *tx, &id, db::now())
                .await
                .map_err(internal)?;
        }
        tx.commit().await.map_err(internal)?;
        if disabled {
            self.broadcast_revocation(
                Revoked::Tenant(id.clone()),
                "Your tenant was disabled by an administrator.",
            );
        }
        tracing::info!(admin = %caller.username, tenant_id = %id, disabled, "tenant status changed");
        let action = if disabled {
            "tenant_disable"
        } else {
            "tenant_enable"
        };
        self.audit(Some(caller), action, &format!("tenant:{id}"), "")
            .await;
        Ok(tenant_view(&self.tenant(&id).await?))
    }

    async fn list_users(&self, caller: &Caller) -> Result<Vec<UserView>, AppError> {
        caller.require_admin()?;
        let rows = users::list(self.pool()).await.map_err(internal)?;
        Ok(rows.iter().map(user_view).collect())
    }

    async fn create_user(&self, caller: &Caller, user: NewUser) -> Result<UserView, AppError> {
        caller.require_admin()?;
        let tenant_id = parse_id("Tenant", &user.tenant_id)
            .map_err(|_| AppError::invalid("tenant_id", "Choose a tenant."))?;
        let tenant = tenants::get(self.pool(), &tenant_id)
            .await
            .map_err(internal)?
            .ok_or_else(|| AppError::invalid("tenant_id", "Choose a tenant."))?;
        let username = Username::parse(&user.username)?;
        let display = if user.display_name.trim().is_empty() {
            username.as_str()
        } else {
            &user.display_name
        };
        let display_name = Label::parse("display_name", "Display name", display, 1, 64)?;
        let password = NewPassword::parse("password", user.password)?;
        let id = self
            .insert_user(&tenant.id, &username, &display_name, user.role, password)
            .await?;
        tracing::info!(admin = %caller.username, user_id = %id, tenant_id = %tenant.id, "user created");
        let detail = format!(
            "username={} role={} tenant={}",
            username.as_str(),
            user.role.as_str(),
            tenant.name
        );
        self.audit(Some(caller), "user_create", &format!("user:{id}"), &detail)
            .await;
        Ok(user_view(&self.user(&id).await?))
    }

    async fn set_user_disabled(
        &self,
        caller: &Caller,
        user_id: String,
        disabled: bool,
    ) -> Result<UserView, AppError> {
        caller.require_admin()?;
        let id = parse_id("User", &user_id)?;
        if disabled && id == caller.user_id {
            return Err(AppError::conflict("You cannot disable your own account."));
        }
        let target = self.user(&id).await?;
        if disabled
            && target.role() == app::model::Role::Admin
            && users::other_active_admins(self.pool(), &id)
                .await
                .map_err(internal)?
                == 0
        {
            return Err(AppError::conflict(
                "This is the last active admin and cannot be disabled.",
            ));
        }
        // Disabling ends the user's sessions and revokes their tokens for good: re-enabling revives neither.
        let mut tx = self.pool().begin().await.map_err(internal)?;
        users::set_disabled(&mut *tx, &id, disabled)
            .await
            .map_err(internal)?;
        if disabled {
            db::tokens::revoke_all_of_user(&mut *tx, &id, db::now())
                .await
                .map_err(internal)?;
        }
        tx.commit().await.map_err(internal)?;
        if disabled {
            self.broadcast_revocation(
                Revoked::User(id.clone()),
                "Your account was disabled by an administrator.",
            );
        }
        tracing::info!(admin = %caller.username, user_id = %id, disabled, "user status changed");
        let action = if disabled { "user_disable" } else { "user_enable" };
        self.audit(Some(caller), action, &format!("user:{id}"), "").await;
        Ok(user_view(&self.user(&id).await?))
    }

    async fn reset_password(
        &self,
        caller: &Caller,
        user_id: String,
        password: String,
    ) -> Result<(), AppError> {
        caller.require_admin()?;
        let id = parse_id("User", &user_id)?;
        let password = NewPassword::parse("password", password)?;
        let user = self.user(&id).await?;
        let hash = password::hash(password.expose().to_string())
            .await
            .map_err(internal)?;
        // A reset means the password may be known to someone else: whatever it opened goes, tokens included.
        let now = db::now();
        let mut tx = self.pool().begin().await.map_err(internal)?;
        users::set_password(&mut *tx, &user.id, &hash, now)
            .await
            .map_err(internal)?;
        let tokens = db::tokens::revoke_all_of_user(&mut *tx, &user.id, now)
            .await
            .map_err(internal)?;
        tx.commit().await.map_err(internal)?;
        self.broadcast_revocation(
            Revoked::User(user.id.clone()),
            "Your password was reset by an administrator. Sign in again.",
        );
        tracing::info!(admin = %caller.username, user_id = %id, tokens, "password reset; the user's sessions ended and tokens revoked");
        self.audit(
            Some(caller),
            "password_reset",
            &format!("user:{id}"),
            &format!("tokens_revoked={tokens}"),
        )
        .await;
        Ok(())
    }

    async fn list_user_tokens(&self, caller: &Caller, user_id: String) -> Result<Vec<TokenView>, AppError> {
        caller.require_admin()?;
        let user = self.user(&parse_id("User", &user_id)?).await?;
        self.tokens_of(&user.id, &user.tenant_id).await
    }

    async fn revoke_user_token(
        &self,
        caller: &Caller,
        user_id: String,
        token_id: String,
    ) -> Result<(), AppError> {
        caller.require_admin()?;
        let user = self.user(&parse_id("User", &user_id)?).await?;
        let token = self.revoke_token_of(&user.id, &user.tenant_id, &token_id).await?;
        tracing::info!(admin = %caller.username, user_id = %user.id, "another user's API token revoked");
        self.audit(
            Some(caller),
            "token_revoke",
            &format!("token:{token}"),
            &format!("owner={}", user.username),
        )
        .await;
        Ok(())
    }
}
