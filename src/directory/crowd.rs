//! Crowd, as an application: `/rest/usermanagement/1/group/user/direct`,
//! `/user`, `/user/group/nested`. Crowd answers errors with a `reason`
//! (`USER_NOT_FOUND`, `GROUP_NOT_FOUND`, …), which is read before any text.

use super::http::{self, enc, mentions_read_only, Answer, Asked, Transport};
use super::{Directory, DirectoryError, LicenceInfo, Member, UserInfo};
use crate::user::UserId;
use async_trait::async_trait;
use reqwest::Method;
use serde::Deserialize;

/// Crowd's own default page size.
const PAGE: usize = 1000;

client!(CrowdDirectory, "crowd");

#[derive(Deserialize)]
struct Users {
    #[serde(default)]
    users: Vec<CrowdUser>,
}

#[derive(Deserialize)]
struct CrowdUser {
    name: String,
    #[serde(default = "http::yes")]
    active: bool,
}

#[derive(Deserialize)]
struct Groups {
    #[serde(default)]
    groups: Vec<Named>,
}

#[derive(Deserialize)]
struct Named {
    name: String,
}

/// Crowd's `reason`, when it settles the outcome of a membership change.
fn by_reason(ans: &Answer, user: &UserId, group: &str) -> Option<Result<(), DirectoryError>> {
    match ans.reason()?.as_str() {
        "USER_NOT_FOUND" => Some(Err(DirectoryError::UserMissing(user.to_string()))),
        "GROUP_NOT_FOUND" => Some(Err(DirectoryError::GroupMissing(group.to_string()))),
        // Already in the state asked for.
        "MEMBERSHIP_NOT_FOUND" | "MEMBERSHIP_ALREADY_EXISTS" => Some(Ok(())),
        _ => None,
    }
}

#[async_trait]
impl Directory for CrowdDirectory {
    async fn add_to_group(&self, user: &UserId, group: &str) -> Result<(), DirectoryError> {
        self.t
            .observe("add_to_group", async {
                let path = format!(
                    "/rest/usermanagement/1/group/user/direct?groupname={}",
                    enc(group)
                );
                let body = serde_json::json!({ "name": user.as_str() });
                let ans = self.t.call(Method::POST, &path, Some(&body)).await?;
                if ans.is_success() || ans.status == 409 {
                    return Ok(());
                }
                if let Some(r) = by_reason(&ans, user, group) {
                    return r;
                }
                match ans.status {
                    // Crowd's documented meanings of 400 and 404 for this call.
                    400 if !mentions_read_only(&ans.message()) => {
                        Err(DirectoryError::UserMissing(user.to_string()))
                    }
                    404 => Err(DirectoryError::GroupMissing(group.to_string())),
                    _ => Err(http::classify(&ans, Asked::both(user.as_str(), group))),
                }
            })
            .await
    }

    async fn remove_from_group(&self, user: &UserId, group: &str) -> Result<(), DirectoryError> {
        self.t
            .observe("remove_from_group", async {
                let path = format!(
                    "/rest/usermanagement/1/group/user/direct?groupname={}&username={}",
                    enc(group),
                    enc(user.as_str())
                );
                let ans = self.t.call(Method::DELETE, &path, None).await?;
                if ans.is_success() {
                    return Ok(());
                }
                if let Some(r) = by_reason(&ans, user, group) {
                    return r;
                }
                if ans.status == 404 && ans.message().to_lowercase().contains("not a member") {
                    return Ok(());
                }
                Err(http::classify(&ans, Asked::both(user.as_str(), group)))
            })
            .await
    }

    async fn group_members(&self, group: &str) -> Result<Vec<Member>, DirectoryError> {
        self.t
            .observe("group_members", async {
                let mut members = Vec::new();
                let mut start = 0u64;
                for _ in 0..http::MAX_PAGES {
                    // expand=user: without it Crowd lists names only, no `active`.
                    let path = format!(
                        "/rest/usermanagement/1/group/user/direct?groupname={}&start-index={start}&max-results={PAGE}&expand=user",
                        enc(group)
                    );
                    let ans = self.t.call(Method::GET, &path, None).await?;
                    if !ans.is_success() {
                        if ans.reason().as_deref() == Some("GROUP_NOT_FOUND") {
                            return Err(DirectoryError::GroupMissing(group.to_string()));
                        }
                        return Err(http::classify(&ans, Asked::group(group)));
                    }
                    let page: Users = ans.json()?;
                    let n = page.users.len();
                    members.extend(page.users.into_iter().map(|u| Member {
                        name: UserId::new(&u.name),
                        active: u.active,
                    }));
                    // Crowd has no "last page" flag: a short page is the last.
                    if n < PAGE {
                        return Ok(members);
                    }
                    start += n as u64;
                }
                Err(http::too_many_pages("crowd group members"))
            })
            .await
    }

    async fn user(&self, user: &UserId) -> Result<Option<UserInfo>, DirectoryError> {
        self.t
            .observe("user", async {
                let path = format!(
                    "/rest/usermanagement/1/user?username={}",
                    enc(user.as_str())
                );
                let Some(u) = self
                    .t
                    .get_optional::<CrowdUser>(&path, Asked::user(user.as_str()))
                    .await?
                else {
                    return Ok(None);
                };
                // Nested: a fixed licence often comes through a parent group.
                let mut groups = Vec::new();
                let mut start = 0u64;
                for _ in 0..http::MAX_PAGES {
                    let path = format!(
                        "/rest/usermanagement/1/user/group/nested?username={}&start-index={start}&max-results={PAGE}",
                        enc(user.as_str())
                    );
                    // Deleted between the two calls: as if it never existed.
                    let Some(page) = self
                        .t
                        .get_optional::<Groups>(&path, Asked::user(user.as_str()))
                        .await?
                    else {
                        return Ok(None);
                    };
                    let n = page.groups.len();
                    groups.extend(page.groups.into_iter().map(|g| g.name));
                    if n < PAGE {
                        return Ok(Some(UserInfo {
                            name: UserId::new(&u.name),
                            active: u.active,
                            groups,
                        }));
                    }
                    start += n as u64;
                }
                Err(http::too_many_pages("crowd user groups"))
            })
            .await
    }

    /// Crowd does not count application licences.
    async fn licence(&self, _application: &str) -> Result<Option<LicenceInfo>, DirectoryError> {
        self.t.observe("licence", async { Ok(None) }).await
    }
}
