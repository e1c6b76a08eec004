//! How the gate knows who a request is for, and what that knowledge may
//! cost anyone: the claim model (docs/SECURITY.md, "Claims").
//!
//! The rule: only what the app confirmed may cost anyone a seat. A login
//! field or a Basic name is a claim: at most it borrows a free seat for the
//! exchange ([`Borrow`]) and gives it back whatever happens, unless the app's
//! answer confirms it.

use super::Gate;
use crate::pool::{Mode, ReleaseReason};
use crate::user::UserId;
use dashmap::DashSet;
use rustc_hash::FxBuildHasher;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Weak;

/// How an identity is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// A session cookie, remember-me cookie or token bound from the app's
    /// own answer (the app named the user for it).
    Session,
    /// The app answered for that very user: `X-AUSERNAME` names them, or
    /// its login verdict proves the password (`OK`, `AUTHORISATION_FAILED`).
    Proven,
    /// A signature iumgate checked itself.
    Verified,
    /// A login field or a Basic-auth name: nobody has checked it yet.
    Unconfirmed,
}

/// What an identity of one [`Standing`] may do; one row of the claim table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rights {
    /// Take a free seat for the exchange (given back unless confirmed).
    pub borrow_free_seat: bool,
    /// Keep a seat taken, and take one from the longest-idle holder.
    pub evict: bool,
    /// Be queued: a wait cookie, a queue entry, evicting admissions on polls.
    pub queue: bool,
    /// Refresh the holder's idle clock.
    pub refresh_activity: bool,
    /// Release the user's seat on a logout (once the answer shows the
    /// session ended).
    pub release_on_logout: bool,
    /// Bind a session cookie to the user.
    pub bind_session: bool,
}

impl Standing {
    pub const ALL: [Standing; 4] = [
        Standing::Session,
        Standing::Proven,
        Standing::Verified,
        Standing::Unconfirmed,
    ];

    /// The claim table: the one place that says what each standing may do.
    pub const fn rights(self) -> Rights {
        match self {
            Standing::Session => Rights {
                borrow_free_seat: true,
                evict: true,
                queue: true,
                refresh_activity: true,
                release_on_logout: true,
                bind_session: true,
            },
            Standing::Proven | Standing::Verified => Rights {
                borrow_free_seat: true,
                evict: true,
                queue: true,
                refresh_activity: true,
                release_on_logout: false,
                bind_session: true,
            },
            Standing::Unconfirmed => Rights {
                borrow_free_seat: true,
                evict: false,
                queue: false,
                refresh_activity: false,
                release_on_logout: false,
                bind_session: false,
            },
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Standing::Session => "session",
            Standing::Proven => "proven",
            Standing::Verified => "verified",
            Standing::Unconfirmed => "unconfirmed",
        }
    }

    /// The admission mode an identity of this standing may use.
    pub fn mode(self) -> Mode {
        if self.rights().evict {
            Mode::MayEvict
        } else {
            Mode::FreeOnly
        }
    }

    /// The claim table as docs/SECURITY.md carries it (a test keeps the two
    /// the same).
    pub fn table_markdown() -> String {
        let yes = |b: bool| if b { "yes" } else { "no" };
        let mut s = String::from(
            "| standing | borrow a free seat for the exchange | keep a seat, evict | queue (wait cookie, queue entry) | refresh activity | release on logout | bind a session |\n|---|---|---|---|---|---|---|\n",
        );
        for st in Standing::ALL {
            let r = st.rights();
            s.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} |\n",
                st.label(),
                yes(r.borrow_free_seat),
                yes(r.evict),
                yes(r.queue),
                yes(r.refresh_activity),
                yes(r.release_on_logout),
                yes(r.bind_session),
            ));
        }
        s
    }
}

/// A free seat lent to an unconfirmed claim for one exchange. Owned by the
/// request's context: unless [`Borrow::confirm`]ed, the seat goes back —
/// explicitly ([`Borrow::give_back`]) or, on any path that drops the context
/// (an upstream error, a time-out, a reset client, a cancelled future), when
/// the guard is dropped.
pub struct Borrow {
    gate: Weak<Gate>,
    user: Option<UserId>,
}

impl std::fmt::Debug for Borrow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Borrow").field("user", &self.user).finish()
    }
}

impl Borrow {
    pub fn user(&self) -> Option<&UserId> {
        self.user.as_ref()
    }

    /// The app confirmed the claim: the seat stays.
    pub fn confirm(mut self) {
        if let (Some(user), Some(gate)) = (self.user.take(), self.gate.upgrade()) {
            gate.confirm_seat(&user);
        }
    }

    /// The app did not confirm the claim: the seat goes back now.
    pub async fn give_back(mut self) {
        if let (Some(user), Some(gate)) = (self.user.take(), self.gate.upgrade()) {
            gate.give_back(&user).await;
        }
    }
}

impl Drop for Borrow {
    fn drop(&mut self) {
        let Some(user) = self.user.take() else {
            return;
        };
        let Some(gate) = self.gate.upgrade() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move { gate.give_back(&user).await });
            }
            // No runtime (shutting down): the seat is still marked borrowed,
            // and the next reconcile or cleanup sees it.
            Err(_) => tracing::warn!(user = %user, "a borrowed seat could not be given back"),
        }
    }
}

/// The seats lent to unconfirmed claims: each is lent, then confirmed
/// (kept) or given back; one whose give-back failed stays out until the
/// prune job returns it.
#[derive(Debug, Default)]
pub(crate) struct Loans {
    lent: DashSet<UserId, FxBuildHasher>,
    /// Give-backs the directory refused: tried again by the prune job. At
    /// most one entry per seat.
    unreturned: DashSet<UserId, FxBuildHasher>,
    /// Seats lent and not yet back (`lent` and `unreturned`), read without
    /// touching the sets' shards.
    out: AtomicUsize,
}

impl Loans {
    fn lend(&self, user: &UserId) {
        self.lent.insert(user.clone());
        self.out.fetch_add(1, Ordering::Relaxed);
    }

    /// `user`'s seat is theirs for good; `true` if it was out on loan.
    fn confirm(&self, user: &UserId) -> bool {
        let was = self.out.load(Ordering::Relaxed) > 0
            && (self.lent.remove(user).is_some() || self.unreturned.remove(user).is_some());
        if was {
            self.out.fetch_sub(1, Ordering::Relaxed);
        }
        was
    }

    /// Takes `user`'s loan to give the seat back (`false`: confirmed already).
    fn take(&self, user: &UserId) -> bool {
        self.lent.remove(user).is_some()
    }

    /// Takes `user`'s failed give-back to try again.
    fn take_unreturned(&self, user: &UserId) -> bool {
        self.unreturned.remove(user).is_some()
    }

    /// A taken loan's seat is back.
    fn returned(&self) {
        self.out.fetch_sub(1, Ordering::Relaxed);
    }

    /// A taken loan's give-back failed: still out.
    fn not_returned(&self, user: &UserId) {
        self.unreturned.insert(user.clone());
    }

    fn unreturned(&self) -> Vec<UserId> {
        self.unreturned.iter().map(|u| u.key().clone()).collect()
    }

    fn out(&self) -> usize {
        self.out.load(Ordering::Relaxed)
    }
}

impl Gate {
    /// Lends `user` a free seat for one exchange: the returned guard gives
    /// it back unless confirmed. `None` with `Outcome::Pass`: the user held
    /// a seat already (nothing was lent, nothing will be given back).
    pub(crate) async fn borrow(&self, user: &UserId) -> (super::Outcome, Option<Borrow>) {
        if self.holds(user) {
            self.counters.admit_holding.fetch_add(1, Ordering::Relaxed);
            return (super::Outcome::Pass, None);
        }
        let lock = self.user_lock(user);
        let out = {
            let _guard = lock.lock().await;
            if self.holds(user) {
                (super::Outcome::Pass, None)
            } else {
                let out = self.admit_locked(user, Mode::FreeOnly).await;
                if out == super::Outcome::Pass {
                    self.loans.lend(user);
                    let lent = Borrow {
                        gate: self.me.clone(),
                        user: Some(user.clone()),
                    };
                    (out, Some(lent))
                } else {
                    if matches!(out, super::Outcome::NoFreeSeat) {
                        // A claim may take a free seat only: none, so nothing.
                        self.audit(
                            crate::audit::Kind::Refused,
                            crate::audit::Reason::UnverifiedClaim,
                            user,
                            |_| {},
                        );
                    }
                    (out, None)
                }
            }
        };
        drop(lock);
        self.drop_user_lock(user);
        out
    }

    /// `user`'s seat is theirs for good: a borrow pending for it will not
    /// take it back (the app confirmed them in this or another exchange).
    pub(crate) fn confirm_seat(&self, user: &UserId) {
        self.loans.confirm(user);
    }

    /// Gives a borrowed seat back, unless it was confirmed meanwhile.
    pub(crate) async fn give_back(&self, user: &UserId) {
        let lock = self.user_lock(user);
        {
            let _guard = lock.lock().await;
            if self.loans.take(user) {
                self.return_seat(user).await;
            }
        }
        drop(lock);
        self.drop_user_lock(user);
    }

    /// Under `user`'s lock: a lent seat back to the pool. Counted as lent
    /// until it is back; when the directory fails, it stays lent and the
    /// prune job tries again ([`Gate::retry_give_backs`]), so a directory
    /// hiccup never turns a claim into a seat kept.
    async fn return_seat(&self, user: &UserId) {
        if self.release_locked(user, ReleaseReason::Rollback).await || !self.state.has_seat(user) {
            self.loans.returned();
        } else {
            self.loans.not_returned(user);
        }
    }

    /// Tries again to give back the lent seats whose give-back failed;
    /// returns how many are still out. Run by the prune job.
    pub async fn retry_give_backs(&self) -> usize {
        for user in self.loans.unreturned() {
            let lock = self.user_lock(&user);
            {
                let _guard = lock.lock().await;
                if self.loans.take_unreturned(&user) {
                    self.return_seat(&user).await;
                }
            }
            drop(lock);
            self.drop_user_lock(&user);
        }
        self.loans.unreturned().len()
    }

    /// Seats lent to unconfirmed claims right now (or being given back).
    pub fn borrowed_seats(&self) -> usize {
        self.loans.out()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unconfirmed_claim_may_only_borrow() {
        let r = Standing::Unconfirmed.rights();
        assert!(r.borrow_free_seat);
        assert!(!r.evict && !r.queue && !r.refresh_activity);
        assert!(!r.release_on_logout && !r.bind_session);
        assert_eq!(Standing::Unconfirmed.mode(), Mode::FreeOnly);
        assert_eq!(Standing::Session.mode(), Mode::MayEvict);
    }

    #[test]
    fn only_a_session_releases_on_logout() {
        for st in Standing::ALL {
            assert_eq!(
                st.rights().release_on_logout,
                st == Standing::Session,
                "{st:?}"
            );
        }
    }

    #[test]
    fn docs_security_carries_the_claim_table_from_the_code() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/SECURITY.md"))
            .expect("docs/SECURITY.md");
        assert!(
            doc.contains(&Standing::table_markdown()),
            "docs/SECURITY.md must carry this table verbatim:\n{}",
            Standing::table_markdown()
        );
    }
}
