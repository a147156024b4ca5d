//! What only the SQLite backend promises. These tests make their own SQLite database whatever
//! `TEST_DATABASE_URL` says.

use std::sync::Arc;
use std::time::Duration;

use sqlx::Connection;
use tollgate::clock::SystemClock;
use tollgate::config::Settings;
use tollgate::domain::{KeyName, Role};
use tollgate::services::keys::{KeyRequest, issue_key};
use tollgate::startup::Application;

#[tokio::test]
async fn the_database_runs_in_wal_mode_and_the_log_is_truncated_by_periodic_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tollgate.db");
    let url = format!("sqlite://{}", path.display());
    let settings = Settings {
        bind: "127.0.0.1:0".into(),
        database_url: url.clone().into(),
        sqlite_checkpoint_interval: Duration::from_millis(200),
        workers: 1,
        ..Settings::default()
    };
    let app = Application::build(settings, Arc::new(SystemClock))
        .await
        .unwrap();
    let store = app.store();
    tokio::spawn(app.run_until_stopped());

    for n in 0..50 {
        let name = KeyName::parse(&format!("key {n}")).unwrap();
        let request = KeyRequest::new(Role::Service, name);
        issue_key(
            store.as_ref(),
            &SystemClock,
            request,
            None,
            &tollgate::domain::Actor::cli(),
        )
        .await
        .unwrap();
    }
    let wal = dir.path().join("tollgate.db-wal");
    assert!(
        std::fs::metadata(&wal).unwrap().len() > 0,
        "the writes did not go through the log"
    );

    let mut truncated = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0) == 0 {
            truncated = true;
            break;
        }
    }
    assert!(truncated, "the write-ahead log was never truncated");

    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM api_keys")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(keys, 50, "a checkpoint lost writes");
}
