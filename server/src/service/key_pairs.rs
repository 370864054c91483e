//! A tenant's saved SSH key pairs: save (validated by a real OpenSSH parse), list, delete, and the keys a
//! launch asks for. Every query is scoped to the caller's tenant, so another tenant's key pair id reads as
//! "not found". Saving and deleting are audited.

use app::error::AppError;
use app::model::{KeyPairView, NewKeyPair};
use app::port::{Caller, KeyPairs};
use async_trait::async_trait;

use super::{internal, Service};
use crate::db::{self, key_pairs};
use crate::domain::{parse_id, SshKey};
use crate::ssh_public_key::{parse_key_pair_name, PublicKeyLine};

/// How many key pairs one tenant may hold.
pub const MAX_KEY_PAIRS_PER_TENANT: i64 = 100;
/// How many saved keys one launch may pick.
pub const MAX_KEYS_PER_LAUNCH: usize = 16;

fn view(row: &key_pairs::KeyPairRow) -> KeyPairView {
    KeyPairView {
        id: row.id.clone(),
        name: row.name.clone(),
        algorithm: row.algorithm.clone(),
        bits: u32::try_from(row.bits).unwrap_or(0),
        fingerprint: row.fingerprint.clone(),
        public_key: row.public_key.clone(),
        created_at: db::format_time(row.created_at),
    }
}

impl Service {
    /// The `authorized_keys` lines of a launch: the pasted key (if any), then the chosen key pairs (the
    /// caller's tenant's only) in the order given, without repeats.
    pub(crate) async fn launch_keys(
        &self,
        caller: &Caller,
        pasted: &str,
        key_pair_ids: &[String],
    ) -> Result<String, AppError> {
        let mut lines: Vec<String> = Vec::new();
        let pasted = SshKey::parse(pasted)?;
        if !pasted.as_str().is_empty() {
            lines.push(pasted.as_str().to_string());
        }
        if key_pair_ids.len() > MAX_KEYS_PER_LAUNCH {
            return Err(AppError::invalid(
                "key_pair_ids",
                format!("Pick at most {MAX_KEYS_PER_LAUNCH} key pairs."),
            ));
        }
        for id in key_pair_ids {
            let missing = || AppError::invalid("key_pair_ids", "One of the chosen key pairs does not exist.");
            let id = parse_id("Key pair", id).map_err(|_| missing())?;
            let row = key_pairs::get(self.pool(), &caller.tenant_id, &id)
                .await
                .map_err(internal)?
                .ok_or_else(missing)?;
            if !lines.contains(&row.public_key) {
                lines.push(row.public_key);
            }
        }
        Ok(lines.join("\n"))
    }
}

#[async_trait]
impl KeyPairs for Service {
    async fn list_key_pairs(&self, caller: &Caller) -> Result<Vec<KeyPairView>, AppError> {
        let rows = key_pairs::list(self.pool(), &caller.tenant_id)
            .await
            .map_err(internal)?;
        Ok(rows.iter().map(view).collect())
    }

    async fn create_key_pair(&self, caller: &Caller, req: NewKeyPair) -> Result<KeyPairView, AppError> {
        let name = parse_key_pair_name(&req.name)?;
        let key = PublicKeyLine::parse("public_key", &req.public_key)?;
        let id = uuid::Uuid::new_v4().to_string();
        let new = key_pairs::NewKeyPair {
            id: &id,
            tenant_id: &caller.tenant_id,
            created_by: &caller.user_id,
            name: &name,
            public_key: &key.line,
            algorithm: &key.algorithm,
            bits: i64::from(key.bits),
            fingerprint: &key.fingerprint,
            now: db::now(),
        };
        match key_pairs::insert(self.pool(), &new, MAX_KEY_PAIRS_PER_TENANT).await {
            Ok(()) => {}
            Err(key_pairs::KeyPairWriteError::Db(e)) if db::is_unique_violation(&e) => {
                return Err(AppError::invalid(
                    "name",
                    format!("You already have a key pair named {name}."),
                ))
            }
            Err(key_pairs::KeyPairWriteError::Full(limit)) => {
                return Err(AppError::QuotaExceeded {
                    resource: "key_pairs".into(),
                    message: format!("Your tenant already has {limit} key pairs; delete one first."),
                })
            }
            Err(e) => return Err(internal(e)),
        }
        tracing::info!(key_pair = id, tenant_id = caller.tenant_id, "key pair saved");
        self.audit(
            Some(caller),
            "key_pair_create",
            &format!("key_pair:{id}"),
            &format!("name={name} fingerprint={}", key.fingerprint),
        )
        .await;
        let row = key_pairs::get(self.pool(), &caller.tenant_id, &id)
            .await
            .map_err(internal)?
            .ok_or(AppError::Internal)?;
        Ok(view(&row))
    }

    async fn delete_key_pair(&self, caller: &Caller, id: String) -> Result<(), AppError> {
        let id = parse_id("Key pair", &id)?;
        let row = key_pairs::get(self.pool(), &caller.tenant_id, &id)
            .await
            .map_err(internal)?
            .ok_or_else(|| AppError::not_found("Key pair"))?;
        if !key_pairs::delete(self.pool(), &caller.tenant_id, &id)
            .await
            .map_err(internal)?
        {
            return Err(AppError::not_found("Key pair"));
        }
        self.audit(
            Some(caller),
            "key_pair_delete",
            &format!("key_pair:{id}"),
            &format!("name={} fingerprint={}", row.name, row.fingerprint),
        )
        .await;
        Ok(())
    }
}
