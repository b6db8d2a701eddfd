//! Security headers on every response, and the page's Content-Security-Policy.
//!
//! Pages get a CSP that allows only this origin's scripts plus the one inline hydration script
//! Leptos marks with a per-response nonce, and WebAssembly compilation. Every other response
//! (API answers, static files, errors) gets a CSP that allows nothing, so a response that is
//! somehow interpreted as a document cannot run anything either.

use axum::{
    http::{header, HeaderMap, HeaderName, HeaderValue},
    response::Response,
};
use leptos::prelude::use_context;

/// What any document from this server may not do, on top of its CSP.
const COMMON: [(HeaderName, &str); 5] = [
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::REFERRER_POLICY, "no-referrer"),
    (
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    ),
    (
        HeaderName::from_static("permissions-policy"),
        "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
    ),
];

/// For responses that are not pages.
const LOCKED_DOWN_CSP: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'";

/// The policy of a rendered page whose inline scripts carry `nonce`.
pub fn page_policy(nonce: &str, live_reload: Option<&str>) -> String {
    let reload = live_reload.map(|r| format!(" {r}")).unwrap_or_default();
    format!(
        "default-src 'self'; \
         script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
         style-src 'self'; style-src-attr 'unsafe-inline'; \
         img-src 'self' data:; \
         connect-src 'self'{reload}; \
         object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
}

/// Called while a page renders (inside leptos_axum's request context): sets the page's CSP
/// with this response's nonce.
pub fn set_page_policy() {
    let (Some(nonce), Some(response)) = (
        leptos::nonce::use_nonce(),
        use_context::<leptos_axum::ResponseOptions>(),
    ) else {
        return;
    };
    // `cargo leptos watch` injects a live-reload script that talks to its own port.
    let reload = std::env::var("LEPTOS_WATCH").ok().map(|_| {
        let port = std::env::var("LEPTOS_RELOAD_PORT").unwrap_or_else(|_| "3001".into());
        format!("ws://127.0.0.1:{port} ws://localhost:{port}")
    });
    if let Ok(value) = HeaderValue::from_str(&page_policy(&nonce, reload.as_deref())) {
        response.insert_header(header::CONTENT_SECURITY_POLICY, value);
    }
}

/// Middleware body: adds the common headers, and the locked-down CSP where the response set
/// none.
pub async fn add_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in COMMON {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(LOCKED_DOWN_CSP));
    response
}

/// Browsers send `Origin` on WebSocket upgrades and on cross-origin (and most same-origin)
/// POSTs; it must be the configured public origin, or else the request's own scheme
/// (`http`, or `https` when a proxy says so in `X-Forwarded-Proto`) and Host. Clients that send no Origin are not browsers and cannot be used by
/// another site this way (they still need a session).
pub fn origin_allowed(headers: &HeaderMap, public_origin: Option<&str>) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    match public_origin {
        Some(allowed) => origin == allowed,
        None => {
            let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
                return false;
            };
            // This server speaks plain HTTP; behind a TLS proxy the page is https, which the
            // proxy says with `X-Forwarded-Proto` (a browser cannot add that header to a
            // WebSocket upgrade or a form post from another site).
            let scheme = match headers
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
            {
                Some(p) if p.eq_ignore_ascii_case("https") => "https://",
                _ => "http://",
            };
            origin.strip_prefix(scheme) == Some(host)
        }
    }
}

/// Whether a browser says the request comes from another site (`Sec-Fetch-Site`), whatever
/// its Origin header says.
pub fn cross_site(headers: &HeaderMap) -> bool {
    headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes() == b"cross-site")
}

/// Responses about who is signed in (the auth endpoints) are never stored by a browser or
/// a proxy: a shared cache must not hand one person's identity to another.
pub async fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(origin: Option<&'static str>, host: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static(host));
        if let Some(o) = origin {
            h.insert(header::ORIGIN, HeaderValue::from_static(o));
        }
        h
    }

    #[test]
    fn only_same_or_configured_origins_are_allowed() {
        let host = "127.0.0.1:3000";
        assert!(origin_allowed(
            &headers(Some("http://127.0.0.1:3000"), host),
            None
        ));
        assert!(origin_allowed(&headers(None, host), None));
        assert!(!origin_allowed(
            &headers(Some("http://evil.example"), host),
            None
        ));
        assert!(!origin_allowed(
            &headers(Some("http://127.0.0.1:3001"), host),
            None
        ));
        let public = Some("https://chat.example.com");
        assert!(origin_allowed(
            &headers(Some("https://chat.example.com"), host),
            public
        ));
        assert!(!origin_allowed(
            &headers(Some("http://chat.example.com"), host),
            public
        ));
        // The scheme counts: an https page at this host is another origin, unless a TLS
        // proxy in front says the request came over https.
        assert!(!origin_allowed(
            &headers(Some("https://127.0.0.1:3000"), host),
            None
        ));
        let mut proxied = headers(Some("https://127.0.0.1:3000"), host);
        proxied.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        assert!(origin_allowed(&proxied, None));
        let mut plain_page = headers(Some("http://127.0.0.1:3000"), host);
        plain_page.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        assert!(!origin_allowed(&plain_page, None));
        let mut h = headers(None, host);
        assert!(!cross_site(&h));
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(cross_site(&h));
    }

    #[test]
    fn the_page_policy_allows_only_the_nonced_inline_script() {
        let p = page_policy("abc", None);
        assert!(p.contains("script-src 'self' 'nonce-abc' 'wasm-unsafe-eval';"));
        let scripts = p
            .split(';')
            .find(|d| d.trim().starts_with("script-src"))
            .unwrap();
        assert!(!scripts.contains("unsafe-inline"), "no inline scripts: {p}");
        assert!(p.contains("frame-ancestors 'none'"));
        assert!(page_policy("abc", Some("ws://127.0.0.1:3001")).contains("ws://127.0.0.1:3001"));
    }
}
