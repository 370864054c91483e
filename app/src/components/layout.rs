//! The frame of every signed-in page: top bar (product, tenant, user menu), left navigation and the page.
//!
//! The current user is loaded once per page load by a blocking resource, so a signed-out visitor gets a
//! real HTTP redirect to `/login` from the server (and a client-side one after navigation).

use leptos::prelude::*;
use leptos_router::components::{Outlet, Redirect, A};

use crate::api::auth::{current_user, Logout};
use crate::components::errors::ErrorBox;
use crate::components::nav_toggle::{
    close_on_click, close_on_escape, nav_open, provide_nav_state, NavScrim, NavToggle,
};
use crate::components::ui::mark_hydrated;
use crate::model::Me;

/// The product's name as shown in the top bar and page titles.
pub const PRODUCT_NAME: &str = "Cloud Portal";

/// The layout route: loads the current user, then renders the frame around the matched child page.
#[component]
pub fn AppLayout() -> impl IntoView {
    let me = Resource::new_blocking(|| (), |_| current_user());
    view! {
        <Suspense fallback=|| view! { <div class="loading-screen">"Loading…"</div> }>
            {move || Suspend::new(async move {
                match me.await {
                    Ok(Some(user)) => view! { <Frame user/> }.into_any(),
                    Ok(None) => view! { <Redirect path="/login"/> }.into_any(),
                    Err(error) => {
                        view! {
                            <div class="centered-page">
                                <ErrorBox error/>
                                <p><a href="/login">"Go to the sign-in page"</a></p>
                            </div>
                        }
                            .into_any()
                    }
                }
            })}
        </Suspense>
    }
}

#[component]
fn Frame(user: Me) -> impl IntoView {
    provide_context(user.clone());
    provide_nav_state();
    mark_hydrated();
    view! {
        <div class="app" class:nav-open=nav_open()>
            <TopBar user=user.clone()/>
            <div class="app-body">
                <NavScrim/>
                <SideNav is_admin=user.is_admin()/>
                <main class="content" id="content">
                    <Outlet/>
                </main>
            </div>
        </div>
    }
}

#[component]
fn TopBar(user: Me) -> impl IntoView {
    let logout = ServerAction::<Logout>::new();
    // After signing out, a full page load drops every piece of signed-in state in the browser.
    Effect::new(move |_| {
        if let Some(Ok(())) = logout.value().get() {
            let _ = window().location().set_href("/login");
        }
    });
    let initial = user
        .display_name
        .chars()
        .next()
        .or_else(|| user.username.chars().next())
        .unwrap_or('?');
    let shown_name = if user.display_name.is_empty() {
        user.username.clone()
    } else {
        user.display_name.clone()
    };
    view! {
        <header class="topbar">
            <NavToggle/>
            <a class="brand" href="/">
                <span class="brand-mark" aria-hidden="true"></span>
                <span class="brand-name">{PRODUCT_NAME}</span>
            </a>
            <div class="topbar-tenant" title="Your tenant">
                <span class="topbar-label">"Tenant"</span>
                <span class="tenant-name" data-testid="tenant-name">{user.tenant_name.clone()}</span>
            </div>
            <div class="topbar-spacer"></div>
            <details class="user-menu" data-testid="user-menu">
                <summary>
                    <span class="avatar" aria-hidden="true">{initial.to_uppercase().to_string()}</span>
                    <span class="user-name" data-testid="user-name">{shown_name}</span>
                    <span class="role-badge">{user.role.as_str()}</span>
                </summary>
                <div class="menu">
                    <div class="menu-header">
                        <div class="menu-user">{user.username.clone()}</div>
                        <div class="menu-sub">{user.tenant_name.clone()}</div>
                    </div>
                    <A href="/account" {..} class="menu-item">"Account"</A>
                    <ActionForm action=logout>
                        <button type="submit" class="menu-item menu-button" data-testid="sign-out">
                            "Sign out"
                        </button>
                    </ActionForm>
                </div>
            </details>
        </header>
    }
}

#[component]
fn SideNav(is_admin: bool) -> impl IntoView {
    view! {
        <nav class="sidenav" id="sidenav" aria-label="Main" on:keydown=close_on_escape() on:click=close_on_click()>
            <div class="nav-section">
                <div class="nav-heading">"Project"</div>
                <A href="/instances" {..} class="nav-link" data-testid="nav-instances">
                    <span class="nav-icon" aria-hidden="true">"\u{25a3}"</span>"Instances"
                </A>
                <A href="/key-pairs" {..} class="nav-link" data-testid="nav-key-pairs">
                    <span class="nav-icon" aria-hidden="true">"\u{25d8}"</span>"Key pairs"
                </A>
                <A href="/usage" {..} class="nav-link" data-testid="nav-usage">
                    <span class="nav-icon" aria-hidden="true">"\u{25d4}"</span>"Usage"
                </A>
            </div>
            <div class="nav-section">
                <div class="nav-heading">"Network"</div>
                <A href="/networks" {..} class="nav-link" data-testid="nav-networks">
                    <span class="nav-icon" aria-hidden="true">"\u{25c7}"</span>"Networks"
                </A>
                <A href="/security-groups" {..} class="nav-link" data-testid="nav-security-groups">
                    <span class="nav-icon" aria-hidden="true">"\u{25eb}"</span>"Security groups"
                </A>
                <A href="/public-access" {..} class="nav-link" data-testid="nav-public-access">
                    <span class="nav-icon" aria-hidden="true">"\u{21c4}"</span>"Public access"
                </A>
            </div>
            <div class="nav-section">
                <div class="nav-heading">"Identity"</div>
                <A href="/tokens" {..} class="nav-link" data-testid="nav-tokens">
                    <span class="nav-icon" aria-hidden="true">"\u{25c8}"</span>"API tokens"
                </A>
                <A href="/account" {..} class="nav-link" data-testid="nav-account">
                    <span class="nav-icon" aria-hidden="true">"\u{263a}"</span>"Account"
                </A>
            </div>
            {is_admin.then(|| view! {
                <div class="nav-section" data-testid="nav-admin">
                    <div class="nav-heading">"Administration"</div>
                    <A href="/admin/tenants" {..} class="nav-link" data-testid="nav-tenants">
                        <span class="nav-icon" aria-hidden="true">"\u{25a6}"</span>"Tenants"
                    </A>
                    <A href="/admin/vms" {..} class="nav-link" data-testid="nav-admin-vms">
                        <span class="nav-icon" aria-hidden="true">"\u{25a3}"</span>"All instances"
                    </A>
                    <A href="/admin/users" {..} class="nav-link" data-testid="nav-users">
                        <span class="nav-icon" aria-hidden="true">"\u{263b}"</span>"Users"
                    </A>
                    <A href="/admin/quotas" {..} class="nav-link" data-testid="nav-quotas">
                        <span class="nav-icon" aria-hidden="true">"\u{25a5}"</span>"Quotas"
                    </A>
                    <A href="/admin/flavors" {..} class="nav-link" data-testid="nav-flavors">
                        <span class="nav-icon" aria-hidden="true">"\u{25a4}"</span>"Flavors"
                    </A>
                    <A href="/admin/images" {..} class="nav-link" data-testid="nav-images">
                        <span class="nav-icon" aria-hidden="true">"\u{25c9}"</span>"Images"
                    </A>
                    <A href="/admin/usage" {..} class="nav-link" data-testid="nav-admin-usage">
                        <span class="nav-icon" aria-hidden="true">"\u{25d1}"</span>"Usage"
                    </A>
                    <A href="/admin/audit" {..} class="nav-link" data-testid="nav-audit">
                        <span class="nav-icon" aria-hidden="true">"\u{2261}"</span>"Audit log"
                    </A>
                    <A href="/admin/host" {..} class="nav-link" data-testid="nav-host">
                        <span class="nav-icon" aria-hidden="true">"\u{25a3}"</span>"Host"
                    </A>
                </div>
            })}
        </nav>
    }
}
