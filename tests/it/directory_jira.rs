//! The Jira client against a recording HTTP server, and the behaviour every
//! client shares (retries, time-outs, classification, encoding, secrets).

use crate::directory_support::*;
use iumgate::config::Secret;
use iumgate::directory::{
    Auth, ClientOptions, Directory, DirectoryError, ErrorStatus, JiraDirectory, LicenceInfo,
    Member, UserInfo,
};
use iumgate::user::UserId;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn jira(fake: &Fake, retries: u32) -> JiraDirectory {
    JiraDirectory::new(&fake.url, basic(), opts(retries)).unwrap()
}

fn bob() -> UserId {
    UserId::new("bob")
}

#[tokio::test]
async fn jira_add_posts_the_name_to_the_group_with_basic_auth() {
    let fake = Fake::start(|_, _| reply(201, "")).await;
    jira(&fake, 0)
        .add_to_group(&bob(), "IUM_access")
        .await
        .unwrap();
    let s = &fake.seen()[0];
    assert_eq!(s.call(), "POST /rest/api/2/group/user");
    assert_eq!(s.query, "groupname=IUM_access");
    assert_eq!(s.json(), json!({"name": "bob"}));
    assert_eq!(s.authorization.as_deref(), Some(basic_header().as_str()));
    assert_eq!(s.content_type.as_deref(), Some("application/json"));
    assert_eq!(s.atlassian_token.as_deref(), Some("no-check"));
}

#[tokio::test]
async fn jira_add_of_a_member_already_in_the_group_is_ok() {
    let fake = Fake::start(|_, _| {
        json(
            400,
            json!({"errorMessages":["Cannot add user. 'bob' is already a member of 'IUM_access'"],"errors":{}}),
        )
    })
    .await;
    assert_eq!(
        jira(&fake, 3).add_to_group(&bob(), "IUM_access").await,
        Ok(())
    );
    assert_eq!(fake.count(), 1);
}

#[tokio::test]
async fn jira_remove_deletes_with_group_and_user_in_the_query() {
    let fake = Fake::start(|_, _| reply(200, "")).await;
    jira(&fake, 0)
        .remove_from_group(&bob(), "IUM_access")
        .await
        .unwrap();
    let s = &fake.seen()[0];
    assert_eq!(s.call(), "DELETE /rest/api/2/group/user");
    assert_eq!(s.param("groupname").as_deref(), Some("IUM_access"));
    assert_eq!(s.param("username").as_deref(), Some("bob"));
    assert_eq!(s.body, "");
}

#[tokio::test]
async fn jira_remove_of_a_non_member_is_ok() {
    let fake = Fake::start(|_, _| {
        json(
            400,
            json!({"errorMessages":["Cannot remove user. 'bob' is not a member of 'IUM_access'"]}),
        )
    })
    .await;
    assert_eq!(
        jira(&fake, 0).remove_from_group(&bob(), "IUM_access").await,
        Ok(())
    );
}

#[tokio::test]
async fn jira_members_reads_every_page_and_keeps_inactive_users() {
    // 50 + 50 + 7 members; every third one inactive.
    let fake = Fake::start(|s, _| {
        let start: usize = s.param("startAt").unwrap().parse().unwrap();
        let end = (start + 50).min(107);
        let values: Vec<_> = (start..end)
            .map(|i| json!({"name": format!("User{i}"), "key": format!("k{i}"), "active": i % 3 != 0}))
            .collect();
        json(
            200,
            json!({"values": values, "isLast": end == 107, "total": 107, "startAt": start, "maxResults": 50}),
        )
    })
    .await;
    let members = jira(&fake, 0).group_members("IUM_user").await.unwrap();
    assert_eq!(members.len(), 107);
    assert_eq!(
        members[3],
        Member {
            name: UserId::new("user3"),
            active: false
        }
    );
    assert!(members[4].active);
    let seen = fake.seen();
    let starts: Vec<_> = seen.iter().map(|s| s.param("startAt").unwrap()).collect();
    assert_eq!(starts, ["0", "50", "100"]);
    for s in &seen {
        assert_eq!(s.call(), "GET /rest/api/2/group/member");
        assert_eq!(s.param("groupname").as_deref(), Some("IUM_user"));
        assert_eq!(s.param("includeInactiveUsers").as_deref(), Some("true"));
        assert_eq!(s.param("maxResults").as_deref(), Some("50"));
    }
}

#[tokio::test]
async fn jira_members_refuses_an_empty_page_that_is_not_the_last() {
    let fake = Fake::start(|_, _| json(200, json!({"values": [], "isLast": false}))).await;
    let err = jira(&fake, 0).group_members("g").await.unwrap_err();
    assert!(matches!(err, DirectoryError::Unexpected { .. }), "{err:?}");
    assert_eq!(fake.count(), 1);
}

#[tokio::test]
async fn jira_user_reads_active_flag_and_groups() {
    let fake = Fake::start(|s, _| match s.param("username").as_deref() {
        Some("carol") => json(
            200,
            json!({"name":"Carol","key":"JIRAUSER1","active":false,"displayName":"C",
                   "groups":{"size":2,"items":[{"name":"jira-software-users"},{"name":"IUM_user"}]}}),
        ),
        _ => json(404, json!({"errorMessages":["The user named 'x' does not exist"]})),
    })
    .await;
    let j = jira(&fake, 0);
    let info = j.user(&UserId::new("carol")).await.unwrap();
    assert_eq!(
        info,
        Some(UserInfo {
            name: UserId::new("carol"),
            active: false,
            groups: vec!["jira-software-users".into(), "IUM_user".into()],
        })
    );
    let s = &fake.seen()[0];
    assert_eq!(s.call(), "GET /rest/api/2/user");
    assert_eq!(s.param("expand").as_deref(), Some("groups"));
    assert_eq!(j.user(&UserId::new("nobody")).await, Ok(None));
}

#[tokio::test]
async fn jira_licence_reads_the_matching_application_role() {
    let fake = Fake::start(|_, _| {
        json(
            200,
            json!([
                {"key":"jira-core","groups":["jira-core-users"],"defaultGroups":[],"numberOfSeats":-1,
                 "remainingSeats":-1,"userCount":3,"hasUnlimitedSeats":true},
                {"key":"jira-software","groups":["jira-software-users","IUM_access"],"defaultGroups":["jira-software-users"],
                 "numberOfSeats":500,"remainingSeats":120,"userCount":380,"hasUnlimitedSeats":false}
            ]),
        )
    })
    .await;
    let j = jira(&fake, 0);
    assert_eq!(
        j.licence("jira-software").await,
        Ok(Some(LicenceInfo {
            seats: Some(500),
            used: Some(380),
            groups: vec!["jira-software-users".into(), "IUM_access".into()],
        }))
    );
    let core = j.licence("jira-core").await.unwrap().unwrap();
    assert_eq!(core.seats, None, "unlimited seats");
    match j.licence("jira-servicedesk").await {
        Err(DirectoryError::Unexpected { detail, .. }) => {
            assert!(
                detail.contains("jira-software") && detail.contains("jira-core"),
                "{detail}"
            )
        }
        other => panic!("a wrong role key must be an error naming the roles: {other:?}"),
    }
    assert_eq!(fake.seen()[0].call(), "GET /rest/api/2/applicationrole");
}

/// Each 4xx is classified on the first answer, without a retry.
#[tokio::test]
async fn jira_status_codes_are_classified_and_never_retried() {
    let cases: Vec<(u16, serde_json::Value, DirectoryError)> = vec![
        (401, json!({}), DirectoryError::BadCredentials),
        (
            403,
            json!({"errorMessages":["You are not authorised to perform this operation"]}),
            DirectoryError::NotAdmin,
        ),
        (
            404,
            json!({"errorMessages":["Specified group IUM_user_x does not exist."]}),
            DirectoryError::GroupMissing("IUM_user_x".into()),
        ),
        (
            404,
            json!({"errorMessages":["The user named 'bob' does not exist"]}),
            DirectoryError::UserMissing("bob".into()),
        ),
    ];
    for (status, body, want) in cases {
        let b = body.clone();
        let fake = Fake::start(move |_, _| json(status, b.clone())).await;
        let got = jira(&fake, 3).add_to_group(&bob(), "IUM_user_x").await;
        assert_eq!(got, Err(want), "status {status} body {body}");
        assert_eq!(fake.count(), 1, "status {status} must not be retried");
    }

    for (status, body) in [
        (
            403,
            json!({"errorMessages":["The user directory is read-only"]}),
        ),
        (
            400,
            json!({"errorMessages":["Cannot add user: directory is read only"]}),
        ),
    ] {
        let b = body.clone();
        let fake = Fake::start(move |_, _| json(status, b.clone())).await;
        let got = jira(&fake, 3).add_to_group(&bob(), "g").await;
        assert!(
            matches!(got, Err(DirectoryError::ReadOnly(_))),
            "{status}: {got:?}"
        );
        assert_eq!(fake.count(), 1);
    }

    let fake = Fake::start(|_, _| json(400, json!({"errorMessages":["something else"]}))).await;
    let got = jira(&fake, 3).remove_from_group(&bob(), "g").await;
    assert!(
        matches!(got, Err(DirectoryError::Unexpected { status: 400, ref detail }) if detail.contains("something else")),
        "{got:?}"
    );
    assert_eq!(fake.count(), 1);
}

#[tokio::test]
async fn a_404_that_names_neither_says_which_names_were_asked() {
    let fake = Fake::start(|_, _| reply(404, "<html>Not Found</html>")).await;
    match jira(&fake, 0).add_to_group(&bob(), "IUM_access").await {
        Err(DirectoryError::Unexpected {
            status: 404,
            detail,
        }) => {
            assert!(
                detail.contains("`bob`") && detail.contains("`IUM_access`"),
                "{detail}"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_5xx_is_retried_until_it_succeeds() {
    let fake = Fake::start(|_, n| match n {
        0 => reply(500, "boom"),
        1 => reply(503, "busy"),
        _ => reply(201, ""),
    })
    .await;
    assert_eq!(jira(&fake, 3).add_to_group(&bob(), "g").await, Ok(()));
    assert_eq!(fake.count(), 3);
    let seen = fake.seen();
    assert!(seen.iter().all(|s| s.json() == json!({"name":"bob"})));
}

#[tokio::test]
async fn a_5xx_to_the_end_is_unavailable_with_the_status_and_without_the_secret() {
    let fake = Fake::start(|_, _| reply(502, "bad gateway")).await;
    let err = jira(&fake, 2).add_to_group(&bob(), "g").await.unwrap_err();
    assert_eq!(fake.count(), 3, "one try and two retries");
    let DirectoryError::Unavailable {
        operation,
        detail: msg,
        source: Some(cause),
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(*operation, "add user to group");
    assert!(msg.contains("502"), "{msg}");
    assert!(msg.contains("after 3 tries"), "{msg}");
    // The last answer is the source, with its text.
    let status = cause.get().downcast_ref::<ErrorStatus>();
    let status = status.unwrap_or_else(|| panic!("{cause:?}"));
    assert_eq!((status.status, status.body.as_str()), (502, "bad gateway"));
    assert!(err.is_retryable());
    assert!(!err.to_string().contains(PASSWORD));
}

#[tokio::test]
async fn retries_back_off_doubling() {
    let fake = Fake::start(|_, _| reply(500, "")).await;
    let o = ClientOptions {
        backoff: Duration::from_millis(100),
        ..opts(2)
    };
    let j = JiraDirectory::new(&fake.url, basic(), o).unwrap();
    let started = Instant::now();
    let _ = j.group_members("g").await;
    // 100 ms, then 200 ms: at least 300 ms (without doubling, 200 ms).
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(fake.count(), 3);
}

#[tokio::test]
async fn a_hung_upstream_times_out_each_try_then_is_unavailable() {
    let fake = Fake::start(|_, _| Reply {
        delay: Duration::from_secs(30),
        ..reply(200, "{}")
    })
    .await;
    let o = ClientOptions {
        timeout: Duration::from_millis(200),
        ..opts(1)
    };
    let j = JiraDirectory::new(&fake.url, basic(), o).unwrap();
    let started = Instant::now();
    let err = j.user(&bob()).await.unwrap_err();
    let DirectoryError::Unavailable {
        operation,
        detail: msg,
        source: Some(cause),
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(*operation, "look up user");
    assert!(msg.contains("timed out"), "{msg}");
    let reqwest = cause.get().downcast_ref::<reqwest::Error>();
    assert!(reqwest.is_some_and(|e| e.is_timeout()), "{cause:?}");
    assert_eq!(fake.count(), 2, "the time-out is retried");
    // Far below the server's 30 s: the client gave up on its own.
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[tokio::test]
async fn a_refused_connection_is_unavailable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let j = JiraDirectory::new(&url, basic(), opts(1)).unwrap();
    match j.licence("jira-software").await {
        Err(err @ DirectoryError::Unavailable { .. }) => {
            let msg = err.to_string();
            assert!(msg.contains("cannot read licence"), "{msg}");
            assert!(msg.contains("cannot connect"), "{msg}");
            assert!(msg.contains("after 2 tries"), "{msg}");
            // The I/O error is in the chain, not flattened into the text.
            let mut refused = false;
            let mut src = std::error::Error::source(&err);
            while let Some(e) = src {
                refused |= e
                    .downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused);
                src = e.source();
            }
            assert!(refused, "{}", iumgate::proxy::error_chain(&err));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn names_with_spaces_plus_ampersand_and_unicode_are_encoded() {
    let fake = Fake::start(|_, _| reply(200, "")).await;
    let user = UserId::new("Jörg Müller+1&x");
    let group = "IUM access & co+ü";
    jira(&fake, 0)
        .remove_from_group(&user, group)
        .await
        .unwrap();
    let s = &fake.seen()[0];
    assert_eq!(
        s.query,
        "groupname=IUM%20access%20%26%20co%2B%C3%BC&username=j%C3%B6rg%20m%C3%BCller%2B1%26x"
    );
    assert_eq!(s.param("groupname").as_deref(), Some(group));
    assert_eq!(s.param("username").as_deref(), Some("jörg müller+1&x"));

    let fake = Fake::start(|_, _| reply(201, "")).await;
    jira(&fake, 0).add_to_group(&user, group).await.unwrap();
    assert_eq!(fake.seen()[0].json(), json!({"name": "jörg müller+1&x"}));
}

#[tokio::test]
async fn a_bearer_token_is_sent_as_is() {
    let fake = Fake::start(|_, _| reply(201, "")).await;
    let j = JiraDirectory::new(&fake.url, Auth::Bearer(Secret::new("PAT-xyz")), opts(0)).unwrap();
    j.add_to_group(&bob(), "g").await.unwrap();
    assert_eq!(
        fake.seen()[0].authorization.as_deref(),
        Some("Bearer PAT-xyz")
    );
}

#[tokio::test]
async fn debug_output_never_shows_the_secret() {
    let j = JiraDirectory::new("http://127.0.0.1:1/jira", basic(), opts(0)).unwrap();
    let d = format!("{j:?}");
    assert!(d.contains("basic as svc"), "{d}");
    assert!(!d.contains(PASSWORD), "{d}");
    assert!(!d.contains(&basic_header()[6..]), "{d}");
    let j = JiraDirectory::new(
        "http://127.0.0.1:1",
        Auth::Bearer(Secret::new("PAT-xyz")),
        opts(0),
    )
    .unwrap();
    assert!(!format!("{j:?}").contains("PAT-xyz"));
}

#[tokio::test]
async fn a_context_path_in_the_base_url_is_kept() {
    let fake = Fake::start(|_, _| json(200, json!([]))).await;
    let j = JiraDirectory::new(&format!("{}/jira/", fake.url), basic(), opts(0)).unwrap();
    let _ = j.licence("jira-software").await;
    assert_eq!(fake.seen()[0].path, "/jira/rest/api/2/applicationrole");
}

#[test]
fn bad_base_urls_are_refused_without_echoing_credentials() {
    for url in [
        "ftp://x",
        "not a url",
        "http://svc:hunter2@jira.example.com",
    ] {
        let err = JiraDirectory::new(url, basic(), opts(0)).unwrap_err();
        assert_eq!(err.key, "directory.url");
        let err = iumgate::proxy::error_chain(&err);
        assert!(err.starts_with("jira directory:"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }
}

#[tokio::test]
async fn the_observer_hears_each_operation_and_its_result() {
    let fake = Fake::start(|s, _| match s.method.as_str() {
        "POST" => reply(201, ""),
        _ => reply(401, ""),
    })
    .await;
    let rec = Arc::new(Recorder::default());
    let j = jira(&fake, 0).with_observer(rec.clone());
    j.add_to_group(&bob(), "g").await.unwrap();
    let _ = j.remove_from_group(&bob(), "g").await;
    let _ = j.group_members("g").await;
    assert_eq!(
        *rec.0.lock().unwrap(),
        [
            ("add_to_group", "ok"),
            ("remove_from_group", "bad_credentials"),
            ("group_members", "bad_credentials"),
        ]
    );
}

/// An app behind an internal CA: trusted through `extra_ca`, refused without it.
#[tokio::test]
async fn an_extra_ca_file_makes_an_internal_certificate_trusted() {
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.key_pair.serialize_der()));
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![ck.cert.der().clone()], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(
                        http_body_util::Full::new(bytes::Bytes::from_static(b"[]")),
                    ))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                    .await;
            });
        }
    });

    let untrusted = JiraDirectory::new(&url, basic(), opts(0)).unwrap();
    let err = untrusted.licence("jira-software").await.unwrap_err();
    assert!(matches!(err, DirectoryError::Unavailable { .. }), "{err:?}");
    // The TLS verdict is in the source chain.
    let chain = iumgate::proxy::error_chain(&err);
    assert!(chain.contains("certificate"), "{chain}");

    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, ck.cert.pem()).unwrap();
    let o = ClientOptions {
        extra_ca: Some(ca),
        ..opts(0)
    };
    let trusted = JiraDirectory::new(&url, basic(), o).unwrap();
    // The empty role list proves the call went through TLS and got its answer.
    match trusted.licence("jira-software").await {
        Err(DirectoryError::Unexpected {
            status: 200,
            detail,
        }) => {
            assert!(detail.contains("no application role"), "{detail}")
        }
        other => panic!("{other:?}"),
    }

    let bad = dir.path().join("bad.pem");
    std::fs::write(&bad, "not a certificate").unwrap();
    let o = ClientOptions {
        extra_ca: Some(bad),
        ..opts(0)
    };
    let err = JiraDirectory::new(&url, basic(), o).unwrap_err();
    assert_eq!(err.key, "proxy.upstream_ca_file");
    let err = err.to_string();
    assert!(err.contains("bad.pem"), "{err}");
}
