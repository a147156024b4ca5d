//! Tokens and the JWKS: what `POST /v1/tokens` signs, that tokens verify against the published
//! keys before and after a rotation and only within their lifetime, that forgeries do not, and
//! that retired keys leave the JWKS once their tokens have expired. Tollgate only signs; these
//! tests verify the way a site does, with jsonwebtoken and the JWKS. (CI also verifies them with
//! PyJWT: tests/interop.)

use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Value, json};
use tollgate::clock::Clock;

use crate::helpers::{Options, TestApp, problem, spawn_app, spawn_app_with, test_epoch};

async fn jwks(app: &TestApp) -> JwkSet {
    let response = app.get("/.well-known/jwks.json", None).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/jwk-set+json"
    );
    response.json().await.unwrap()
}

/// Verifies `token` the way a site should: the key by `kid` from the JWKS, the algorithm fixed
/// by us, audience and issuer checked. Time checks are left out because the app's clock is a
/// test clock; the tests compare `exp` with it instead.
fn verify(token: &str, keys: &JwkSet) -> Result<Value, jsonwebtoken::errors::Error> {
    let header = jsonwebtoken::decode_header(token)?;
    let kid = header.kid.unwrap_or_default();
    let jwk = keys
        .find(&kid)
        .ok_or(jsonwebtoken::errors::ErrorKind::InvalidKeyFormat)?;
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_audience(&["paywall"]);
    validation.set_issuer(&["tollgate"]);
    validation.set_required_spec_claims(&["exp", "iat", "nbf", "iss", "aud", "sub"]);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    let data = jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(jwk)?, &validation)?;
    Ok(data.claims)
}

/// [`verify`], then `exp` and `nbf` judged at `now` exactly as jsonwebtoken judges them at the
/// system clock (its default leeway, its comparisons). jsonwebtoken takes no explicit time, and
/// the system clock has nothing to do with the app's test clock.
fn verify_at(
    token: &str,
    keys: &JwkSet,
    now: DateTime<Utc>,
) -> Result<Value, jsonwebtoken::errors::Error> {
    let claims = verify(token, keys)?;
    let leeway = i64::try_from(Validation::default().leeway).unwrap();
    let now = now.timestamp();
    let seconds = |name: &str| {
        claims[name]
            .as_i64()
            .ok_or_else(|| ErrorKind::InvalidClaimFormat(name.to_owned()))
    };
    if seconds("exp")? < now - leeway {
        return Err(ErrorKind::ExpiredSignature.into());
    }
    if seconds("nbf")? > now + leeway {
        return Err(ErrorKind::ImmatureSignature.into());
    }
    Ok(claims)
}

/// A fresh Ed25519 key that tollgate has never seen: its private half for signing, and its
/// public JWK published under `kid`. PKCS#8 v1, as tollgate makes them: jsonwebtoken cannot
/// derive the public JWK of a v2 document.
fn foreign_key(kid: &str) -> (EncodingKey, Jwk) {
    let der = aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8v1(
        &aws_lc_rs::rand::SystemRandom::new(),
    )
    .unwrap();
    let encoding = EncodingKey::from_ed_der(der.as_ref());
    let mut jwk = Jwk::from_encoding_key(&encoding, Algorithm::EdDSA).unwrap();
    jwk.common.key_id = Some(kid.to_owned());
    (encoding, jwk)
}

/// A token's header and claims, read without checking anything.
fn unverified(token: &str) -> (Header, Value) {
    let data = jsonwebtoken::dangerous::insecure_decode::<Value>(token).unwrap();
    (data.header, data.claims)
}

async fn token(app: &TestApp, reader: &str) -> Value {
    let response = app
        .client
        .post(app.url("/v1/tokens"))
        .bearer_auth(&app.admin_key)
        .json(&json!({ "reader_id": reader }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    response.json().await.unwrap()
}

#[tokio::test]
async fn only_the_jwks_may_be_read_from_another_origin() {
    let app = spawn_app().await;
    let from_a_site = |path: &str, key: Option<&str>| {
        let mut request = app
            .client
            .get(app.url(path))
            .header("origin", "https://news.example");
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        request.send()
    };
    let jwks = from_a_site("/.well-known/jwks.json", None).await.unwrap();
    assert_eq!(jwks.status(), 200);
    assert_eq!(jwks.headers()["access-control-allow-origin"], "*");
    for (path, key) in [
        ("/healthz", None),
        ("/openapi.yaml", None),
        ("/v1/plans", Some(app.admin_key.as_str())),
        ("/v1/keys", Some(app.admin_key.as_str())),
    ] {
        let response = from_a_site(path, key).await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert!(
            response
                .headers()
                .get("access-control-allow-origin")
                .is_none(),
            "{path} must not be readable cross-origin"
        );
    }
}

#[tokio::test]
async fn an_entitlements_token_lists_what_the_reader_holds_and_verifies_against_the_jwks() {
    let app = spawn_app().await;
    app.grant("sub-1", &["articles", "ad_free"]).await;
    let issued = token(&app, "sub-1").await;
    assert_eq!(issued["entitlements"], json!(["ad_free", "articles"]));
    let keys = jwks(&app).await;
    assert_eq!(keys.keys.len(), 1);
    let claims = verify(issued["token"].as_str().unwrap(), &keys).unwrap();
    assert_eq!(claims["sub"], "sub-1");
    assert_eq!(claims["scope"], "entitlements");
    assert_eq!(claims["ent"], json!(["ad_free", "articles"]));
    let now = app.clock.now().timestamp();
    assert_eq!(claims["iat"], now);
    assert_eq!(claims["nbf"], now);
    assert_eq!(claims["exp"], now + 15 * 60);
    assert_eq!(issued["expires_at"], "2026-11-23T19:27:00Z");
    assert_eq!(claims["jti"].as_str().unwrap().len(), 32);
    // Two tokens never share an id.
    let second = token(&app, "sub-1").await;
    let second = verify(second["token"].as_str().unwrap(), &keys).unwrap();
    assert_ne!(second["jti"], claims["jti"]);
    // A reader with nothing gets a token saying so.
    let nobody = token(&app, "nobody").await;
    assert_eq!(nobody["entitlements"], json!([]));
    assert_eq!(
        verify(nobody["token"].as_str().unwrap(), &keys).unwrap()["ent"],
        json!([])
    );
}

#[tokio::test]
async fn a_token_never_outlives_the_entitlements_it_lists() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(app.url("/v1/readers/gift-1/grants"))
        .bearer_auth(&app.admin_key)
        .json(&json!({
            "entitlements": ["articles"],
            "expires_at": "2026-11-23T19:17:00Z",
            "reason": "five-minute trial",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let issued = token(&app, "gift-1").await;
    assert_eq!(issued["expires_at"], "2026-11-23T19:17:00Z");
}

#[tokio::test]
async fn tokens_verify_before_and_after_a_rotation_and_a_retired_key_leaves_once_unused() {
    let app = spawn_app_with(Options {
        configure: Some(|s| {
            s.entitlement_token_ttl = std::time::Duration::from_secs(600);
            s.article_token_ttl = std::time::Duration::from_secs(300);
        }),
        ..Options::default()
    })
    .await;
    let before = token(&app, "r-1").await;
    let before = before["token"].as_str().unwrap().to_owned();
    let first_kid = jsonwebtoken::decode_header(&before).unwrap().kid.unwrap();
    assert!(verify(&before, &jwks(&app).await).is_ok());

    let rotated = app.rotate_signing_key().await;
    assert_eq!(rotated["retired_kid"], first_kid.as_str());
    let second_kid = rotated["kid"].as_str().unwrap().to_owned();
    assert_ne!(second_kid, first_kid);
    // Retired at 19:12:00; the longest lifetime is 10 minutes, plus 10 s for other instances
    // to notice, plus a minute of clock leeway.
    let retired = rotated["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == first_kid.as_str())
        .unwrap();
    assert_eq!(retired["published_until"], "2026-11-23T19:23:10Z");

    let keys = jwks(&app).await;
    assert_eq!(keys.keys.len(), 2);
    assert!(verify(&before, &keys).is_ok(), "a token of the old key");
    let after = token(&app, "r-1").await;
    let after = after["token"].as_str().unwrap();
    assert_eq!(
        jsonwebtoken::decode_header(after).unwrap().kid.unwrap(),
        second_kid
    );
    assert!(verify(after, &keys).is_ok(), "a token of the new key");

    // Once every token of the first key has expired, a refresh drops it from the JWKS.
    app.clock.advance(Duration::seconds(11 * 60 + 11));
    let rotated_again = app.rotate_signing_key().await;
    let keys = jwks(&app).await;
    let kids: Vec<&str> = keys
        .keys
        .iter()
        .filter_map(|k| k.common.key_id.as_deref())
        .collect();
    assert!(!kids.contains(&first_kid.as_str()), "{kids:?}");
    assert!(kids.contains(&second_kid.as_str()));
    assert!(kids.contains(&rotated_again["kid"].as_str().unwrap()));
    assert!(verify(&before, &keys).is_err());
}

#[tokio::test]
async fn every_instance_on_a_database_signs_with_the_same_key_and_serves_the_same_jwks() {
    let app = spawn_app().await;
    let other = app.second_instance().await;
    let here = jwks(&app).await;
    let response = app
        .client
        .get(format!("{other}/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    let there: JwkSet = response.json().await.unwrap();
    assert_eq!(
        serde_json::to_value(&here).unwrap(),
        serde_json::to_value(&there).unwrap()
    );
    let response = app
        .client
        .post(format!("{other}/v1/tokens"))
        .bearer_auth(&app.admin_key)
        .json(&json!({ "reader_id": "r-1" }))
        .send()
        .await
        .unwrap();
    let issued: Value = response.json().await.unwrap();
    assert!(verify(issued["token"].as_str().unwrap(), &here).is_ok());
}

#[tokio::test]
async fn forged_tokens_do_not_verify_against_the_jwks() {
    let app = spawn_app().await;
    let issued = token(&app, "r-1").await;
    let real = issued["token"].as_str().unwrap();
    let keys = jwks(&app).await;
    let parts: Vec<&str> = real.split('.').collect();
    let b64 = |v: &Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let kid = jsonwebtoken::decode_header(real).unwrap().kid.unwrap();
    let none = format!(
        "{}.{}.",
        b64(&json!({ "alg": "none", "kid": kid })),
        parts[1]
    );
    assert!(verify(&none, &keys).is_err(), "alg none");
    // HS256 keyed with the public key's bytes, the classic confusion attack.
    let x = match &keys.keys[0].algorithm {
        jsonwebtoken::jwk::AlgorithmParameters::OctetKeyPair(p) => p.x.clone(),
        other => panic!("not an Ed25519 key: {other:?}"),
    };
    let mut header = jsonwebtoken::Header::new(Algorithm::HS256);
    header.kid = Some(kid.clone());
    let claims = jsonwebtoken::dangerous::insecure_decode::<Value>(real)
        .unwrap()
        .claims;
    let hs256 = jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(x.as_bytes()),
    )
    .unwrap();
    assert!(verify(&hs256, &keys).is_err(), "HS256 with the public key");
    let mut flipped = real.to_owned();
    let last = flipped.pop().unwrap();
    flipped.push(if last == 'A' { 'B' } else { 'A' });
    assert!(verify(&flipped, &keys).is_err(), "a changed signature");
    let wrong_audience = {
        let header = jsonwebtoken::decode_header(real).unwrap();
        let jwk = keys.find(header.kid.as_deref().unwrap()).unwrap();
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_audience(&["another-site"]);
        validation.validate_exp = false;
        jsonwebtoken::decode::<Value>(real, &DecodingKey::from_jwk(jwk).unwrap(), &validation)
    };
    assert!(wrong_audience.is_err(), "another audience");
}

#[tokio::test]
async fn a_token_request_for_a_malformed_reader_is_refused() {
    let app = spawn_app().await;
    for body in [
        json!({}),
        json!({ "reader_id": "" }),
        json!({ "reader_id": "a/b" }),
        json!({ "reader_id": "r-1", "scope": "admin" }),
    ] {
        let response = app
            .client
            .post(app.url("/v1/tokens"))
            .bearer_auth(&app.admin_key)
            .json(&body)
            .send()
            .await
            .unwrap();
        problem(response, 422, "invalid_body").await;
    }
}

#[tokio::test]
async fn a_token_signed_by_a_foreign_key_under_tollgates_kid_does_not_verify() {
    let app = spawn_app().await;
    let issued = token(&app, "r-1").await;
    let real = issued["token"].as_str().unwrap();
    let keys = jwks(&app).await;
    let (header, claims) = unverified(real);
    let kid = header.kid.clone().unwrap();
    assert_eq!(header.alg, Algorithm::EdDSA);
    assert!(verify(real, &keys).is_ok(), "the real token");

    let (foreign, foreign_jwk) = foreign_key(&kid);
    let forged = jsonwebtoken::encode(&header, &claims, &foreign).unwrap();
    let (forged_header, forged_claims) = unverified(&forged);
    assert_eq!(forged_header, header, "the same alg, typ and kid");
    assert_eq!(forged_claims, claims, "the same claims");

    let refused = verify(&forged, &keys).unwrap_err();
    assert_eq!(refused.kind(), &ErrorKind::InvalidSignature);
    // The forgery is a well-formed token: the foreign key's own JWKS accepts it, so only the key
    // tollgate publishes tells it apart.
    let foreign_keys = JwkSet {
        keys: vec![foreign_jwk],
    };
    assert_eq!(verify(&forged, &foreign_keys).unwrap(), claims);
}

#[tokio::test]
async fn a_kid_that_names_no_published_key_finds_no_key_and_changes_nothing() {
    let app = spawn_app().await;
    let real = token(&app, "r-1").await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let jwks_before = app
        .get("/.well-known/jwks.json", None)
        .await
        .bytes()
        .await
        .unwrap();
    let keys = jwks(&app).await;
    let (header, claims) = unverified(&real);
    let long = "k".repeat(4096);
    let huge = "../".repeat(64 * 1024);
    let forged_kids: [Option<&str>; 9] = [
        Some("../../../../etc/passwd"),
        Some("..%2f..%2fkeys"),
        Some("' OR '1'='1"),
        Some("1; DROP TABLE signing_keys; --"),
        Some(""),
        Some(&long),
        Some(&huge),
        Some("\u{0}"),
        None,
    ];
    for kid in forged_kids {
        let what = kid.map(|k| k.chars().take(40).collect::<String>());
        // A kid left out is looked up as the empty one.
        let (foreign, foreign_jwk) = foreign_key(kid.unwrap_or_default());
        let mut forged_header = header.clone();
        forged_header.kid = kid.map(str::to_owned);
        let forged = jsonwebtoken::encode(&forged_header, &claims, &foreign).unwrap();
        assert!(
            keys.find(kid.unwrap_or_default()).is_none(),
            "{what:?} names a key"
        );
        assert!(verify(&forged, &keys).is_err(), "{what:?} verified");
        // The forgery fails only for want of a key: under its kid, its own key verifies it.
        let foreign_keys = JwkSet {
            keys: vec![foreign_jwk],
        };
        assert_eq!(verify(&forged, &foreign_keys).unwrap(), claims, "{what:?}");
        // A site may mistake a token for an API key; tollgate refuses it as one. (The longest
        // would not fit in a request head.)
        if forged.len() < 16 * 1024 {
            let response = app
                .client
                .get(app.url("/v1/plans"))
                .bearer_auth(&forged)
                .send()
                .await
                .unwrap();
            problem(response, 401, "invalid_api_key").await;
        }
    }

    // Tollgate never sees a kid that a site looks up, and the forgeries changed nothing.
    let jwks_after = app
        .get("/.well-known/jwks.json", None)
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(jwks_after, jwks_before);
    assert!(verify(&real, &keys).is_ok());
    let fresh = token(&app, "r-1").await;
    let fresh = fresh["token"].as_str().unwrap();
    assert_eq!(unverified(fresh).0.kid, header.kid);
    assert!(verify(fresh, &jwks(&app).await).is_ok());
}

#[tokio::test]
async fn a_token_verifies_only_between_its_nbf_and_exp_give_or_take_the_leeway() {
    let app = spawn_app().await;
    let real = token(&app, "r-1").await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let keys = jwks(&app).await;
    let issued_at = test_epoch();
    let (_, claims) = unverified(&real);
    assert_eq!(claims["nbf"], issued_at.timestamp());
    let expires_at = issued_at + Duration::minutes(15);
    assert_eq!(claims["exp"], expires_at.timestamp());
    let leeway = Duration::seconds(60);
    assert!(verify_at(&real, &keys, app.clock.now()).is_ok(), "at issue");

    // After its exp, once the leeway is spent, it is expired.
    app.clock.set(expires_at + leeway);
    assert!(
        verify_at(&real, &keys, app.clock.now()).is_ok(),
        "at exp plus the leeway"
    );
    app.clock.advance(Duration::seconds(1));
    let late = verify_at(&real, &keys, app.clock.now()).unwrap_err();
    assert_eq!(late.kind(), &ErrorKind::ExpiredSignature);
    // The clock did not break verification: a token issued now verifies now.
    let fresh = token(&app, "r-1").await;
    assert!(verify_at(fresh["token"].as_str().unwrap(), &keys, app.clock.now()).is_ok());

    // Before its nbf, beyond the leeway, it is not yet valid.
    app.clock.set(issued_at - leeway);
    assert!(
        verify_at(&real, &keys, app.clock.now()).is_ok(),
        "at nbf less the leeway"
    );
    app.clock.advance(Duration::seconds(-1));
    let early = verify_at(&real, &keys, app.clock.now()).unwrap_err();
    assert_eq!(early.kind(), &ErrorKind::ImmatureSignature);
}
