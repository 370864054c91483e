//! `/admin/images`: bootable images — list, upload (kernel, initramfs, optional root disk; streamed to the
//! server under a size limit and checked before it is registered) and delete unused ones.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::catalogue::DeleteImage;
use crate::api::vms::list_images;
use crate::components::{action_error, fmt_time, AdminOnly, ErrorBox, FormError, PageHeader};
use crate::model::ImageView;

#[component]
pub fn ImagesPage() -> impl IntoView {
    view! {
        <Title text="Images"/>
        <PageHeader title="Images" subtitle="What tenants can boot: a kernel, an initramfs and optionally a root disk."/>
        <AdminOnly>
            <Images/>
        </AdminOnly>
    }
}

/// Human size: KiB/MiB/GiB.
fn fmt_bytes(n: i64) -> String {
    let n = n as f64;
    if n >= 1024.0 * 1024.0 * 1024.0 {
        format!("{:.1} GiB", n / (1024.0 * 1024.0 * 1024.0))
    } else if n >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", n / (1024.0 * 1024.0))
    } else {
        format!("{:.0} KiB", n / 1024.0)
    }
}

#[component]
fn Images() -> impl IntoView {
    let delete = ServerAction::<DeleteImage>::new();
    let uploaded = RwSignal::new(0u32);
    let images = Resource::new(
        move || (delete.version().get(), uploaded.get()),
        |_| list_images(),
    );
    let delete_error = action_error(delete);
    view! {
        <UploadForm uploaded/>
        <section class="panel">
            <div class="panel-header"><h2>"All images"</h2></div>
            <FormError error=delete_error/>
            <Transition fallback=|| view! { <p class="loading">"Loading images…"</p> }>
                {move || Suspend::new(async move {
                    match images.await {
                        Ok(list) => view! { <ImageTable list delete/> }.into_any(),
                        Err(error) => view! { <ErrorBox error/> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

/// Posts the form as multipart to `/api/v1/images` with the session cookie (the browser streams the files).
#[component]
fn UploadForm(uploaded: RwSignal<u32>) -> impl IntoView {
    let status = RwSignal::new(None::<Result<String, String>>);
    let busy = RwSignal::new(false);
    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        #[cfg(feature = "hydrate")]
        {
            use wasm_bindgen::JsCast;
            let Some(form) = ev
                .target()
                .and_then(|t| t.dyn_into::<web_sys::HtmlFormElement>().ok())
            else {
                return;
            };
            busy.set(true);
            status.set(None);
            leptos::task::spawn_local(async move {
                let result = upload(&form).await;
                if result.is_ok() {
                    form.reset();
                    uploaded.update(|n| *n += 1);
                }
                status.set(Some(result));
                busy.set(false);
            });
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = (busy, uploaded);
    };
    view! {
        <section class="panel">
            <div class="panel-header"><h2>"Upload an image"</h2></div>
            <form on:submit=on_submit data-testid="upload-image">
                <div class="form-row">
                    <div class="field"><label for="img-name">"Name"</label><input id="img-name" name="name" required=true/></div>
                    <div class="field"><label for="img-os">"OS label"</label><input id="img-os" name="os" required=true placeholder="e.g. Alpine 3.20"/></div>
                    <div class="field"><label for="img-cmdline">"Kernel command line"</label>
                        <input id="img-cmdline" name="cmdline" placeholder="console=ttyS0 reboot=k panic=-1"/></div>
                </div>
                <div class="form-row">
                    <div class="field"><label for="img-kernel">"Kernel (vmlinux ELF or bzImage)"</label>
                        <input id="img-kernel" name="kernel" type="file" required=true/></div>
                    <div class="field"><label for="img-initrd">"Initramfs"<span class="optional">" (optional)"</span></label>
                        <input id="img-initrd" name="initrd" type="file"/></div>
                    <div class="field"><label for="img-root">"Root disk (raw)"<span class="optional">" (optional)"</span></label>
                        <input id="img-root" name="root_disk" type="file"/></div>
                    <div class="form-actions">
                        <button type="submit" class="btn btn-primary" disabled=move || busy.get()>
                            {move || if busy.get() { "Uploading…" } else { "Upload" }}
                        </button>
                    </div>
                </div>
            </form>
            {move || status.get().map(|r| match r {
                Ok(name) => view! { <div class="alert alert-success" role="status">"Image “"{name}"” registered."</div> }.into_any(),
                Err(msg) => view! { <div class="alert alert-error" role="alert">{msg}</div> }.into_any(),
            })}
        </section>
    }
}

#[cfg(feature = "hydrate")]
async fn upload(form: &web_sys::HtmlFormElement) -> Result<String, String> {
    use wasm_bindgen::JsCast;
    use wasm_bindgen_futures::JsFuture;
    let fail = |_| "The upload failed; check your connection and try again.".to_string();
    let data = web_sys::FormData::new_with_form(form).map_err(fail)?;
    let init = web_sys::RequestInit::new();
    init.set_method("POST");
    init.set_body(&data);
    let request = web_sys::Request::new_with_str_and_init("/api/v1/images", &init).map_err(fail)?;
    let response: web_sys::Response = JsFuture::from(window().fetch_with_request(&request))
        .await
        .map_err(fail)?
        .dyn_into()
        .map_err(fail)?;
    let text = JsFuture::from(response.text().map_err(fail)?)
        .await
        .map_err(fail)?;
    let body: serde_json::Value =
        serde_json::from_str(&text.as_string().unwrap_or_default()).unwrap_or_default();
    if response.ok() {
        Ok(body["name"].as_str().unwrap_or_default().to_string())
    } else {
        Err(body["error"]["message"]
            .as_str()
            .unwrap_or("The upload was refused.")
            .to_string())
    }
}

#[component]
fn ImageTable(list: Vec<ImageView>, delete: ServerAction<DeleteImage>) -> impl IntoView {
    let rows = list
        .into_iter()
        .map(|i| {
            let id = i.id.clone();
            view! {
                <tr data-testid="image-row">
                    <td class="strong">{i.name.clone()}{i.is_test.then(|| view! { <span class="tag">"test"</span> })}</td>
                    <td>{i.os.clone()}</td>
                    <td><code class="small">{i.cmdline.clone()}</code></td>
                    <td>{if i.owner_tenant_id.is_some() { "one tenant" } else { "public" }}</td>
                    <td>{fmt_bytes(i.size_bytes)}</td>
                    <td>{fmt_time(&i.created_at)}</td>
                    <td class="actions">
                        <button type="button" class="btn btn-small btn-danger-outline"
                            on:click=move |_| { delete.dispatch(DeleteImage { id: id.clone() }); }>"Delete"</button>
                    </td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <table class="table" data-testid="images-table">
            <thead><tr><th>"Name"</th><th>"OS"</th><th>"Command line"</th><th>"Visibility"</th><th>"Size"</th>
                <th>"Added"</th><th class="actions">"Actions"</th></tr></thead>
            <tbody>{rows}</tbody>
        </table>
    }
}
