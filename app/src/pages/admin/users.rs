//! `/admin/users`: every user, creating one in a tenant, disabling/enabling, and resetting a password.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::admin::{list_tenants, list_users, CreateUser, ResetPassword, SetUserDisabled};
use crate::components::admin_filters::{user_query, UserFilters};
use crate::components::list_query::SortHeader;
use crate::components::{
    action_error, fmt_time, AdminOnly, EmptyState, ErrorBox, Field, FieldError, FormError, PageHeader,
};
use crate::error::AppError;
use crate::model::{filter_users, Role, UserView};
use crate::pages::admin::tenants::StatusBadge;

#[component]
pub fn UsersPage() -> impl IntoView {
    view! {
        <Title text="Users"/>
        <PageHeader title="Users" subtitle="People who can sign in, the tenant they belong to and their role."/>
        <AdminOnly>
            <Users/>
        </AdminOnly>
    }
}

#[component]
fn Users() -> impl IntoView {
    let create = ServerAction::<CreateUser>::new();
    let toggle = ServerAction::<SetUserDisabled>::new();
    let reset = ServerAction::<ResetPassword>::new();
    let users = Resource::new(
        move || (create.version().get(), toggle.version().get()),
        |_| list_users(),
    );
    let tenants = Resource::new(|| (), |_| list_tenants());
    let create_error = action_error(create);
    let toggle_error = action_error(toggle);
    let created = create.value();
    let form_ref = NodeRef::<leptos::html::Form>::new();
    Effect::new(move |_| {
        if let Some(Ok(_)) = created.get() {
            if let Some(form) = form_ref.get() {
                form.reset();
            }
        }
    });
    view! {
        <section class="panel">
            <div class="panel-header"><h2>"Create a user"</h2></div>
            {move || match created.get() {
                Some(Ok(u)) => Some(view! {
                    <div class="alert alert-success" role="status" data-testid="user-created">
                        <span class="alert-message">
                            "User “"{u.username}"” created in tenant “"{u.tenant_name}"”."
                        </span>
                    </div>
                }),
                _ => None,
            }}
            <ActionForm action=create node_ref=form_ref>
                <div class="form-grid">
                    <div class="field" class:field-invalid=move || is_field(create_error, "tenant_id")>
                        <label for="user-tenant_id">"Tenant"</label>
                        <Suspense fallback=|| view! {
                            <select id="user-tenant_id" name="tenant_id" disabled=true>
                                <option value="">"Loading tenants…"</option>
                            </select>
                        }>
                            {move || Suspend::new(async move {
                                let options = match tenants.await {
                                    Ok(list) => list
                                        .into_iter()
                                        .filter(|t| !t.disabled)
                                        .map(|t| view! { <option value=t.id>{t.name}</option> })
                                        .collect_view()
                                        .into_any(),
                                    Err(_) => view! {
                                        <option value="">"Could not load tenants"</option>
                                    }.into_any(),
                                };
                                view! {
                                    <select id="user-tenant_id" name="tenant_id" required=true>{options}</select>
                                }
                            })}
                        </Suspense>
                        <FieldError error=create_error name="tenant_id"/>
                    </div>
                    <Field label="Username" name="username" error=create_error required=true form="user"
                        autocomplete="off"/>
                    <Field label="Display name" name="display_name" error=create_error form="user"
                        autocomplete="off"/>
                    <div class="field" class:field-invalid=move || is_field(create_error, "role")>
                        <label for="user-role">"Role"</label>
                        <select id="user-role" name="role">
                            <option value=Role::Member.as_str() selected=true>"Member"</option>
                            <option value=Role::Admin.as_str()>"Admin"</option>
                        </select>
                        <FieldError error=create_error name="role"/>
                    </div>
                    <Field label="Initial password" name="password" kind="password" error=create_error
                        required=true form="user" autocomplete="new-password"
                        hint="Tell the user to change it from their Account page."/>
                    <div class="form-actions">
                        <button type="submit" class="btn btn-primary" disabled=create.pending()
                            data-testid="create-user">"Create user"</button>
                    </div>
                </div>
                <FormError error=create_error
                    fields=&["tenant_id", "username", "display_name", "role", "password"]/>
            </ActionForm>
        </section>
        <section class="panel">
            <div class="panel-header"><h2>"All users"</h2></div>
            <UserFilters/>
            <FormError error=toggle_error/>
            <Transition fallback=|| view! { <p class="loading">"Loading users…"</p> }>
                {move || Suspend::new(async move {
                    match users.await {
                        Ok(list) if list.is_empty() => view! { <EmptyState title="No users yet"/> }.into_any(),
                        Ok(list) => {
                            // Filtered and sorted by the URL's query string (`components/admin_filters.rs`).
                            let list = StoredValue::new(list);
                            let query = leptos_router::hooks::use_query_map();
                            (move || match filter_users(list.get_value(), &user_query(&query.get())) {
                                Ok(list) => view! { <UserTable list toggle reset/> }.into_any(),
                                Err(error) => view! { <ErrorBox error/> }.into_any(),
                            }).into_any()
                        }
                        Err(error) => view! { <ErrorBox error/> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

fn is_field(error: Signal<Option<AppError>>, name: &str) -> bool {
    error.with(|e| e.as_ref().and_then(AppError::field) == Some(name))
}

#[component]
fn UserTable(
    list: Vec<UserView>,
    toggle: ServerAction<SetUserDisabled>,
    reset: ServerAction<ResetPassword>,
) -> impl IntoView {
    let pending = toggle.pending();
    // The user whose password is being reset (the row shows an inline form).
    let resetting = RwSignal::new(None::<String>);
    // The username of the last successful reset, for the confirmation line.
    let reset_done = RwSignal::new(None::<String>);
    let reset_value = reset.value();
    let reset_error = action_error(reset);
    Effect::new(move |_| {
        if let Some(Ok(())) = reset_value.get() {
            if let Some(id) = resetting.get_untracked() {
                reset_done.set(Some(id));
            }
            resetting.set(None);
        }
    });
    let rows = list
        .into_iter()
        .map(|u| {
            let id = u.id.clone();
            let id_open = u.id.clone();
            let id_form = u.id.clone();
            let id_done = u.id.clone();
            let uid = u.id.clone();
            let disabled = u.disabled;
            let is_open = move || resetting.with(|r| r.as_deref() == Some(id_form.as_str()));
            let username = u.username.clone();
            view! {
                <tr data-testid="user-row" data-username=u.username.clone()>
                    <td class="strong">{u.username.clone()}</td>
                    <td>{u.display_name.clone()}</td>
                    <td>{u.tenant_name.clone()}</td>
                    <td><span class=format!("badge badge-role-{}", u.role.as_str())>{u.role.as_str()}</span></td>
                    <td><StatusBadge disabled/></td>
                    <td title=u.created_at.clone()>{fmt_time(&u.created_at)}</td>
                    <td class="actions">
                        <button
                            type="button"
                            class=if disabled { "btn btn-small" } else { "btn btn-small btn-danger-outline" }
                            data-testid="toggle-user"
                            disabled=pending
                            on:click=move |_| {
                                toggle.dispatch(SetUserDisabled { id: id.clone(), disabled: (!disabled).to_string() });
                            }
                        >
                            {if disabled { "Enable" } else { "Disable" }}
                        </button>
                        <button type="button" class="btn btn-small" data-testid="reset-password"
                            on:click=move |_| {
                                reset.clear();
                                reset_done.set(None);
                                resetting.set(Some(id_open.clone()));
                            }>"Reset password"</button>
                    </td>
                </tr>
                <Show when=is_open.clone()>
                    {
                        let uid = uid.clone();
                        let username = username.clone();
                        view! {
                            <tr class="row-inline-form">
                                <td colspan="7">
                                    <ActionForm action=reset>
                                        <input type="hidden" name="id" value=uid.clone()/>
                                        <div class="inline-form">
                                            <label for=format!("reset-{uid}")>
                                                "New password for "<strong>{username.clone()}</strong>
                                            </label>
                                            <input id=format!("reset-{uid}") name="password" type="password"
                                                required=true autocomplete="new-password"/>
                                            <button type="submit" class="btn btn-small btn-primary"
                                                data-testid="confirm-reset">"Set password"</button>
                                            <button type="button" class="btn btn-small"
                                                on:click=move |_| resetting.set(None)>"Cancel"</button>
                                        </div>
                                        <FieldError error=reset_error name="password"/>
                                        <FormError error=reset_error fields=&["password"]/>
                                    </ActionForm>
                                </td>
                            </tr>
                        }
                    }
                </Show>
                <Show when={
                    let id_done = id_done.clone();
                    move || reset_done.with(|d| d.as_deref() == Some(id_done.as_str()))
                }>
                    <tr class="row-note">
                        <td colspan="7">
                            <span class="note-success" data-testid="password-reset">
                                "Password reset. Share the new password with the user."
                            </span>
                        </td>
                    </tr>
                </Show>
            }
        })
        .collect_view();
    view! {
        <table class="table" data-testid="users-table">
            <thead>
                <tr>
                    <SortHeader label="Username" key="username"/><th>"Display name"</th>
                    <SortHeader label="Tenant" key="tenant"/><SortHeader label="Role" key="role"/><th>"Status"</th>
                    <SortHeader label="Created" key="created"/><th class="actions">"Actions"</th>
                </tr>
            </thead>
            <tbody>{rows}</tbody>
        </table>
    }
}
