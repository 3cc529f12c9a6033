//! `run` without `--mapping` loads `user_logins` by the built-in login mapping, compiled
//! against the live table as any user's file is: what that mapping decides is what `run`
//! does. Two things only the mapping does show it: a `masked_ip` too narrow for any
//! address's token stops `run` before the first message, and a login reject carries its
//! user's subject token (so `forget` finds it unopened).

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_masked_ip_too_narrow_for_any_token_stops_run_before_the_first_message() {
    let env = TestEnv::new().await;
    env.db()
        .await
        .batch_execute("ALTER TABLE user_logins ALTER masked_ip TYPE varchar(20)")
        .await
        .expect("narrow masked_ip");
    env.send(&[login("u-1", "10.0.0.1", "d-1")]).await;
    let out = env.run_cmd(&["run", "--until-empty", "--wait-seconds", "1"]);
    let stderr = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("masked_ip") && stderr.contains("too narrow"),
        "{stderr}"
    );
    let d = env.depth().await;
    assert_eq!(
        (d.visible, d.in_flight),
        (1, 0),
        "the message was not received"
    );
    assert_eq!(
        env.count("SELECT count(*) FROM user_logins_rejects").await,
        0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_login_reject_carries_its_users_subject_token() {
    let env = TestEnv::new().await;
    // A subject too long for a token in an index: its reject has none (forget opens it).
    let long_user = "u".repeat(4096);
    env.send(&[
        login("u-ok", "10.0.0.1", "d-1"),
        login("u-bad-ip", "not an address", "d-2"),
        login(&long_user, "not an address either", "d-3"),
    ])
    .await;
    let s = env.drain().await;
    assert_eq!((s.loaded, s.rejected), (1, 2));
    let rejects = env
        .rows("SELECT reason, route, subject_token FROM user_logins_rejects ORDER BY subject_token NULLS LAST")
        .await;
    assert_eq!(rejects[1].get::<_, Option<String>>("subject_token"), None);
    let (reason, route, token): (String, Option<String>, Option<String>) = (
        rejects[0].get("reason"),
        rejects[0].get("route"),
        rejects[0].get("subject_token"),
    );
    assert_eq!(reason, "invalid_ip");
    assert_eq!(
        route, None,
        "the built-in load's rejects name no route, as before"
    );
    assert_eq!(token, Some(masker(KEYS).token("subject", "u-bad-ip")));
}
