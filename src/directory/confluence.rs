//! Confluence Data Center (8.x/9.x REST): `/rest/api/user/{u}/group/{g}`,
//! `/rest/api/group/{g}/member`, `/rest/api/user`, `/rest/license/1.0/…`.

use super::http::{self, enc, Asked, Transport};
use super::{Directory, DirectoryError, LicenceInfo, Member, UserInfo};
use crate::user::UserId;
use async_trait::async_trait;
use reqwest::Method;
use serde::Deserialize;

/// Confluence's largest page for group members and memberships.
const PAGE: usize = 200;

client!(ConfluenceDirectory, "confluence");

impl ConfluenceDirectory {
    /// Reads every page of a `{"results","start","limit","size","_links"}`
    /// list; `start` and `limit` are added to `path`'s query.
    /// `Ok(None)` when the first page is a 404 and `none_on_404` is set.
    async fn all_pages<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        asked: Asked<'_>,
        none_on_404: bool,
    ) -> Result<Option<Vec<T>>, DirectoryError> {
        let mut out = Vec::new();
        let mut start = 0u64;
        for _ in 0..http::MAX_PAGES {
            let sep = if path.contains('?') { '&' } else { '?' };
            let url = format!("{path}{sep}start={start}&limit={PAGE}");
            let ans = self.t.call(Method::GET, &url, None).await?;
            if none_on_404 && ans.status == 404 && start == 0 {
                return Ok(None);
            }
            ans.ok_or_classify(asked)?;
            let page: Page<T> = ans.json()?;
            let n = page.results.len();
            out.extend(page.results);
            // `_links.next` is Confluence's own "there is more"; without links,
            // a full page (by the limit it answered) means there may be more.
            let more = match &page.links {
                Some(l) => l.next.is_some(),
                None => n > 0 && n >= page.limit.unwrap_or(PAGE as u64) as usize,
            };
            if !more {
                return Ok(Some(out));
            }
            if n == 0 {
                return Err(http::stuck_paging(&ans, start));
            }
            start += n as u64;
        }
        Err(http::too_many_pages("confluence list"))
    }

    /// `/rest/license/1.0/license/{what}` → `{"count": N}` (or a bare number).
    async fn licence_count(&self, what: &str) -> Result<Option<i64>, DirectoryError> {
        let ans = self
            .t
            .call(
                Method::GET,
                &format!("/rest/license/1.0/license/{what}"),
                None,
            )
            .await?;
        ans.ok_or_classify(Asked::default())?;
        let v: serde_json::Value = ans.json()?;
        let n = match &v {
            serde_json::Value::Number(n) => n.as_i64(),
            serde_json::Value::Object(m) => m.get("count").and_then(serde_json::Value::as_i64),
            _ => None,
        };
        match n {
            Some(n) => Ok(Some(n)),
            None => Err(DirectoryError::Unexpected {
                status: ans.status,
                detail: format!("{}: no `count` in the answer", ans.call),
            }),
        }
    }
}

#[derive(Deserialize)]
struct Page<T> {
    #[serde(default = "Vec::new")]
    results: Vec<T>,
    limit: Option<u64>,
    #[serde(rename = "_links")]
    links: Option<Links>,
}

#[derive(Deserialize)]
struct Links {
    next: Option<String>,
}

#[derive(Deserialize)]
struct ConfluenceUser {
    /// Absent for anonymous entries; those are skipped.
    username: Option<String>,
    /// Not part of Confluence's user object today; read if a version adds it.
    #[serde(default = "http::yes")]
    active: bool,
}

#[derive(Deserialize)]
struct ConfluenceGroup {
    name: String,
}

#[async_trait]
impl Directory for ConfluenceDirectory {
    async fn add_to_group(&self, user: &UserId, group: &str) -> Result<(), DirectoryError> {
        self.t
            .observe("add_to_group", async {
                // Idempotent: adding a member again answers 204.
                let path = format!("/rest/api/user/{}/group/{}", enc(user.as_str()), enc(group));
                let ans = self.t.call(Method::PUT, &path, None).await?;
                ans.ok_or_classify(Asked::both(user.as_str(), group))
            })
            .await
    }

    async fn remove_from_group(&self, user: &UserId, group: &str) -> Result<(), DirectoryError> {
        self.t
            .observe("remove_from_group", async {
                let path = format!("/rest/api/user/{}/group/{}", enc(user.as_str()), enc(group));
                let ans = self.t.call(Method::DELETE, &path, None).await?;
                ans.ok_or_classify(Asked::both(user.as_str(), group))
            })
            .await
    }

    async fn group_members(&self, group: &str) -> Result<Vec<Member>, DirectoryError> {
        self.t
            .observe("group_members", async {
                let path = format!("/rest/api/group/{}/member", enc(group));
                let users: Vec<ConfluenceUser> = self
                    .all_pages(&path, Asked::group(group), false)
                    .await?
                    .unwrap_or_default();
                // The member list carries no active flag: everyone counts as active.
                Ok(users
                    .into_iter()
                    .filter_map(|u| u.username)
                    .map(|name| Member {
                        name: UserId::new(&name),
                        active: true,
                    })
                    .collect())
            })
            .await
    }

    async fn user(&self, user: &UserId) -> Result<Option<UserInfo>, DirectoryError> {
        self.t
            .observe("user", async {
                let path = format!("/rest/api/user?username={}", enc(user.as_str()));
                let Some(u) = self
                    .t
                    .get_optional::<ConfluenceUser>(&path, Asked::user(user.as_str()))
                    .await?
                else {
                    return Ok(None);
                };
                let path = format!("/rest/api/user/memberof?username={}", enc(user.as_str()));
                // Deleted between the two calls: as if it never existed.
                let Some(groups) = self
                    .all_pages::<ConfluenceGroup>(&path, Asked::user(user.as_str()), true)
                    .await?
                else {
                    return Ok(None);
                };
                Ok(Some(UserInfo {
                    name: UserId::new(u.username.as_deref().unwrap_or(user.as_str())),
                    active: u.active,
                    groups: groups.into_iter().map(|g| g.name).collect(),
                }))
            })
            .await
    }

    async fn licence(&self, _application: &str) -> Result<Option<LicenceInfo>, DirectoryError> {
        self.t
            .observe("licence", async {
                let max = self.licence_count("maxUsers").await?;
                let used = self.licence_count("userCount").await?;
                Ok(Some(LicenceInfo {
                    // -1 means unlimited.
                    seats: http::seats(max),
                    used: http::seats(used),
                    groups: Vec::new(),
                }))
            })
            .await
    }
}
