//! Bitbucket Data Center: `/rest/api/1.0/admin/users/add-group`,
//! `remove-group`, `/admin/groups/more-members`, `/admin/users`,
//! `/admin/license`.

use super::http::{self, enc, Asked, Transport};
use super::{Directory, DirectoryError, LicenceInfo, Member, UserInfo};
use crate::user::UserId;
use async_trait::async_trait;
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Deserialize;

/// Bitbucket caps pages at 1000 by default; 100 keeps each answer small.
const PAGE: usize = 100;

client!(BitbucketDirectory, "bitbucket");

impl BitbucketDirectory {
    /// Reads every page of a `{"values","isLastPage","nextPageStart"}` list,
    /// or stops early when `found` says so. `Ok(None)`: the first page was a
    /// 404 and `none_on_404` is set.
    async fn pages<T: DeserializeOwned>(
        &self,
        path: &str,
        asked: Asked<'_>,
        none_on_404: bool,
        found: impl Fn(&T) -> bool,
    ) -> Result<Option<Vec<T>>, DirectoryError> {
        let mut out = Vec::new();
        let mut start = 0u64;
        for _ in 0..http::MAX_PAGES {
            let url = format!("{path}&start={start}&limit={PAGE}");
            let ans = self.t.call(Method::GET, &url, None).await?;
            if none_on_404 && ans.status == 404 && start == 0 {
                return Ok(None);
            }
            ans.ok_or_classify(asked)?;
            let page: Page<T> = ans.json()?;
            let n = page.values.len();
            let hit = page.values.iter().any(&found);
            out.extend(page.values);
            if hit || page.is_last_page.unwrap_or(n < PAGE) {
                return Ok(Some(out));
            }
            let next = page.next_page_start.unwrap_or(start + n as u64);
            if n == 0 || next <= start {
                return Err(http::stuck_paging(&ans, start));
            }
            start = next;
        }
        Err(http::too_many_pages("bitbucket list"))
    }

    async fn membership(&self, op: &str, user: &UserId, group: &str) -> Result<(), DirectoryError> {
        // context = the user, itemName = the group (Atlassian's own example
        // swaps them; this order is the one the server reads).
        let body = serde_json::json!({ "context": user.as_str(), "itemName": group });
        let path = format!("/rest/api/1.0/admin/users/{op}");
        let ans = self.t.call(Method::POST, &path, Some(&body)).await?;
        ans.ok_or_classify(Asked::both(user.as_str(), group))
    }
}

#[derive(Deserialize)]
struct Page<T> {
    #[serde(default = "Vec::new")]
    values: Vec<T>,
    #[serde(rename = "isLastPage")]
    is_last_page: Option<bool>,
    #[serde(rename = "nextPageStart")]
    next_page_start: Option<u64>,
}

#[derive(Deserialize)]
struct BbUser {
    name: String,
    #[serde(default = "http::yes")]
    active: bool,
}

#[derive(Deserialize)]
struct BbGroup {
    name: String,
}

#[derive(Deserialize)]
struct BbLicence {
    #[serde(rename = "maximumNumberOfUsers")]
    maximum_number_of_users: Option<i64>,
    #[serde(rename = "unlimitedNumberOfUsers", default)]
    unlimited_number_of_users: bool,
    status: Option<BbLicenceStatus>,
}

#[derive(Deserialize)]
struct BbLicenceStatus {
    #[serde(rename = "currentNumberOfUsers")]
    current_number_of_users: Option<i64>,
}

#[async_trait]
impl Directory for BitbucketDirectory {
    async fn add_to_group(&self, user: &UserId, group: &str) -> Result<(), DirectoryError> {
        self.t
            .observe("add_to_group", self.membership("add-group", user, group))
            .await
    }

    async fn remove_from_group(&self, user: &UserId, group: &str) -> Result<(), DirectoryError> {
        self.t
            .observe(
                "remove_from_group",
                self.membership("remove-group", user, group),
            )
            .await
    }

    async fn group_members(&self, group: &str) -> Result<Vec<Member>, DirectoryError> {
        self.t
            .observe("group_members", async {
                let path = format!(
                    "/rest/api/1.0/admin/groups/more-members?context={}",
                    enc(group)
                );
                let users: Vec<BbUser> = self
                    .pages(&path, Asked::group(group), false, |_| false)
                    .await?
                    .unwrap_or_default();
                Ok(users
                    .into_iter()
                    .map(|u| Member {
                        name: UserId::new(&u.name),
                        active: u.active,
                    })
                    .collect())
            })
            .await
    }

    async fn user(&self, user: &UserId) -> Result<Option<UserInfo>, DirectoryError> {
        self.t
            .observe("user", async {
                // `filter` matches substrings ("bob" finds "bobby" too): page
                // until the exact name turns up.
                let path = format!("/rest/api/1.0/admin/users?filter={}", enc(user.as_str()));
                let same = |u: &BbUser| UserId::new(&u.name) == *user;
                let users: Vec<BbUser> = self
                    .pages(&path, Asked::user(user.as_str()), false, same)
                    .await?
                    .unwrap_or_default();
                let Some(found) = users.into_iter().find(same) else {
                    return Ok(None);
                };
                let path = format!(
                    "/rest/api/1.0/admin/users/more-members?context={}",
                    enc(user.as_str())
                );
                // Deleted between the two calls: as if it never existed.
                let Some(groups) = self
                    .pages::<BbGroup>(&path, Asked::user(user.as_str()), true, |_| false)
                    .await?
                else {
                    return Ok(None);
                };
                Ok(Some(UserInfo {
                    name: UserId::new(&found.name),
                    active: found.active,
                    groups: groups.into_iter().map(|g| g.name).collect(),
                }))
            })
            .await
    }

    async fn licence(&self, _application: &str) -> Result<Option<LicenceInfo>, DirectoryError> {
        self.t
            .observe("licence", async {
                let ans = self
                    .t
                    .call(Method::GET, "/rest/api/1.0/admin/license", None)
                    .await?;
                ans.ok_or_classify(Asked::default())?;
                let l: BbLicence = ans.json()?;
                Ok(Some(LicenceInfo {
                    seats: if l.unlimited_number_of_users {
                        None
                    } else {
                        http::seats(l.maximum_number_of_users)
                    },
                    used: http::seats(l.status.and_then(|s| s.current_number_of_users)),
                    groups: Vec::new(),
                }))
            })
            .await
    }
}
