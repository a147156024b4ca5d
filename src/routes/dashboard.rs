//! `/dashboard/`: the finance dashboard's files, compiled into the binary, so that running
//! tollgate needs nothing else. The page talks only to this origin, under a strict Content
//! Security Policy: no inline script or style, no other origin.

use actix_web::http::header::{self, CacheControl, CacheDirective};
use actix_web::{HttpResponse, web};

use crate::http::error::ApiError;

/// Every file served: its path under `/dashboard/`, its media type and its bytes.
const FILES: [(&str, &str, &[u8]); 6] = [
    (
        "index.html",
        "text/html; charset=utf-8",
        include_bytes!("../../dashboard/public/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../dashboard/public/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../../dashboard/public/app.css"),
    ),
    (
        "vendor/chart.umd.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../dashboard/public/vendor/chart.umd.min.js"),
    ),
    (
        "vendor/LICENSE.md",
        "text/markdown; charset=utf-8",
        include_bytes!("../../dashboard/public/vendor/LICENSE.md"),
    ),
    (
        "vendor/README.md",
        "text/markdown; charset=utf-8",
        include_bytes!("../../dashboard/public/vendor/README.md"),
    ),
];

/// What the page may load and do: its own scripts, styles and API, nothing else.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

fn serve(name: &str) -> Result<HttpResponse, ApiError> {
    let (_, media_type, bytes) = FILES
        .iter()
        .find(|(path, _, _)| *path == name)
        .ok_or_else(|| ApiError::NotFound("the dashboard has no such file".into()))?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, *media_type))
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        // Files change with the binary: the browser asks again each time.
        .insert_header(CacheControl(vec![CacheDirective::NoCache]))
        .body(*bytes))
}

/// `/dashboard` without its slash: the page's relative links need it.
pub async fn redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "/dashboard/"))
        .finish()
}

/// The page.
pub async fn index() -> Result<HttpResponse, ApiError> {
    serve("index.html")
}

/// One of the page's own files.
pub async fn file(name: web::Path<String>) -> Result<HttpResponse, ApiError> {
    serve(&name)
}

/// One of the vendored library's files.
pub async fn vendor_file(name: web::Path<String>) -> Result<HttpResponse, ApiError> {
    serve(&format!("vendor/{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_of_the_page_is_served_and_nothing_else() {
        let on_disk: Vec<String> = ["", "vendor/"]
            .iter()
            .flat_map(|dir| {
                let path = format!("{}/dashboard/public/{dir}", env!("CARGO_MANIFEST_DIR"));
                std::fs::read_dir(path)
                    .unwrap()
                    .filter_map(Result::ok)
                    .filter(|e| e.file_type().unwrap().is_file())
                    .map(move |e| format!("{dir}{}", e.file_name().to_string_lossy()))
            })
            .collect();
        let mut served: Vec<String> = FILES.iter().map(|(p, _, _)| (*p).to_owned()).collect();
        let mut on_disk = on_disk;
        served.sort();
        on_disk.sort();
        assert_eq!(served, on_disk);
        assert!(serve("../Cargo.toml").is_err());
    }
}
