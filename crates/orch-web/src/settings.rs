//! The settings page (`/settings`): the merged configuration, each key with its value
//! and where it came from, as `orch config show` prints it, read afresh; and a form
//! that sets a key in the repository's `orch.toml` through the same path as `orch
//! config set` (comments kept, the whole configuration checked first: a bad value is
//! refused on the page, naming what is allowed, and nothing is written). Secrets are
//! masked.

use std::fmt::Write as _;

use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use orch_engine::{OpenOptions, Repo};
use serde::Deserialize;

use crate::auth::csrf_ok;
use crate::html::esc;
use crate::pages::respond;
use crate::state::AppState;

/// A key set from the page.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct SetForm {
    csrf: Option<String>,
    key: Option<String>,
    value: Option<String>,
}

/// `GET /settings`.
pub(crate) async fn show(State(app): State<AppState>, headers: HeaderMap) -> Response {
    page(&app, &headers, None, None).await
}

/// `POST /settings`: one key into `orch.toml`.
pub(crate) async fn set(
    State(app): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<SetForm>,
) -> Response {
    if let Err(why) = csrf_ok(&app, &headers, f.csrf.as_deref()) {
        return (StatusCode::FORBIDDEN, why).into_response();
    }
    let key = f.key.unwrap_or_default();
    let value = f.value.unwrap_or_default();
    match app.repo.set_setting(key.trim(), &value) {
        Ok(_) => Redirect::to("/orch/settings").into_response(),
        Err(e) => {
            let tried = (key, value);
            let mut r = page(&app, &headers, Some(&e.to_string()), Some(&tried)).await;
            *r.status_mut() = StatusCode::CONFLICT;
            r
        }
    }
}

async fn page(
    app: &AppState,
    headers: &HeaderMap,
    refused: Option<&str>,
    tried: Option<&(String, String)>,
) -> Response {
    let seq = app.store.last_event_seq().await.unwrap_or(0);
    let (key, value) = tried.map_or(("", ""), |(k, v)| (k.as_str(), v.as_str()));
    let mut body = format!(
        "<h1>Settings</h1><p class=\"meta\">Layers, lowest first: defaults, your user file, the repository's <code>orch.toml</code>, <code>ORCH_*</code> variables. A key set here goes into <code>orch.toml</code>, its comments kept; a variable still wins over it.</p>\
         <form class=\"set\" method=\"post\" action=\"/orch/settings\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <input name=\"key\" list=\"keys\" placeholder=\"run.concurrency\" value=\"{}\" required> = \
         <input name=\"value\" placeholder=\"8\" value=\"{}\"> <button>set in orch.toml</button></form>",
        esc(&app.csrf),
        esc(key),
        esc(value)
    );
    if let Some(why) = refused {
        let _ = write!(
            body,
            "<p class=\"notice refused\" role=\"alert\">{}</p>",
            esc(why)
        );
    }
    // Read afresh: a key set a moment ago shows, as a new command would see it.
    match Repo::settings_of(app.repo.root(), &OpenOptions::default()) {
        Ok((_, settings)) => {
            let mut keys = String::from("<datalist id=\"keys\">");
            body.push_str(
                "<table class=\"settings\"><tr><th>key</th><th>value</th><th>from</th></tr>",
            );
            for e in settings.entries() {
                let shown = masked(&e.key, &e.value);
                let _ = write!(keys, "<option value=\"{}\">", esc(&e.key));
                let _ = write!(
                    body,
                    "<tr data-key=\"{k}\"><td><code>{k}</code></td><td><code>{}</code></td><td class=\"meta\">{}</td></tr>",
                    esc(&shown),
                    esc(&e.source),
                    k = esc(&e.key),
                );
            }
            body.push_str("</table>");
            keys.push_str("</datalist>");
            body.push_str(&keys);
        }
        Err(e) => {
            let _ = write!(
                body,
                "<p class=\"notice\">The configuration does not load: {}</p>",
                esc(&e.to_string())
            );
        }
    }
    respond(headers, ("Settings", "Settings"), None, body, seq)
}

/// A value as the page shows it: a password in a URL hidden, and a value under a name
/// that says it is secret (or a webhook, whose URL is its secret) only said to be set.
fn masked(key: &str, value: &serde_json::Value) -> String {
    let text = match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let secret = ["webhook", "token", "secret", "password", "api_key"]
        .iter()
        .any(|w| key.contains(w));
    match (secret, text.is_empty()) {
        (true, false) => "•••• (set; hidden)".to_owned(),
        _ => orch_store::redact(&text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked() {
        let url = serde_json::json!("postgres://orch:hunter2@db/orch");
        assert_eq!(masked("database_url", &url), "postgres://orch:***@db/orch");
        let hook = serde_json::json!("http://hooks.example/T000/secret-path");
        assert_eq!(masked("notify.webhook", &hook), "•••• (set; hidden)");
        assert_eq!(masked("notify.webhook", &serde_json::json!("")), "");
        assert_eq!(masked("run.concurrency", &serde_json::json!(4)), "4");
    }
}
