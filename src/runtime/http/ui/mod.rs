//! The pages for people (DESIGN §6): the dashboard at `GET /` and one page per
//! object under `/ui/`. Server-rendered from the same snapshot `/status`
//! serves, with no outside asset and no build step: plain HTML tables that a
//! text browser reads, a little inline CSS (light and dark), and an inline
//! script that only counts down and reloads.
//!
//! Rendering is a pure function of the snapshot and `now`; the handlers only
//! take the read lock and add the headers.

mod dashboard;
mod detail;
mod fleet;
mod html;
mod page;
mod parts;
mod scheduled;
mod time;

#[cfg(test)]
mod tests;

use std::time::SystemTime;

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::HttpState;
use crate::runtime::status::StatusSnapshot;

pub use page::CSP;

/// Render with the snapshot under the read lock: no await in between, and no
/// clone of every service for each request.
fn with_snapshot<T>(state: &HttpState, f: impl FnOnce(&StatusSnapshot) -> T) -> T {
    let snapshot = state.status.read().unwrap_or_else(|e| e.into_inner());
    f(&snapshot)
}

fn html(code: StatusCode, body: String) -> Response {
    (
        code,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CSP),
            ),
            // A status page is stale the moment it is cached.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
        ],
        body,
    )
        .into_response()
}

pub async fn dashboard(State(state): State<HttpState>) -> Response {
    let now = SystemTime::now();
    html(
        StatusCode::OK,
        with_snapshot(&state, |s| dashboard::render(s, now)),
    )
}

pub async fn service(
    State(state): State<HttpState>,
    Path((cluster, name)): Path<(String, String)>,
) -> Response {
    let now = SystemTime::now();
    match with_snapshot(&state, |s| detail::service(s, &cluster, &name, now)) {
        Some(body) => html(StatusCode::OK, body),
        None => html(
            StatusCode::NOT_FOUND,
            detail::not_found(&format!("Service {cluster}/{name}"), now),
        ),
    }
}

pub async fn instance(State(state): State<HttpState>, Path(id): Path<String>) -> Response {
    let now = SystemTime::now();
    match with_snapshot(&state, |s| detail::instance(s, &id, now)) {
        Some(body) => html(StatusCode::OK, body),
        None => html(
            StatusCode::NOT_FOUND,
            detail::not_found(&format!("Instance {id}"), now),
        ),
    }
}
