use sha2::{Digest, Sha256};

use crate::helpers::{problem, spawn_app, test_epoch};

#[tokio::test]
async fn an_admin_creates_a_key_that_is_shown_once_with_its_role_name_and_creation_time() {
    let app = spawn_app().await;
    let response = app
        .create_key(
            &app.admin_key,
            serde_json::json!({ "role": "service", "name": "frontend" }),
        )
        .await;
    assert_eq!(response.status(), 201);
    let body: serde_json::Value = response.json().await.unwrap();
    let key = body["key"].as_str().unwrap();
    assert!(key.starts_with("tgk_") && key.len() == 68, "{key}");
    assert!(
        key[4..]
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    assert!(body["id"].as_str().unwrap().starts_with("key_"));
    assert_eq!(body["role"], "service");
    assert_eq!(body["name"], "frontend");
    // The clock is injected: the key is created at the test's instant, not the machine's.
    assert_eq!(
        body["created_at"],
        test_epoch().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );

    let listed = app
        .get("/v1/keys", Some(&app.admin_key))
        .await
        .text()
        .await
        .unwrap();
    assert!(!listed.contains(key), "the list shows a secret");
    assert!(!listed.contains(&key[4..]), "the list shows a secret");
}

#[tokio::test]
async fn only_the_sha256_of_a_key_is_stored() {
    let app = spawn_app().await;
    let (_, key) = app.new_key("finance").await;
    let expected: Vec<u8> = Sha256::digest(key.as_bytes()).to_vec();
    let stored = app.db.stored_keys().await;
    assert!(stored.iter().any(|(hash, _)| *hash == expected));
    for (_, text) in stored {
        assert!(!text.contains(&key[4..]), "a secret is stored in clear");
    }
}

#[tokio::test]
async fn a_new_key_authenticates_with_its_role() {
    let app = spawn_app().await;
    let (_, service) = app.new_key("service").await;
    let (_, admin) = app.new_key("admin").await;
    // Keys are admin business: a service key is known (403), not unknown (401).
    problem(app.get("/v1/keys", Some(&service)).await, 403, "forbidden").await;
    assert_eq!(app.get("/v1/keys", Some(&admin)).await.status(), 200);
}

#[tokio::test]
async fn a_revoked_key_is_refused_at_once_and_listed_as_revoked() {
    let app = spawn_app().await;
    let (id, admin) = app.new_key("admin").await;
    assert_eq!(app.get("/v1/keys", Some(&admin)).await.status(), 200);
    app.clock.advance(chrono::Duration::minutes(5));

    assert_eq!(app.revoke(&app.admin_key, &id).await.status(), 204);

    problem(
        app.get("/v1/keys", Some(&admin)).await,
        401,
        "invalid_api_key",
    )
    .await;
    let list = app.get_json("/v1/keys", Some(&app.admin_key)).await;
    let revoked = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id.as_str())
        .unwrap();
    let expected = (test_epoch() + chrono::Duration::minutes(5))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    assert_eq!(revoked["revoked_at"], expected);
    // Revoking again changes nothing and succeeds.
    assert_eq!(app.revoke(&app.admin_key, &id).await.status(), 204);
    let again = app.get_json("/v1/keys", Some(&app.admin_key)).await;
    assert_eq!(list, again);
}

#[tokio::test]
async fn a_key_cannot_revoke_itself_and_keeps_working() {
    let app = spawn_app().await;
    let (id, admin) = app.new_key("admin").await;
    problem(app.revoke(&admin, &id).await, 409, "cannot_revoke_self").await;
    assert_eq!(app.get("/v1/keys", Some(&admin)).await.status(), 200);
}

#[tokio::test]
async fn revoking_an_unknown_or_malformed_id_is_404() {
    let app = spawn_app().await;
    problem(
        app.revoke(&app.admin_key, "key_0123456789abcdef0123456789abcdef")
            .await,
        404,
        "not_found",
    )
    .await;
    problem(
        app.revoke(&app.admin_key, "key_'%20OR%201=1").await,
        404,
        "not_found",
    )
    .await;
    problem(
        app.revoke(&app.admin_key, "..%2F..%2Fetc").await,
        404,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn keys_are_listed_in_creation_order_a_page_at_a_time() {
    let app = spawn_app().await;
    let mut created = Vec::new();
    for _ in 0..4 {
        app.clock.advance(chrono::Duration::seconds(1));
        created.push(app.new_key("service").await.0);
    }
    let mut seen = Vec::new();
    let mut path = "/v1/keys?limit=2".to_owned();
    loop {
        let page = app.get_json(&path, Some(&app.admin_key)).await;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|k| k["id"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/keys?limit=2&after={cursor}"),
            None => break,
        }
    }
    // The test's own admin key comes first, then the four in the order they were made.
    assert_eq!(seen.len(), 5);
    assert_eq!(seen[1..], created[..]);
}

#[tokio::test]
async fn a_key_revoked_through_another_instance_stops_working_within_the_cache_time() {
    let app = crate::helpers::spawn_app_with(crate::helpers::Options {
        configure: Some(|s| s.api_key_cache_ttl = std::time::Duration::from_millis(300)),
        ..Default::default()
    })
    .await;
    let other = app.second_instance().await;
    let (id, service) = app.new_key("service").await;
    let on_other = || {
        app.client
            .get(format!("{other}/v1/plans"))
            .bearer_auth(&service)
            .send()
    };
    assert_eq!(on_other().await.unwrap().status(), 200);
    assert_eq!(app.revoke(&app.admin_key, &id).await.status(), 204);
    // The instance that revoked it refuses it at once ...
    let here = app.get("/v1/plans", Some(&service)).await;
    assert_eq!(here.status(), 401);
    // ... and the other one once its cache time has passed.
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert_eq!(on_other().await.unwrap().status(), 401);
}
