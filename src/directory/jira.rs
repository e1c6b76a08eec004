//! Jira Data Center: `/rest/api/2/group/user`, `/group/member`, `/user`,
//! `/applicationrole`.

use super::http::{self, enc, Asked, Transport};
use super::{Directory, DirectoryError, LicenceInfo, Member, UserInfo};
use crate::user::UserId;
use async_trait::async_trait;
use reqwest::Method;
use serde::Deserialize;

/// Jira's page size for group members (its maximum is 50).
const PAGE: usize = 50;

client!(JiraDirectory, "jira");

#[derive(Deserialize)]
struct MemberPage {
    #[serde(default)]
    values: Vec<JiraUser>,
    #[serde(rename = "isLast")]
    is_last: Option<bool>,
}

#[derive(Deserialize)]
struct JiraUser {
    name: String,
    #[serde(default = "http::yes")]
    active: bool,
    #[serde(default)]
    groups: Option<GroupList>,
}

#[derive(Deserialize)]
struct GroupList {
    #[serde(default)]
    items: Vec<Named>,
}

#[derive(Deserialize)]
struct Named {
    name: String,
}

#[derive(Deserialize)]
struct Role {
    key: String,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(rename = "numberOfSeats")]
    number_of_seats: Option<i64>,
    #[serde(rename = "userCount")]
    user_count: Option<i64>,
    #[serde(rename = "hasUnlimitedSeats", default)]
    has_unlimited_seats: bool,
}

fn says(ans: &http::Answer, phrase: &str) -> bool {
    ans.message().to_lowercase().contains(phrase)
}

#[async_trait]
impl Directory for JiraDirectory {
    async fn add_to_group(&self, user: &UserId, group: &str) -> Result<(), DirectoryError> {
        self.t
            .observe("add_to_group", async {
                let path = format!("/rest/api/2/group/user?groupname={}", enc(group));
                let body = serde_json::json!({ "name": user.as_str() });
                let ans = self.t.call(Method::POST, &path, Some(&body)).await?;
                // Jira refuses a second add with 400; the end state is what we want.
                if ans.status == 400 && says(&ans, "already a member") {
                    return Ok(());
                }
                ans.ok_or_classify(Asked::both(user.as_str(), group))
            })
            .await
    }

    async fn remove_from_group(&self, user: &UserId, group: &str) -> Result<(), DirectoryError> {
        self.t
            .observe("remove_from_group", async {
                let path = format!(
                    "/rest/api/2/group/user?groupname={}&username={}",
                    enc(group),
                    enc(user.as_str())
                );
                let ans = self.t.call(Method::DELETE, &path, None).await?;
                if ans.status == 400 && says(&ans, "not a member") {
                    return Ok(());
                }
                ans.ok_or_classify(Asked::both(user.as_str(), group))
            })
            .await
    }

    async fn group_members(&self, group: &str) -> Result<Vec<Member>, DirectoryError> {
        self.t
            .observe("group_members", async {
                let mut members = Vec::new();
                let mut start = 0u64;
                for _ in 0..http::MAX_PAGES {
                    let path = format!(
                        "/rest/api/2/group/member?groupname={}&includeInactiveUsers=true&startAt={start}&maxResults={PAGE}",
                        enc(group)
                    );
                    let ans = self.t.call(Method::GET, &path, None).await?;
                    ans.ok_or_classify(Asked::group(group))?;
                    let page: MemberPage = ans.json()?;
                    let n = page.values.len();
                    members.extend(page.values.into_iter().map(|u| Member {
                        name: UserId::new(&u.name),
                        active: u.active,
                    }));
                    if page.is_last.unwrap_or(n < PAGE) {
                        return Ok(members);
                    }
                    if n == 0 {
                        return Err(http::stuck_paging(&ans, start));
                    }
                    start += n as u64;
                }
                Err(http::too_many_pages("jira group members"))
            })
            .await
    }

    async fn user(&self, user: &UserId) -> Result<Option<UserInfo>, DirectoryError> {
        self.t
            .observe("user", async {
                let path = format!(
                    "/rest/api/2/user?username={}&expand=groups",
                    enc(user.as_str())
                );
                let Some(u) = self
                    .t
                    .get_optional::<JiraUser>(&path, Asked::user(user.as_str()))
                    .await?
                else {
                    return Ok(None);
                };
                Ok(Some(UserInfo {
                    name: UserId::new(&u.name),
                    active: u.active,
                    groups: u
                        .groups
                        .map(|g| g.items.into_iter().map(|n| n.name).collect())
                        .unwrap_or_default(),
                }))
            })
            .await
    }

    async fn licence(&self, application: &str) -> Result<Option<LicenceInfo>, DirectoryError> {
        self.t
            .observe("licence", async {
                let ans = self
                    .t
                    .call(Method::GET, "/rest/api/2/applicationrole", None)
                    .await?;
                ans.ok_or_classify(Asked::default())?;
                let roles: Vec<Role> = ans.json()?;
                let known: Vec<String> = roles.iter().map(|r| r.key.clone()).collect();
                let Some(role) = roles.into_iter().find(|r| r.key == application) else {
                    // A wrong key is a config error; "no licence info" would hide it.
                    return Err(DirectoryError::Unexpected {
                        status: ans.status,
                        detail: format!(
                            "{}: no application role `{application}`; this Jira has: {}",
                            ans.call,
                            known.join(", ")
                        ),
                    });
                };
                Ok(Some(LicenceInfo {
                    seats: if role.has_unlimited_seats {
                        None
                    } else {
                        http::seats(role.number_of_seats)
                    },
                    used: http::seats(role.user_count),
                    groups: role.groups,
                }))
            })
            .await
    }
}
