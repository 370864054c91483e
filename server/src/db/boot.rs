//! A running VM's boot progress (`vm::boot_watch` writes it): the last console line while it boots, and the
//! moment it became ready, recorded once per VMM run with an entry in the VM's history.

use sqlx::SqlitePool;

/// Shows `line` as the booting VM's last console line. False if the VM is not booting any more.
pub async fn set_line(pool: &SqlitePool, vm_id: &str, line: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE vms SET boot_line = ? WHERE id = ? AND state = 'running' AND guest_ready_rule = '' \
         AND boot_line <> ?",
    )
    .bind(line)
    .bind(vm_id)
    .bind(line)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// What the guest's boot ended with.
pub struct Readiness<'a> {
    /// `marker`, `login` or `none` (see `vm::boot_rule`).
    pub rule: &'a str,
    /// Milliseconds from the VMM's start; `None` for `none`.
    pub after_ms: Option<i64>,
    pub line: &'a str,
    /// The history entry's text.
    pub message: &'a str,
}

/// Records that the running VM's guest finished booting (once per run: false if it already had, or the VM
/// is not running any more), with a `running → running` entry in its history, in one transaction.
pub async fn set_ready(
    pool: &SqlitePool,
    vm_id: &str,
    r: &Readiness<'_>,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let ready_at = r.after_ms.map(|_| now);
    let done = sqlx::query(
        "UPDATE vms SET guest_ready_rule = ?, guest_ready_at = ?, guest_ready_after_ms = ?, boot_line = ? \
         WHERE id = ? AND state = 'running' AND guest_ready_rule = ''",
    )
    .bind(r.rule)
    .bind(ready_at)
    .bind(r.after_ms)
    .bind(r.line)
    .bind(vm_id)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if done {
        sqlx::query(
            "INSERT INTO vm_events (vm_id, at, from_state, to_state, actor, message) \
             VALUES (?, ?, 'running', 'running', NULL, ?)",
        )
        .bind(vm_id)
        .bind(now)
        .bind(r.message)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(done)
}
