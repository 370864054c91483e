//! The VM page's metrics panel: CPU %, memory and disk read/write rates over the last hour or day (or
//! week), as SVG drawn here (`metrics_chart.rs` computes the geometry). Refetched every 30 s in the
//! browser and whenever the VM changes state; the chosen range is a tab, not a page change.

use leptos::prelude::*;

use super::metrics_chart::{fmt_bytes, nice_max, path, HEIGHT, WIDTH};
use crate::api::metrics::get_vm_metrics;
use crate::error::AppError;
use crate::model::{MetricsRange, VmMetrics};

/// How often an open VM page fetches fresh points (the sampler's default step is 10 s).
#[cfg(feature = "hydrate")]
const REFRESH: std::time::Duration = std::time::Duration::from_secs(30);

#[component]
pub fn MetricsPanel(vm_id: String, changes: ReadSignal<u64>) -> impl IntoView {
    let range = RwSignal::new(MetricsRange::Hour);
    let refresh = RwSignal::new(0u64);
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        if let Ok(handle) = set_interval_with_handle(move || refresh.update(|n| *n += 1), REFRESH) {
            on_cleanup(move || handle.clear());
        }
    });
    let data = Resource::new(
        move || (vm_id.clone(), range.get(), changes.get(), refresh.get()),
        |(id, r, ..)| get_vm_metrics(id, r.as_str().to_string()),
    );
    let tab = move |r: MetricsRange, text: &'static str| {
        view! {
            <button type="button" class="btn btn-small"
                class:btn-primary=move || range.get() == r
                aria-pressed=move || if range.get() == r { "true" } else { "false" }
                data-testid=format!("metrics-range-{}", r.as_str())
                on:click=move |_| range.set(r)>{text}</button>
        }
    };
    view! {
        <section class="panel" data-testid="metrics-panel">
            <div class="panel-header panel-header-wrap">
                <h2>"Metrics"</h2>
                <div class="metrics-tabs" role="group" aria-label="Time range">
                    {tab(MetricsRange::Hour, "Hour")}
                    {tab(MetricsRange::Day, "Day")}
                    {tab(MetricsRange::Week, "Week")}
                </div>
            </div>
            <Transition fallback=|| view! { <p class="loading">"Loading metrics…"</p> }>
                {move || Suspend::new(async move {
                    match data.await {
                        Ok(m) => view! { <Charts m/> }.into_any(),
                        Err(AppError::NotFound { .. }) => ().into_any(),
                        Err(error) => view! { <super::ErrorBox error/> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

#[component]
fn Charts(m: VmMetrics) -> impl IntoView {
    if m.points.is_empty() {
        return view! {
            <p class="metrics-empty" data-testid="metrics-empty">
                "No samples in the " {m.range.label()} " yet: metrics are taken while the VM runs."
            </p>
        }
        .into_any();
    }
    let cpu: Vec<(i64, f64)> = m.points.iter().map(|p| (p.at, p.cpu_percent)).collect();
    let mem: Vec<(i64, f64)> = m.points.iter().map(|p| (p.at, p.memory_bytes as f64)).collect();
    let read: Vec<(i64, f64)> = m.points.iter().map(|p| (p.at, p.disk_read_bps)).collect();
    let write: Vec<(i64, f64)> = m.points.iter().map(|p| (p.at, p.disk_write_bps)).collect();
    let max = |s: &[(i64, f64)]| s.iter().map(|p| p.1).fold(0.0, f64::max);
    let cpu_top = nice_max(max(&cpu), false).min(100.0);
    let mem_top = nice_max(max(&mem), true);
    let disk_top = nice_max(max(&read).max(max(&write)), true);
    let last = m.points.last().copied();
    let now_cpu = last
        .map(|p| format!("{:.1} %", p.cpu_percent))
        .unwrap_or_default();
    let now_mem = last.map(|p| fmt_bytes(p.memory_bytes as f64)).unwrap_or_default();
    let now_disk = last
        .map(|p| {
            format!(
                "read {}/s, write {}/s",
                fmt_bytes(p.disk_read_bps),
                fmt_bytes(p.disk_write_bps)
            )
        })
        .unwrap_or_default();
    let (from, to, step) = (m.from, m.to, i64::from(m.step_secs));
    let n = m.points.len();
    view! {
        <div class="metrics-grid">
            <Chart name="cpu" title="CPU" now=now_cpu top=format!("{cpu_top:.0} %") label=m.range.label() points=n
                lines=vec![("line-cpu", path(&cpu, from, to, step, cpu_top))]/>
            <Chart name="memory" title="Memory" now=now_mem top=fmt_bytes(mem_top) label=m.range.label() points=n
                lines=vec![("line-memory", path(&mem, from, to, step, mem_top))]/>
            <Chart name="disk" title="Disk" now=now_disk top=format!("{}/s", fmt_bytes(disk_top))
                label=m.range.label() points=n
                lines=vec![
                    ("line-read", path(&read, from, to, step, disk_top)),
                    ("line-write", path(&write, from, to, step, disk_top)),
                ]/>
        </div>
    }
    .into_any()
}

/// One graph: a title with the latest value, the y-axis top, and one SVG path per line.
#[component]
fn Chart(
    name: &'static str,
    title: &'static str,
    now: String,
    top: String,
    label: &'static str,
    points: usize,
    lines: Vec<(&'static str, String)>,
) -> impl IntoView {
    let legend = (lines.len() > 1).then(|| {
        view! {
            <span class="metrics-legend">
                <span class="swatch line-read"></span>"read "
                <span class="swatch line-write"></span>"write"
            </span>
        }
    });
    let paths = lines
        .into_iter()
        .map(|(class, d)| view! { <path class=format!("metrics-line {class}") d=d/> })
        .collect_view();
    view! {
        <figure class="metrics-chart" data-testid=format!("metrics-chart-{name}")>
            <figcaption>
                <strong>{title}</strong>" "<span class="metrics-now">{now}</span>{legend}
            </figcaption>
            <div class="metrics-plot">
                <span class="metrics-top">{top}</span>
                <svg class="metrics-svg" viewBox=format!("0 0 {WIDTH} {HEIGHT}") preserveAspectRatio="none"
                    role="img" aria-label=format!("{title}, {label}") data-points=points.to_string()>
                    <line class="metrics-axis" x1="0" y1=HEIGHT.to_string() x2=WIDTH.to_string()
                        y2=HEIGHT.to_string()/>
                    <line class="metrics-grid-line" x1="0" y1="0" x2=WIDTH.to_string() y2="0"/>
                    {paths}
                </svg>
            </div>
            <p class="metrics-span">{label}</p>
        </figure>
    }
}
