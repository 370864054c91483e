//! The application root: HTML shell, router and routes.
//!
//! | path             | page                                  |
//! |------------------|---------------------------------------|
//! | `/login`         | sign in                               |
//! | `/`, `/instances`| tenant dashboard (signed in)          |
//! | `/instances/:id` | one VM: actions, console, history  |
//! | `/networks`      | networks (admins: every tenant's)     |
//! | `/security-groups` | security groups and their rules     |
//! | `/public-access` | port forwards and floating IPs        |
//! | `/usage`         | usage (signed in)                     |
//! | `/tokens`        | personal API tokens (signed in)       |
//! | `/key-pairs`     | saved SSH public keys (signed in)     |
//! | `/admin/vms`     | every tenant's VMs (admins)           |
//! | `/account`       | profile and password (signed in)      |
//! | `/admin/tenants` | tenants (admins)                      |
//! | `/admin/users`   | users (admins)                        |
//! | `/admin/flavors`| flavors (admins)                      |
//! | `/admin/images` | images (admins)                       |
//! | `/admin/quotas` | quotas (admins)                       |
//! | `/admin/usage`  | usage of all tenants (admins)         |
//! | `/admin/audit`  | audit log (admins)                    |
//! | `/admin/host`   | the host: resources and its VMs (admins) |
//! | anything else    | 404                                   |

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::components::{ParentRoute, Route, Router, Routes};
use leptos_router::path;

use crate::components::{AppLayout, PRODUCT_NAME};
use crate::pages::account::AccountPage;
use crate::pages::admin::audit::AuditPage;
use crate::pages::admin::flavors::FlavorsPage;
use crate::pages::admin::host::HostPage;
use crate::pages::admin::images::ImagesPage;
use crate::pages::admin::quotas::QuotasPage;
use crate::pages::admin::tenants::TenantsPage;
use crate::pages::admin::usage::AdminUsagePage;
use crate::pages::admin::users::UsersPage;
use crate::pages::admin::vms::AdminVmsPage;
use crate::pages::dashboard::DashboardPage;
use crate::pages::instance::InstancePage;
use crate::pages::key_pairs::KeyPairsPage;
use crate::pages::login::LoginPage;
use crate::pages::networks::NetworksPage;
use crate::pages::not_found::NotFoundPage;
use crate::pages::public_access::PublicAccessPage;
use crate::pages::security_groups::SecurityGroupsPage;
use crate::pages::tokens::TokensPage;
use crate::pages::usage::UsagePage;

/// The HTML document the server renders around the app.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="color-scheme" content="light"/>
                <HydrationScripts options/>
                // The console module, once per document: it wires every `VmConsole` that appears, on whatever
                // path the user took to the page (see web/console.js).
                <script type="module" src="/js/console.js"></script>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Stylesheet id="portal" href="/style/portal.css"/>
        // Registered here, outside every <Suspense>: leptos_meta only puts tags rendered in the first stream
        // chunk into the server-rendered <head>, and one registered inside a suspended page was missing from
        // about a third of full page loads. Small, and cached across pages.
        <Stylesheet id="console-css" href="/style/console.css"/>
        <Stylesheet id="responsive-css" href="/style/responsive.css"/>
        <Title formatter=|page: String| {
            if page.is_empty() { PRODUCT_NAME.to_string() } else { format!("{page} · {PRODUCT_NAME}") }
        }/>
        <Router>
            <Routes fallback=NotFoundPage>
                <Route path=path!("/login") view=LoginPage/>
                <ParentRoute path=path!("") view=AppLayout>
                    <Route path=path!("") view=DashboardPage/>
                    <Route path=path!("instances") view=DashboardPage/>
                    <Route path=path!("instances/:id") view=InstancePage/>
                    <Route path=path!("instances/:id/console") view=crate::pages::console::ConsolePage/>
                    <Route path=path!("networks") view=NetworksPage/>
                    <Route path=path!("security-groups") view=SecurityGroupsPage/>
                    <Route path=path!("public-access") view=PublicAccessPage/>
                    <Route path=path!("usage") view=UsagePage/>
                    <Route path=path!("tokens") view=TokensPage/>
                    <Route path=path!("key-pairs") view=KeyPairsPage/>
                    <Route path=path!("admin/vms") view=AdminVmsPage/>
                    <Route path=path!("account") view=AccountPage/>
                    <Route path=path!("admin/tenants") view=TenantsPage/>
                    <Route path=path!("admin/users") view=UsersPage/>
                    <Route path=path!("admin/flavors") view=FlavorsPage/>
                    <Route path=path!("admin/images") view=ImagesPage/>
                    <Route path=path!("admin/quotas") view=QuotasPage/>
                    <Route path=path!("admin/usage") view=AdminUsagePage/>
                    <Route path=path!("admin/audit") view=AuditPage/>
                    <Route path=path!("admin/host") view=HostPage/>
                </ParentRoute>
            </Routes>
        </Router>
    }
}
