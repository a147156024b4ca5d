//! Institutional licences: what an admin may make of them (and the overlaps refused, however
//! many are made at once, on however many instances); `access` has the readers they admit, by
//! address or by seat, and their usage report.

mod access;

use base64::Engine;
use futures_util::future::join_all;
use reqwest::Response;
use serde_json::{Value, json};

use crate::helpers::{TestApp, problem, spawn_app};

/// The campus licence of these tests: `10.0.0.0/8` and `2001:db8::/32`, `example.edu`, 3 seats.
pub(super) fn campus() -> Value {
    json!({
        "name": "University of Example",
        "entitlements": ["articles", "reports"],
        "ip_ranges": ["10.1.2.3/8", "2001:db8::/32"],
        "email_domains": ["example.edu"],
        "seats": 3,
        "expires_at": "2027-12-31T00:00:00Z",
    })
}

impl TestApp {
    pub(super) async fn post_licence(&self, body: &Value) -> Response {
        self.client
            .post(self.url("/v1/licences"))
            .bearer_auth(&self.admin_key)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub(super) async fn licence(&self, body: &Value) -> Value {
        let response = self.post_licence(body).await;
        assert_eq!(response.status(), 201, "{body}");
        response.json().await.unwrap()
    }

    pub(super) async fn patch_licence(&self, id: &str, body: &Value) -> Response {
        self.client
            .patch(self.url(&format!("/v1/licences/{id}")))
            .bearer_auth(&self.admin_key)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub(super) async fn claim(&self, reader: &str, email: &str) -> Response {
        self.client
            .post(self.url(&format!("/v1/readers/{reader}/licence-claims")))
            .bearer_auth(&self.admin_key)
            .json(&json!({ "email": email }))
            .send()
            .await
            .unwrap()
    }

    /// A `service` key that may assert readers' addresses.
    pub(super) async fn address_key(&self) -> String {
        let response = self
            .create_key(
                &self.admin_key,
                json!({ "role": "service", "name": "campus proxy", "may_assert_ip": true }),
            )
            .await;
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["may_assert_ip"], true);
        body["key"].as_str().unwrap().to_owned()
    }

    pub(super) async fn access_with(&self, key: &str, body: Value) -> Response {
        self.client
            .post(self.url("/v1/access"))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap()
    }
}

/// The claims of a JWT, read without verifying it (the token tests verify).
pub(super) fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn a_licence_is_made_normalised_read_changed_and_deleted() {
    let app = spawn_app().await;
    let made = app.licence(&campus()).await;
    let id = made["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("lic_"), "{made}");
    assert_eq!(made["ip_ranges"], json!(["10.0.0.0/8", "2001:db8::/32"]));
    assert_eq!(made["email_domains"], json!(["example.edu"]));
    assert_eq!(made["entitlements"], json!(["articles", "reports"]));
    assert_eq!(made["seats"], 3);
    assert_eq!(made["members"], 0);
    // Without `starts_at`, in force from now.
    assert_eq!(made["starts_at"], made["created_at"]);

    assert_eq!(
        app.get_json(&format!("/v1/licences/{id}"), Some(&app.admin_key))
            .await,
        made
    );
    let listed = app.get_json("/v1/licences", Some(&app.admin_key)).await;
    assert_eq!(listed["items"], json!([made]));

    let response = app
        .patch_licence(&id, &json!({ "seats": null, "name": "Example University" }))
        .await;
    assert_eq!(response.status(), 200);
    let changed: Value = response.json().await.unwrap();
    assert_eq!(changed["seats"], Value::Null);
    assert_eq!(changed["name"], "Example University");
    assert_eq!(changed["ip_ranges"], made["ip_ranges"]);

    let deleted = app
        .client
        .delete(app.url(&format!("/v1/licences/{id}")))
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    problem(
        app.get(&format!("/v1/licences/{id}"), Some(&app.admin_key))
            .await,
        404,
        "not_found",
    )
    .await;
    // Its address and domain are free again.
    app.licence(&campus()).await;
}

#[tokio::test]
async fn ranges_and_domains_in_force_at_the_same_time_are_refused_in_every_form() {
    let app = spawn_app().await;
    let first = app.licence(&campus()).await;
    let other = first["id"].as_str().unwrap();
    for (ranges, domains) in [
        (json!(["10.1.2.3/32"]), json!([])),
        (json!(["10.200.0.0/16"]), json!([])),
        (json!(["::ffff:10.9.9.9"]), json!([])),
        (json!(["2001:db8:1::/48"]), json!([])),
        (json!(["2001::/16"]), json!([])),
    ] {
        let mut body = campus();
        body["ip_ranges"] = ranges.clone();
        body["email_domains"] = domains;
        let refused = problem(app.post_licence(&body).await, 409, "ip_range_overlap").await;
        assert!(
            refused["detail"].as_str().unwrap().contains(other),
            "{ranges}: {refused}"
        );
    }
    let mut same_domain = campus();
    same_domain["ip_ranges"] = json!([]);
    problem(
        app.post_licence(&same_domain).await,
        409,
        "email_domain_taken",
    )
    .await;
    // The same addresses once the first has ended, and neighbouring ones now, are fine.
    let mut later = campus();
    later["starts_at"] = json!("2027-12-31T00:00:00Z");
    later["expires_at"] = json!("2028-12-31T00:00:00Z");
    app.licence(&later).await;
    app.licence(&json!({
        "name": "Neighbour",
        "entitlements": ["articles"],
        "ip_ranges": ["11.0.0.0/8", "2001:db9::/32"],
        "email_domains": ["example.ac.uk"],
        "expires_at": "2027-01-01T00:00:00Z",
    }))
    .await;
    // A change that would overlap is refused too, and changes nothing.
    let neighbour = app.get_json("/v1/licences", Some(&app.admin_key)).await["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "Neighbour")
        .unwrap()
        .clone();
    let id = neighbour["id"].as_str().unwrap();
    problem(
        app.patch_licence(id, &json!({ "ip_ranges": ["10.0.0.1"] }))
            .await,
        409,
        "ip_range_overlap",
    )
    .await;
    assert_eq!(
        app.get_json(&format!("/v1/licences/{id}"), Some(&app.admin_key))
            .await,
        neighbour
    );
}

#[tokio::test]
async fn bad_licences_are_refused_and_nothing_is_stored() {
    let app = spawn_app().await;
    let mut cases = Vec::new();
    for (field, value) in [
        ("email_domains", json!(["edu"])),
        ("email_domains", json!(["ac.uk"])),
        ("email_domains", json!(["dept.example.edu"])),
        ("email_domains", json!(["Example.EDU"])),
        ("ip_ranges", json!(["10.0.0.0/33"])),
        ("ip_ranges", json!(["example.edu"])),
        ("seats", json!(0)),
        ("entitlements", json!([])),
        ("name", json!(" ")),
        ("expires_at", json!("2020-01-01T00:00:00Z")),
        ("unknown", json!(1)),
    ] {
        let mut body = campus();
        body[field] = value;
        cases.push(body);
    }
    let mut nobody = campus();
    nobody["ip_ranges"] = json!([]);
    nobody["email_domains"] = json!([]);
    cases.push(nobody);
    for body in cases {
        problem(app.post_licence(&body).await, 422, "invalid_body").await;
    }
    let listed = app.get_json("/v1/licences", Some(&app.admin_key)).await;
    assert_eq!(listed["items"], json!([]));
    // Only admins manage licences.
    let (_, service) = app.new_key("service").await;
    let response = app
        .client
        .post(app.url("/v1/licences"))
        .bearer_auth(&service)
        .json(&campus())
        .send()
        .await
        .unwrap();
    problem(response, 403, "forbidden").await;
}

#[tokio::test]
async fn of_overlapping_licences_made_at_once_on_two_instances_exactly_one_is_stored() {
    let app = spawn_app().await;
    let other = app.second_instance().await;
    let attempts = (0..8).map(|n| {
        let mut body = campus();
        body["name"] = json!(format!("Campus {n}"));
        body["ip_ranges"] = json!([format!("10.{n}.0.0/16"), "10.0.0.0/8"]);
        body["email_domains"] = json!([]);
        // Half of them through each instance on the one database.
        let base = if n % 2 == 0 {
            app.address.clone()
        } else {
            other.clone()
        };
        let app = &app;
        async move {
            app.client
                .post(format!("{base}/v1/licences"))
                .bearer_auth(&app.admin_key)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    });
    let mut statuses = join_all(attempts).await;
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 409, 409, 409, 409, 409, 409, 409]);
    let listed = app.get_json("/v1/licences", Some(&app.admin_key)).await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
}
