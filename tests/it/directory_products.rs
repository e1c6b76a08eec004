//! The Confluence, Bitbucket and Crowd clients and `from_config`, against a
//! recording HTTP server answering the documented shapes.

use crate::directory_support::*;
use iumgate::config::Config;
use iumgate::directory::{
    self, BitbucketDirectory, ConfluenceDirectory, CrowdDirectory, Directory, DirectoryError,
    LicenceInfo, Member, UserInfo,
};
use iumgate::user::UserId;
use serde_json::json;
use std::sync::Arc;

fn bob() -> UserId {
    UserId::new("bob")
}

// ---------------------------------------------------------------- Confluence

fn confluence(fake: &Fake) -> ConfluenceDirectory {
    ConfluenceDirectory::new(&fake.url, basic(), opts(0)).unwrap()
}

#[tokio::test]
async fn confluence_add_and_remove_put_and_delete_the_encoded_path() {
    let fake = Fake::start(|_, _| reply(204, "")).await;
    let c = confluence(&fake);
    let user = UserId::new("Anna Ö");
    c.add_to_group(&user, "IUM access+&").await.unwrap();
    c.remove_from_group(&user, "IUM access+&").await.unwrap();
    let seen = fake.seen();
    assert_eq!(
        seen[0].call(),
        "PUT /rest/api/user/anna%20%C3%B6/group/IUM%20access%2B%26"
    );
    assert_eq!(
        seen[1].call(),
        "DELETE /rest/api/user/anna%20%C3%B6/group/IUM%20access%2B%26"
    );
    assert_eq!(
        seen[0].authorization.as_deref(),
        Some(basic_header().as_str())
    );
}

#[tokio::test]
async fn confluence_classifies_errors() {
    for (status, body, want) in [
        (401, json!({}), "bad_credentials"),
        (
            403,
            json!({"statusCode":403,"message":"Not permitted"}),
            "not_admin",
        ),
        (
            403,
            json!({"statusCode":403,"message":"Cannot update group membership: directory is read-only"}),
            "read_only",
        ),
        (
            404,
            json!({"statusCode":404,"message":"No group found with name: IUM_x"}),
            "group_missing",
        ),
        (
            404,
            json!({"statusCode":404,"message":"No user found with username: bob"}),
            "user_missing",
        ),
    ] {
        let b = body.clone();
        let fake = Fake::start(move |_, _| json(status, b.clone())).await;
        let err = confluence(&fake)
            .add_to_group(&bob(), "IUM_x")
            .await
            .unwrap_err();
        assert_eq!(err.kind(), want, "{status} {body}: {err:?}");
        assert_eq!(fake.count(), 1, "no retry on {status}");
    }
}

#[tokio::test]
async fn confluence_members_follow_the_next_link_and_count_everyone_active() {
    // 200 + 200 + 5 members.
    let fake = Fake::start(|s, _| {
        let start: usize = s.param("start").unwrap().parse().unwrap();
        let end = (start + 200).min(405);
        let results: Vec<_> = (start..end)
            .map(|i| json!({"type":"known","username": format!("u{i}"), "userKey": format!("k{i}")}))
            .collect();
        let mut links = json!({"base": "http://x", "self": "http://x/self"});
        if end < 405 {
            links["next"] = json!(format!("/rest/api/group/g/member?start={end}&limit=200"));
        }
        json(
            200,
            json!({"results": results, "start": start, "limit": 200, "size": end - start, "_links": links}),
        )
    })
    .await;
    let members = confluence(&fake).group_members("IUM user").await.unwrap();
    assert_eq!(members.len(), 405);
    assert!(members.iter().all(|m| m.active));
    assert_eq!(
        members[404],
        Member {
            name: UserId::new("u404"),
            active: true
        }
    );
    let seen = fake.seen();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[0].call(), "GET /rest/api/group/IUM%20user/member");
    let starts: Vec<_> = seen.iter().map(|s| s.param("start").unwrap()).collect();
    assert_eq!(starts, ["0", "200", "400"]);
    assert!(seen
        .iter()
        .all(|s| s.param("limit").as_deref() == Some("200")));
}

#[tokio::test]
async fn confluence_user_reads_the_user_then_its_groups() {
    let fake = Fake::start(|s, _| match (s.path.as_str(), s.param("username").as_deref()) {
        ("/rest/api/user", Some("dave")) => json(
            200,
            json!({"type":"known","username":"dave","userKey":"ff80","displayName":"Dave"}),
        ),
        ("/rest/api/user/memberof", Some("dave")) => json(
            200,
            json!({"results":[{"type":"group","name":"confluence-users"},{"type":"group","name":"IUM_user"}],
                   "start":0,"limit":200,"size":2,"_links":{}}),
        ),
        _ => json(404, json!({"statusCode":404,"message":"No user found"})),
    })
    .await;
    let c = confluence(&fake);
    assert_eq!(
        c.user(&UserId::new("dave")).await,
        Ok(Some(UserInfo {
            name: UserId::new("dave"),
            active: true,
            groups: vec!["confluence-users".into(), "IUM_user".into()],
        }))
    );
    assert_eq!(c.user(&UserId::new("ghost")).await, Ok(None));
}

#[tokio::test]
async fn confluence_licence_reads_max_users_and_user_count() {
    let fake = Fake::start(|s, _| match s.path.as_str() {
        "/rest/license/1.0/license/maxUsers" => json(200, json!({"count": 500})),
        "/rest/license/1.0/license/userCount" => json(200, json!({"count": 412})),
        _ => reply(404, ""),
    })
    .await;
    assert_eq!(
        confluence(&fake).licence("confluence").await,
        Ok(Some(LicenceInfo {
            seats: Some(500),
            used: Some(412),
            groups: vec![],
        }))
    );
}

// ----------------------------------------------------------------- Bitbucket

fn bitbucket(fake: &Fake) -> BitbucketDirectory {
    BitbucketDirectory::new(&fake.url, basic(), opts(0)).unwrap()
}

#[tokio::test]
async fn bitbucket_add_and_remove_post_context_user_and_item_group() {
    let fake = Fake::start(|_, _| reply(200, "")).await;
    let b = bitbucket(&fake);
    b.add_to_group(&bob(), "IUM_access").await.unwrap();
    b.remove_from_group(&bob(), "IUM_access").await.unwrap();
    let seen = fake.seen();
    assert_eq!(seen[0].call(), "POST /rest/api/1.0/admin/users/add-group");
    assert_eq!(
        seen[1].call(),
        "POST /rest/api/1.0/admin/users/remove-group"
    );
    for s in &seen {
        assert_eq!(
            s.json(),
            json!({"context": "bob", "itemName": "IUM_access"})
        );
        assert_eq!(s.content_type.as_deref(), Some("application/json"));
    }
}

#[tokio::test]
async fn bitbucket_classifies_a_missing_group() {
    let fake = Fake::start(|_, _| {
        json(
            404,
            json!({"errors":[{"context":null,"message":"Group IUM_access does not exist.","exceptionName":"com.atlassian.bitbucket.user.NoSuchGroupException"}]}),
        )
    })
    .await;
    assert_eq!(
        bitbucket(&fake).add_to_group(&bob(), "IUM_access").await,
        Err(DirectoryError::GroupMissing("IUM_access".into()))
    );
    assert_eq!(fake.count(), 1);
}

#[tokio::test]
async fn bitbucket_members_follow_next_page_start() {
    // Three pages: 100 + 100 + 1, with the inactive flag carried through.
    let fake = Fake::start(|s, _| {
        let start: u64 = s.param("start").unwrap().parse().unwrap();
        let end = (start + 100).min(201);
        let values: Vec<_> = (start..end)
            .map(|i| json!({"name": format!("u{i}"), "active": i != 200, "slug": format!("u{i}")}))
            .collect();
        let last = end == 201;
        let mut page = json!({"size": end - start, "limit": 100, "isLastPage": last, "values": values, "start": start});
        if !last {
            page["nextPageStart"] = json!(end);
        }
        json(200, page)
    })
    .await;
    let members = bitbucket(&fake).group_members("IUM user").await.unwrap();
    assert_eq!(members.len(), 201);
    assert!(!members[200].active);
    assert!(members[199].active);
    let seen = fake.seen();
    assert_eq!(
        seen[0].call(),
        "GET /rest/api/1.0/admin/groups/more-members"
    );
    assert_eq!(seen[0].query, "context=IUM%20user&start=0&limit=100");
    let starts: Vec<_> = seen.iter().map(|s| s.param("start").unwrap()).collect();
    assert_eq!(starts, ["0", "100", "200"]);
}

#[tokio::test]
async fn bitbucket_user_finds_the_exact_name_among_filter_matches() {
    let fake = Fake::start(|s, _| match s.path.as_str() {
        "/rest/api/1.0/admin/users" => json(
            200,
            json!({"size":2,"limit":100,"isLastPage":true,"start":0,"values":[
                {"name":"bobby","active":true},
                {"name":"Bob","active":false,"lastAuthenticationTimestamp":1700000000000u64}]}),
        ),
        "/rest/api/1.0/admin/users/more-members" => json(
            200,
            json!({"size":1,"limit":100,"isLastPage":true,"start":0,"values":[{"name":"stash-users","deletable":true}]}),
        ),
        _ => reply(404, ""),
    })
    .await;
    let b = bitbucket(&fake);
    assert_eq!(
        b.user(&bob()).await,
        Ok(Some(UserInfo {
            name: bob(),
            active: false,
            groups: vec!["stash-users".into()],
        }))
    );
    let seen = fake.seen();
    assert_eq!(seen[0].param("filter").as_deref(), Some("bob"));
    assert_eq!(seen[1].param("context").as_deref(), Some("bob"));
    assert_eq!(b.user(&UserId::new("bo")).await, Ok(None), "no exact match");
}

#[tokio::test]
async fn bitbucket_licence_reads_maximum_and_current_users() {
    let fake = Fake::start(|_, _| {
        json(
            200,
            json!({"creationDate":1,"expiryDate":2,"maximumNumberOfUsers":250,"unlimitedNumberOfUsers":false,
                   "serverId":"B","supportEntitlementNumber":"SEN","status":{"currentNumberOfUsers":240,"serverId":"B"}}),
        )
    })
    .await;
    assert_eq!(
        bitbucket(&fake).licence("bitbucket").await,
        Ok(Some(LicenceInfo {
            seats: Some(250),
            used: Some(240),
            groups: vec![],
        }))
    );
    assert_eq!(fake.seen()[0].call(), "GET /rest/api/1.0/admin/license");
}

// --------------------------------------------------------------------- Crowd

fn crowd(fake: &Fake) -> CrowdDirectory {
    CrowdDirectory::new(&format!("{}/crowd", fake.url), basic(), opts(2)).unwrap()
}

#[tokio::test]
async fn crowd_add_posts_the_name_and_treats_409_as_done() {
    let fake = Fake::start(|_, n| {
        if n == 0 {
            reply(201, "")
        } else {
            json(
                409,
                json!({"reason":"MEMBERSHIP_ALREADY_EXISTS","message":"exists"}),
            )
        }
    })
    .await;
    let c = crowd(&fake);
    c.add_to_group(&bob(), "IUM access").await.unwrap();
    c.add_to_group(&bob(), "IUM access").await.unwrap();
    let s = &fake.seen()[0];
    assert_eq!(
        s.call(),
        "POST /crowd/rest/usermanagement/1/group/user/direct"
    );
    assert_eq!(s.query, "groupname=IUM%20access");
    assert_eq!(s.json(), json!({"name":"bob"}));
    assert_eq!(s.authorization.as_deref(), Some(basic_header().as_str()));
    assert_eq!(fake.count(), 2, "409 is not retried");
}

#[tokio::test]
async fn crowd_add_maps_400_to_user_missing_and_404_to_group_missing() {
    let fake = Fake::start(|_, n| match n {
        0 => json(
            400,
            json!({"reason":"USER_NOT_FOUND","message":"User <bob> does not exist"}),
        ),
        _ => json(
            404,
            json!({"reason":"GROUP_NOT_FOUND","message":"Group <g> does not exist"}),
        ),
    })
    .await;
    let c = crowd(&fake);
    assert_eq!(
        c.add_to_group(&bob(), "g").await,
        Err(DirectoryError::UserMissing("bob".into()))
    );
    assert_eq!(
        c.add_to_group(&bob(), "g").await,
        Err(DirectoryError::GroupMissing("g".into()))
    );
    assert_eq!(fake.count(), 2);
}

#[tokio::test]
async fn crowd_remove_of_a_non_member_is_ok() {
    let fake = Fake::start(|_, _| {
        json(
            404,
            json!({"reason":"MEMBERSHIP_NOT_FOUND","message":"bob is not a member of g"}),
        )
    })
    .await;
    assert_eq!(crowd(&fake).remove_from_group(&bob(), "g").await, Ok(()));
    let s = &fake.seen()[0];
    assert_eq!(
        s.call(),
        "DELETE /crowd/rest/usermanagement/1/group/user/direct"
    );
    assert_eq!(s.query, "groupname=g&username=bob");
}

#[tokio::test]
async fn crowd_members_page_by_start_index_with_active_flags() {
    // 1000 + 1000 + 3 members; a short page ends the list.
    let fake = Fake::start(|s, _| {
        let start: usize = s.param("start-index").unwrap().parse().unwrap();
        let end = (start + 1000).min(2003);
        let users: Vec<_> = (start..end)
            .map(|i| json!({"name": format!("u{i}"), "active": i != 2002}))
            .collect();
        json(200, json!({"expand":"user","users": users}))
    })
    .await;
    let members = crowd(&fake).group_members("IUM_user").await.unwrap();
    assert_eq!(members.len(), 2003);
    assert!(!members[2002].active && members[2001].active);
    let seen = fake.seen();
    let starts: Vec<_> = seen
        .iter()
        .map(|s| s.param("start-index").unwrap())
        .collect();
    assert_eq!(starts, ["0", "1000", "2000"]);
    assert!(seen
        .iter()
        .all(|s| s.param("max-results").as_deref() == Some("1000")
            && s.param("expand").as_deref() == Some("user")
            && s.param("groupname").as_deref() == Some("IUM_user")));
}

#[tokio::test]
async fn crowd_user_reads_nested_groups_and_licence_is_none() {
    let fake = Fake::start(
        |s, _| match (s.path.as_str(), s.param("username").as_deref()) {
            ("/crowd/rest/usermanagement/1/user", Some("erin")) => {
                json(200, json!({"name":"erin","active":true,"email":"e@x"}))
            }
            ("/crowd/rest/usermanagement/1/user/group/nested", Some("erin")) => json(
                200,
                json!({"expand":"group","groups":[{"name":"jira-users"}]}),
            ),
            _ => json(404, json!({"reason":"USER_NOT_FOUND","message":"no"})),
        },
    )
    .await;
    let c = crowd(&fake);
    assert_eq!(
        c.user(&UserId::new("erin")).await,
        Ok(Some(UserInfo {
            name: UserId::new("erin"),
            active: true,
            groups: vec!["jira-users".into()],
        }))
    );
    assert_eq!(c.user(&UserId::new("nobody")).await, Ok(None));
    let before = fake.count();
    assert_eq!(c.licence("jira-software").await, Ok(None));
    assert_eq!(fake.count(), before, "Crowd has no licence call");
}

// ---------------------------------------------------------------- from_config

fn config(product: &str, url: &str, creds: &str) -> Config {
    let text = format!(
        "[proxy]\nupstream = \"{url}\"\nproduct = \"{product}\"\n\n[directory]\nretries = 0\n{creds}\n"
    );
    Config::parse(&text).unwrap()
}

fn secret_file(dir: &tempfile::TempDir, name: &str, value: &str) -> String {
    let p = dir.path().join(name);
    std::fs::write(&p, format!("{value}\n")).unwrap();
    p.display().to_string()
}

#[tokio::test]
async fn from_config_builds_the_products_client_with_its_credentials() {
    let fake = Fake::start(|s, _| match s.path.as_str() {
        "/rest/api/2/applicationrole" => json(
            200,
            json!([{"key":"jira-software","numberOfSeats":10,"userCount":1,"groups":[]}]),
        ),
        "/rest/api/1.0/admin/license" => json(200, json!({"maximumNumberOfUsers":20})),
        _ => reply(404, ""),
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let token = secret_file(&dir, "token", "PAT-123");
    let password = secret_file(&dir, "pw", PASSWORD);

    let cfg = config("jira", &fake.url, &format!("token_file = \"{token}\""));
    let d = directory::from_config(&cfg).unwrap();
    assert!(format!("{d:?}").starts_with("JiraDirectory"));
    assert_eq!(
        d.licence("jira-software").await.unwrap().unwrap().seats,
        Some(10)
    );
    assert_eq!(
        fake.seen()[0].authorization.as_deref(),
        Some("Bearer PAT-123")
    );

    let cfg = config(
        "bitbucket",
        &fake.url,
        &format!("username = \"svc\"\npassword_file = \"{password}\""),
    );
    let rec = Arc::new(Recorder::default());
    let d = directory::from_config_with_observer(&cfg, rec.clone()).unwrap();
    assert_eq!(d.licence("x").await.unwrap().unwrap().seats, Some(20));
    assert_eq!(
        fake.seen()[1].authorization.as_deref(),
        Some(basic_header().as_str())
    );
    assert_eq!(*rec.0.lock().unwrap(), [("licence", "ok")]);

    let cfg = config(
        "jira",
        &fake.url,
        &format!("kind = \"crowd\"\nusername = \"svc\"\npassword_file = \"{password}\""),
    );
    assert!(format!("{:?}", directory::from_config(&cfg).unwrap()).starts_with("CrowdDirectory"));
}

#[test]
fn from_config_refuses_missing_or_unfit_credentials() {
    let cfg = config("jira", "http://127.0.0.1:1", "");
    let err = directory::from_config(&cfg).unwrap_err();
    assert_eq!(err.key, "directory");
    let err = err.to_string();
    assert!(err.contains("no credentials"), "{err}");

    let cfg = config(
        "confluence",
        "http://127.0.0.1:1",
        "token_env = \"IUMGATE_TEST_SURELY_UNSET_TOKEN\"",
    );
    let err = directory::from_config(&cfg).unwrap_err();
    assert_eq!(err.key, "directory.token_env / token_file");
    // The variable is named by the secret's error, kept as the source.
    assert!(std::error::Error::source(&err).is_some(), "{err:?}");
    let err = iumgate::proxy::error_chain(&err);
    assert!(err.contains("IUMGATE_TEST_SURELY_UNSET_TOKEN"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let token = secret_file(&dir, "token", "PAT-123");
    let cfg = config(
        "jira",
        "http://127.0.0.1:1",
        &format!("kind = \"crowd\"\ntoken_file = \"{token}\""),
    );
    let err = directory::from_config(&cfg).unwrap_err().to_string();
    assert!(err.contains("Crowd"), "{err}");
    assert!(!err.contains("PAT-123"));
}
