//! `/iumgate/…`: the waiting room. The page polls `/iumgate/api/queue`; each
//! poll is also an admission attempt, so a waiter is let in by the page
//! itself as soon as a seat frees (and, without JavaScript, by the page's
//! meta refresh doing the same). A login that had to wait is repeated once
//! its seat is there ([`resume`], `/iumgate/resume`). A request that finds
//! no seat is answered here too ([`answer`]: the redirect to this page and
//! its wait cookie, git's line, an API client's 503).

mod answer;
pub(super) mod resume;

pub use answer::WAIT_COOKIE;
pub(crate) use answer::{pct, WaitFor};

use super::{Class, Gate, Outcome};
use crate::pages::wait::{QueueState, WaitView};
use crate::pages::{self, local_path, Lang};
use crate::pool::Mode;
use crate::wire::body::Body;
use http::{Request, Response, StatusCode};

impl Gate {
    pub(crate) async fn waitroom(&self, req: Request<Body>) -> Response<Body> {
        let path = req.uri().path().to_owned();
        let to = req
            .uri()
            .query()
            .and_then(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .find(|(k, _)| k == "to")
                    .map(|(_, v)| v.into_owned())
            })
            .unwrap_or_else(|| "/".into());
        let to = local_path(&to).unwrap_or("/").to_owned();
        let lang = Lang::from_headers(req.headers());
        match path.as_str() {
            "/iumgate/resume" => self.resume_login(req.headers()).await,
            "/iumgate/wait" | "/iumgate/wait/" => {
                let state = self.poll_state(req.headers()).await;
                if state == QueueState::Admitted {
                    if self.has_pending_login(req.headers()) {
                        return redirect("/iumgate/resume");
                    }
                    return redirect(&to);
                }
                let s = self.settings.load();
                let view = WaitView {
                    lang,
                    state: &state,
                    to: &to,
                    retry_s: s.retry_every_s,
                    logo_url: s.logo_url.as_deref(),
                    message: s.message.as_deref(),
                    login_url: &format!(
                        "{}?{}={}",
                        s.profile.login_page,
                        s.profile.login_destination_param,
                        pct(&to)
                    ),
                };
                pages::Own::html(pages::wait::render(&view)).build()
            }
            "/iumgate/api/queue" => {
                let state = self.poll_state(req.headers()).await;
                let retry = self.settings.load().retry_every_s;
                let to = if state == QueueState::Admitted && self.has_pending_login(req.headers()) {
                    "/iumgate/resume".to_string()
                } else {
                    to
                };
                let body = match &state {
                    QueueState::Admitted => {
                        format!("{{\"state\":\"admitted\",\"to\":{}}}", pages::json_str(&to))
                    }
                    QueueState::Waiting { position, eta_s } => format!(
                        "{{\"state\":\"waiting\",\"position\":{position},\"retry_after\":{retry}{}}}",
                        eta_s.map(|e| format!(",\"eta_seconds\":{e}")).unwrap_or_default()
                    ),
                    QueueState::Unavailable => {
                        format!("{{\"state\":\"unavailable\",\"retry_after\":{retry}}}")
                    }
                    QueueState::Unknown => "{\"state\":\"unknown\"}".to_string(),
                };
                pages::Own::json(StatusCode::OK, body).build()
            }
            _ => pages::error(StatusCode::NOT_FOUND, req.headers(), "no such page"),
        }
    }

    /// One poll: who is waiting, and can they be let in now?
    pub async fn poll_state(&self, headers: &http::HeaderMap) -> QueueState {
        let user = match self.waiting_user(headers) {
            Some(u) => Some(u),
            // A waiter queued at another replica of the cluster.
            None => self.shared_waiting_user(headers).await,
        };
        let Some(user) = user else {
            return QueueState::Unknown;
        };
        // A waiter for another pool's seat (`[pools.*]`) is let in there.
        if let Some(i) = self.waits_in_pool(&user) {
            if let Some(p) = self.pools().get(i) {
                let state = p.gate.poll_user(&user).await;
                if state == QueueState::Admitted {
                    self.pool_wait_over(&user);
                }
                return state;
            }
        }
        self.poll_user(&user).await
    }

    /// One poll of a known waiter of this gate's pool.
    async fn poll_user(&self, user: &crate::user::UserId) -> QueueState {
        let user = user.clone();
        if self.holds(&user) {
            return QueueState::Admitted;
        }
        if self.class_of(&user).unwrap_or(Class::Casual) != Class::Casual {
            return QueueState::Admitted;
        }
        match self.admit(&user, Mode::MayEvict).await {
            Outcome::Pass => QueueState::Admitted,
            Outcome::Wait { position } => QueueState::Waiting {
                position,
                eta_s: self.estimate_wait_s(position),
            },
            Outcome::NoFreeSeat => QueueState::Waiting {
                position: 0,
                eta_s: None,
            },
            Outcome::Unavailable => QueueState::Unavailable,
        }
    }

    /// When the `position`-th waiter could get a seat if nobody were active
    /// again: the `position`-th smallest "last activity + min_idle".
    pub fn estimate_wait_s(&self, position: usize) -> Option<u64> {
        let now = self.now();
        let min_idle = self.settings.load().min_idle_ms;
        let mut free_at: Vec<u64> = self.with_pool(|p| {
            p.holders()
                .iter()
                .map(|h| h.last_active.saturating_add(min_idle))
                .collect()
        });
        if position == 0 || free_at.len() < position {
            return None;
        }
        let (_, nth, _) = free_at.select_nth_unstable(position - 1);
        Some(nth.saturating_sub(now) / 1000)
    }
}

fn redirect(to: &str) -> Response<Body> {
    pages::Own::redirect(StatusCode::SEE_OTHER, to).build()
}
