//! Who may use the dashboard: whoever holds the token printed at start (Jupyter
//! style). `/orch/?token=T` sets it as an HttpOnly, SameSite=Strict cookie and
//! redirects to the page without it; every request without the cookie gets 401. The
//! cookie is named after the server's port (`orch_token_7321`), so two dashboards on
//! one host keep their own, and its path is the dashboard's (`/orch`), so other
//! services on the host (an agent's dev server on `ORCH_PORT`) are not sent it with
//! their own pages' requests. Redirects only ever go to a path of the dashboard.
//! State-changing requests are POSTs that must carry the page's CSRF token and come
//! from the dashboard's own origin.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use crate::state::AppState;

/// The path every page of the dashboard is under, and its cookie's path.
pub const BASE: &str = "/orch";

/// The name of the cookie that carries the token of the dashboard on `port`.
pub fn cookie_name(port: u16) -> String {
    format!("orch_token_{port}")
}

/// A random token: 128 bits from the operating system, as hex.
pub fn random_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A token given by the operator (for a URL that survives restarts): at least 16
/// characters, each safe in a URL and a cookie.
pub fn checked_token(t: String) -> Result<String, crate::state::WebError> {
    let safe = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    match t.len() >= 16 && t.chars().all(safe) {
        true => Ok(t),
        false => Err(crate::state::WebError::Token(t.chars().count())),
    }
}

/// Compares without stopping at the first difference.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

fn cookie_token<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Where a request for `path` may be sent on: the path itself when it is one of the
/// dashboard's, else the board. Never another host (`//evil.example/`), never a
/// path outside the dashboard.
fn local_path(path: &str) -> String {
    let ours = path.starts_with(&format!("{BASE}/"))
        && !path.contains("//")
        && !path.contains('\\')
        && !path.split('/').any(|c| c == "..");
    match ours {
        true => path.to_owned(),
        false => format!("{BASE}/"),
    }
}

/// The token check, before every handler.
pub(crate) async fn require_token(
    State(app): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let from_query = req.uri().query().and_then(|q| {
        q.split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == "token")
            .map(|(_, v)| v.to_owned())
    });
    if let Some(t) = from_query {
        if !same(&t, &app.token) {
            return unauthorized();
        }
        let cookie = format!("{}={t}; HttpOnly; SameSite=Strict; Path={BASE}", app.cookie);
        let mut r = Redirect::to(&local_path(req.uri().path())).into_response();
        if let Ok(v) = cookie.parse() {
            r.headers_mut().insert(header::SET_COOKIE, v);
        }
        return r;
    }
    if !req.uri().path().starts_with(&format!("{BASE}/")) {
        // The dashboard lives under BASE; an old bookmark of `/` finds it.
        return Redirect::to(&local_path(req.uri().path())).into_response();
    }
    match cookie_token(req.headers(), &app.cookie) {
        Some(t) if same(t, &app.token) => next.run(req).await,
        _ => unauthorized(),
    }
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "401: open the dashboard with the URL `orch serve` printed (it carries the token)\n",
    )
        .into_response()
}

/// Whether a POST may change state: its form's `csrf` is the page's, and its `Origin`
/// (which browsers send with every POST) is this server's.
pub(crate) fn csrf_ok(
    app: &AppState,
    headers: &HeaderMap,
    csrf: Option<&str>,
) -> Result<(), String> {
    if !csrf.is_some_and(|c| same(c, &app.csrf)) {
        return Err("the form's CSRF token is missing or stale: reload the page".into());
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if origin != format!("http://{host}") {
        return Err(format!(
            "the request came from {origin:?}, not from this dashboard (http://{host})"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_compared_whole() {
        let (a, b) = (random_token().unwrap(), random_token().unwrap());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert!(same(&a, &a.clone()));
        assert!(!same(&a, &b));
        assert!(!same(&a, &a[..31]));
    }

    #[test]
    fn redirects_stay_on_the_dashboard() {
        assert_eq!(local_path("/orch/runs/r1"), "/orch/runs/r1");
        for away in [
            "//evil.example/",
            "/orch//evil.example/",
            "/\\evil.example/",
            "/orch/../etc",
            "/",
            "/other",
        ] {
            assert_eq!(local_path(away), "/orch/", "{away}");
        }
    }
}
