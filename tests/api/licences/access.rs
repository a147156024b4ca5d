//! Readers admitted by a licence: by the address they read from, only through keys that may
//! assert one, and by a seat claimed by e-mail domain, never more than there are; and the usage
//! report that counts them.

use futures_util::future::join_all;
use serde_json::{Value, json};

use super::{campus, claims};
use crate::helpers::{problem, spawn_app};

#[tokio::test]
async fn a_reader_at_a_licensed_address_reads_by_licence_without_the_meter() {
    let app = spawn_app().await;
    let licence = app.licence(&campus()).await;
    let key = app.address_key().await;

    let answer = app
        .access_with(
            &key,
            json!({ "reader_id": "ana", "article_id": "a1", "ip": "10.20.30.40" }),
        )
        .await;
    assert_eq!(answer.status(), 200);
    let decision: Value = answer.json().await.unwrap();
    assert_eq!(decision["granted"], true);
    assert_eq!(decision["reason"], "licensed");
    assert_eq!(decision["licence_id"], licence["id"]);
    assert_eq!(decision["meter"], Value::Null);
    let token = claims(decision["token"].as_str().unwrap());
    assert_eq!(token["lic"], licence["id"]);
    assert_eq!(token["art"], "a1");
    // The meter was not used, and the licence gives `reports` too, which the meter never does.
    assert_eq!(app.reader("ana").await["meter"]["used"], 0);
    let report: Value = app
        .access_with(
            &key,
            json!({ "reader_id": "ana", "article_id": "weekly", "requires": "reports", "ip": "2001:db8::7" }),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(report["reason"], "licensed");
    // An anonymous visitor on campus, by its IPv4-mapped address too.
    let device: Value = app
        .access_with(
            &key,
            json!({ "device_id": "d-1", "article_id": "a2", "ip": "::ffff:10.0.0.9" }),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(device["reason"], "licensed");
    assert_eq!(
        claims(device["token"].as_str().unwrap())["sub_type"],
        "device"
    );
    // Off campus, the meter as usual.
    let off: Value = app
        .access_with(
            &key,
            json!({ "reader_id": "ana", "article_id": "a3", "ip": "192.0.2.1" }),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(off["reason"], "metered");
    assert!(off.get("licence_id").is_none(), "{off}");
    assert!(
        app.captured_logs().contains("access granted by licence"),
        "licensed decisions are logged"
    );
}

#[tokio::test]
async fn only_a_key_made_to_assert_addresses_may_send_one() {
    let app = spawn_app().await;
    app.licence(&campus()).await;
    let (_, plain) = app.new_key("service").await;
    for key in [plain.as_str(), app.admin_key.as_str()] {
        let response = app
            .access_with(
                key,
                json!({ "reader_id": "ben", "article_id": "a1", "ip": "10.0.0.1" }),
            )
            .await;
        problem(response, 403, "ip_assertion_not_allowed").await;
        let token = app
            .client
            .post(app.url("/v1/tokens"))
            .bearer_auth(key)
            .json(&json!({ "reader_id": "ben", "ip": "10.0.0.1" }))
            .send()
            .await
            .unwrap();
        problem(token, 403, "ip_assertion_not_allowed").await;
    }
    // Nothing was counted.
    assert_eq!(app.reader("ben").await["meter"]["used"], 0);
    // The key listing says which keys may.
    let key = app.address_key().await;
    let listed = app.get_json("/v1/keys", Some(&app.admin_key)).await;
    let mut flags: Vec<(&str, bool)> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["name"].as_str().unwrap(),
                k["may_assert_ip"].as_bool().unwrap(),
            )
        })
        .collect();
    flags.sort_unstable();
    assert_eq!(
        flags,
        [
            ("campus proxy", true),
            ("service key", false),
            ("test admin", false)
        ]
    );
    // A malformed address is a 422 even from a key that may send one.
    let bad = app
        .access_with(
            &key,
            json!({ "reader_id": "ben", "article_id": "a1", "ip": "10.0.0.300" }),
        )
        .await;
    problem(bad, 422, "invalid_body").await;
}

#[tokio::test]
async fn a_licence_admits_only_between_its_dates() {
    let app = spawn_app().await;
    let key = app.address_key().await;
    let mut later = campus();
    later["starts_at"] = json!("2026-12-01T00:00:00Z");
    later["expires_at"] = json!("2026-12-02T00:00:00Z");
    app.licence(&later).await;
    let ask = |article: &'static str| {
        let (app, key) = (&app, &key);
        async move {
            let decision: Value = app
                .access_with(
                    key,
                    json!({ "reader_id": "cy", "article_id": article, "ip": "10.0.0.1" }),
                )
                .await
                .json()
                .await
                .unwrap();
            decision["reason"].as_str().unwrap().to_owned()
        }
    };
    // Before it starts (the test clock shows 2026-11-23).
    assert_eq!(ask("a1").await, "metered");
    app.clock.advance(chrono::Duration::days(8));
    assert_eq!(ask("a2").await, "licensed");
    app.clock.advance(chrono::Duration::days(2));
    assert_eq!(ask("a3").await, "metered");
}

#[tokio::test]
async fn a_token_request_from_a_licensed_address_names_the_licence_but_the_token_does_not_carry_it()
{
    let app = spawn_app().await;
    let licence = app.licence(&campus()).await;
    let key = app.address_key().await;
    let response = app
        .client
        .post(app.url("/v1/tokens"))
        .bearer_auth(&key)
        .json(&json!({ "reader_id": "dee", "ip": "10.0.0.1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let issued: Value = response.json().await.unwrap();
    assert_eq!(issued["licence"]["licence_id"], licence["id"]);
    assert_eq!(
        issued["licence"]["entitlements"],
        json!(["articles", "reports"])
    );
    assert_eq!(issued["entitlements"], json!([]));
    assert_eq!(claims(issued["token"].as_str().unwrap())["ent"], json!([]));
}

#[tokio::test]
async fn a_seat_claimed_by_email_domain_gives_the_licence_until_it_is_freed() {
    let app = spawn_app().await;
    let licence = app.licence(&campus()).await;
    let id = licence["id"].as_str().unwrap();

    let claimed = app.claim("eve", "Eve@Dept.Example.EDU").await;
    assert_eq!(claimed.status(), 201);
    let body: Value = claimed.json().await.unwrap();
    assert_eq!(body["members"], 1);
    // Claiming again changes nothing.
    assert_eq!(app.claim("eve", "eve@example.edu").await.status(), 200);
    assert_eq!(app.entitlements("eve").await, ["articles", "reports"]);
    let reader = app.reader("eve").await;
    assert_eq!(reader["entitlements"][0]["sources"][0]["kind"], "licence");
    assert_eq!(reader["entitlements"][0]["sources"][0]["id"], id);
    assert_eq!(app.read("eve", "a1").await["reason"], "entitled");

    let members = app
        .get_json(&format!("/v1/licences/{id}/members"), Some(&app.admin_key))
        .await;
    assert_eq!(members["items"][0]["reader_id"], "eve");
    assert_eq!(members["items"][0]["email_domain"], "example.edu");

    let freed = app
        .client
        .delete(app.url(&format!("/v1/licences/{id}/members/eve")))
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(freed.status(), 204);
    assert!(app.entitlements("eve").await.is_empty());
    assert_eq!(app.read("eve", "a2").await["reason"], "metered");
    let licence = app
        .get_json(&format!("/v1/licences/{id}"), Some(&app.admin_key))
        .await;
    assert_eq!(licence["members"], 0);

    problem(app.claim("fay", "fay@other.edu").await, 404, "not_found").await;
    problem(app.claim("fay", "fay@ac.uk").await, 422, "invalid_email").await;
    problem(app.claim("fay", "no-domain").await, 422, "invalid_email").await;
}

#[tokio::test]
async fn of_many_claims_at_once_exactly_the_free_seats_are_taken() {
    let app = spawn_app().await;
    let licence = app.licence(&campus()).await;
    let id = licence["id"].as_str().unwrap();
    let claims = (0..12).map(|n| {
        let app = &app;
        async move {
            app.claim(&format!("student-{n}"), &format!("s{n}@example.edu"))
                .await
                .status()
                .as_u16()
        }
    });
    let mut statuses = join_all(claims).await;
    statuses.sort_unstable();
    assert_eq!(
        statuses,
        [201, 201, 201, 409, 409, 409, 409, 409, 409, 409, 409, 409]
    );
    let members = app
        .get_json(&format!("/v1/licences/{id}/members"), Some(&app.admin_key))
        .await;
    assert_eq!(members["items"].as_array().unwrap().len(), 3);
    problem(
        app.claim("late", "late@example.edu").await,
        409,
        "no_seats_left",
    )
    .await;
    // Seats cannot be lowered below the members.
    problem(
        app.patch_licence(id, &json!({ "seats": 2 })).await,
        409,
        "seats_below_members",
    )
    .await;
}

#[tokio::test]
async fn the_usage_report_counts_members_readers_and_articles_per_licence_and_month() {
    let app = spawn_app().await;
    let licence = app.licence(&campus()).await;
    let id = licence["id"].as_str().unwrap();
    let key = app.address_key().await;
    let open = |who: (&'static str, &'static str), article: &'static str| {
        let (app, key) = (&app, &key);
        async move {
            let decision: Value = app
                .access_with(
                    key,
                    json!({ who.0: who.1, "article_id": article, "ip": "10.0.0.1" }),
                )
                .await
                .json()
                .await
                .unwrap();
            assert_eq!(decision["reason"], "licensed", "{decision}");
        }
    };
    // November: two readers and a device on campus; a re-read counts once.
    open(("reader_id", "ana"), "a1").await;
    open(("reader_id", "ana"), "a1").await;
    open(("reader_id", "ana"), "a2").await;
    open(("reader_id", "ben"), "a1").await;
    open(("device_id", "d-1"), "a3").await;
    // A member reading off campus counts too.
    assert_eq!(app.claim("eve", "eve@example.edu").await.status(), 201);
    assert_eq!(app.read("eve", "a9").await["reason"], "entitled");
    // December: one reader.
    app.clock.advance(chrono::Duration::days(10));
    open(("reader_id", "ana"), "a1").await;

    let report = app
        .get_json(
            "/v1/reports/licences?from=2026-11&to=2026-12",
            Some(&app.admin_key),
        )
        .await;
    let rows: Vec<(String, u64, u64, u64)> = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["licence_id"], id);
            assert_eq!(r["name"], "University of Example");
            (
                r["month"].as_str().unwrap().to_owned(),
                r["members"].as_u64().unwrap(),
                r["readers"].as_u64().unwrap(),
                r["articles_opened"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("2026-11".to_owned(), 1, 4, 5),
            ("2026-12".to_owned(), 1, 1, 1)
        ]
    );
    // The same figures as CSV, for finance.
    let (_, finance) = app.new_key("finance").await;
    let csv = app
        .get(
            "/v1/reports/licences?from=2026-11&to=2026-12&format=csv",
            Some(&finance),
        )
        .await;
    assert_eq!(csv.status(), 200);
    assert_eq!(
        csv.text().await.unwrap(),
        format!(
            "month,licence_id,name,members,readers,articles_opened\r\n\
             2026-11,{id},University of Example,1,4,5\r\n\
             2026-12,{id},University of Example,1,1,1\r\n"
        )
    );
    // Deleting the licence keeps its past.
    let deleted = app
        .client
        .delete(app.url(&format!("/v1/licences/{id}")))
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let after = app
        .get_json(
            "/v1/reports/licences?from=2026-11&to=2026-11",
            Some(&app.admin_key),
        )
        .await;
    assert_eq!(after["rows"][0]["articles_opened"], 5);
    problem(
        app.get(
            "/v1/reports/licences?from=2026-13&to=2026-12",
            Some(&finance),
        )
        .await,
        422,
        "invalid_date",
    )
    .await;
}
