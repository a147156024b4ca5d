//! `/dashboard/`: the finance dashboard's files come from the binary, under a strict Content
//! Security Policy, and the page loads nothing the policy would refuse.

use crate::helpers::{problem, spawn_app};

const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// Every `attribute="..."` value in `html`.
fn attributes<'a>(html: &'a str, attribute: &str) -> Vec<&'a str> {
    let needle = format!("{attribute}=\"");
    html.match_indices(&needle)
        .filter_map(|(at, _)| {
            let rest = &html[at + needle.len()..];
            rest.find('"').map(|end| &rest[..end])
        })
        .collect()
}

#[tokio::test]
async fn the_page_and_its_files_are_served_under_a_strict_policy() {
    let app = spawn_app().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let redirect = client.get(app.url("/dashboard")).send().await.unwrap();
    assert_eq!(redirect.status(), 308);
    assert_eq!(redirect.headers()["location"], "/dashboard/");

    let page = client.get(app.url("/dashboard/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let headers = page.headers().clone();
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(headers["content-security-policy"], POLICY);
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    let html = page.text().await.unwrap();
    // No inline script or style: the policy would block them.
    assert_eq!(
        html.matches("<script").count(),
        attributes(&html, "src")
            .iter()
            .filter(|s| s.ends_with(".js"))
            .count(),
        "every script has a src"
    );
    assert!(!html.contains("<style"), "an inline stylesheet");
    assert!(!html.contains(" style=\""), "an inline style attribute");
    let handlers: Vec<&str> = html
        .match_indices("=\"")
        .map(|(at, _)| {
            let before = &html[..at];
            let start = before
                .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .map_or(0, |i| i + 1);
            &before[start..]
        })
        .filter(|name| name.starts_with("on"))
        .collect();
    assert!(handlers.is_empty(), "inline handlers: {handlers:?}");
    // Every file the page names is served from here, with its type.
    let mut named: Vec<&str> = attributes(&html, "src");
    named.extend(
        attributes(&html, "href")
            .into_iter()
            .filter(|h| h.ends_with(".css")),
    );
    assert!(named.len() >= 3, "{named:?}");
    for file in named {
        assert!(!file.contains("//"), "{file} is on another origin");
        let response = client
            .get(app.url(&format!("/dashboard/{file}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{file}");
        let kind = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        let expected = if file.ends_with(".css") {
            "text/css"
        } else {
            "text/javascript"
        };
        assert!(kind.starts_with(expected), "{file}: {kind}");
        assert_eq!(response.headers()["content-security-policy"], POLICY);
    }
    let licence = client
        .get(app.url("/dashboard/vendor/LICENSE.md"))
        .send()
        .await
        .unwrap();
    assert_eq!(licence.status(), 200);
    assert!(licence.text().await.unwrap().contains("MIT"));

    for missing in [
        "/dashboard/nope.js",
        "/dashboard/vendor/nope.js",
        "/dashboard/vendor/..%2f..%2fCargo.toml",
    ] {
        problem(
            client.get(app.url(missing)).send().await.unwrap(),
            404,
            "not_found",
        )
        .await;
    }
}
