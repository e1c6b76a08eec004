//! Seat pools (issue 20): which pool's seat a log line needs, told from its `"METHOD /path"`.
//!
//! A site may license more than one application through iumgate — Jira Software and Jira
//! Service Management agents, each with a tier of its own. [`PoolDef`] names a pool and the
//! requests that need its seat (`needs`, regexes over `"METHOD /path"`, as in the proxy's
//! `[pools.<name>] needs`). A line is counted for exactly one pool, or for none:
//!
//! 1. lines matching [`NO_SEAT`] need no seat at all (the Service Management customer portal:
//!    portal customers hold no licence);
//! 2. else the first pool, in the order given, whose `needs` match;
//! 3. else the default pool (the proxy's `[licence]` + `[ium]`).
//!
//! Patterns use the `regex` crate's syntax (no look-around), like the proxy's `[activity]`
//! rules. One exception keeps the issue's example config working verbatim: a pattern may end
//! in one negative look-ahead, `BASE(?!X)`, read as "BASE matches and BASE followed by X does
//! not" — exact whenever BASE can end at only one place in a line, as an anchored prefix like
//! `^[A-Z]+ /servicedesk/` does. Any other look-around is refused with an error that says so.
//! The look-ahead in `'^[A-Z]+ /servicedesk/(?!customer/)'` is redundant here anyway: portal
//! lines never reach the pools (rule 1).

use regex::{Regex, RegexSet};
use std::time::Duration;

/// The name of the pool that takes every seat-needing line no other pool claims.
pub const DEFAULT_POOL: &str = "default";

/// Lines that need no seat in any pool: the Service Management customer portal
/// (shared/ATLASSIAN.md: "Portal customers need no licence (`/servicedesk/customer/…`)").
pub const NO_SEAT: &[&str] = &[r"^[A-Z]+ /servicedesk/customer/"];

/// What needs a Service Management agent seat (the issue's example `needs`).
pub const SERVICE_MANAGEMENT_NEEDS: &[&str] = &[
    r"^[A-Z]+ /jira/servicedesk/",
    r"^[A-Z]+ /rest/servicedesk/",
    r"^[A-Z]+ /rest/servicedeskapi/",
    r"^[A-Z]+ /servicedesk/(?!customer/)",
];

/// Service Management requests that are activity, added to the product's rules in a
/// Service Management pool ([`PoolDef::service_management`]; the proxy adds them to a pool
/// whose application is `jira-servicedesk`): an agent opening a view of the agent UI (a page
/// load), and viewing or acting on a request through the REST API. Paths beyond the prefixes shared/ATLASSIAN.md names
/// are *unconfirmed*.
pub const SERVICE_MANAGEMENT_ACTIVITY_INCLUDE: &[&str] = &[
    r"^GET /jira/servicedesk/projects/",
    r"^[A-Z]+ /rest/servicedeskapi/request/[^/]+$",
    r"^[A-Z]+ /rest/servicedeskapi/request/[^/]+/(comment|transition|participant|attachment|approval)",
];

/// Service Management background traffic that is never activity (an agent tab left open
/// must not keep a seat): queue and SLA refreshes. Added with the includes; the product's
/// own excludes already cover `/rest/servicedesk(api)/…/sla`.
pub const SERVICE_MANAGEMENT_ACTIVITY_EXCLUDE: &[&str] = &[
    r"^[A-Z]+ /rest/servicedesk/.*/queues?(/|$)",
    r"^[A-Z]+ /rest/servicedesk/.*/sla",
    r"^[A-Z]+ /rest/servicedeskapi/servicedesk/[^/]+/queue",
    r"^[A-Z]+ /rest/servicedeskapi/.*/sla",
];

/// One pool besides the default: its name, the requests that need its seat, and what the
/// simulation should assume for it (each `None` falls back to [`crate::Options`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PoolDef {
    pub name: String,
    /// Regexes over `"METHOD /path"` (see the module's notes on look-ahead).
    pub needs: Vec<String>,
    /// The pool's `min_idle` (None: [`crate::Options::min_idle`]).
    pub min_idle: Option<Duration>,
    /// The pool's current licence tier, if known (the default pool's is
    /// [`crate::Options::tier`]; this one never falls back to it).
    pub tier: Option<u32>,
    /// Seats kept back in this pool.
    pub reserved: u32,
    /// Seat counts to simulate (None: a range from the pool's own demand).
    pub seats: Option<Vec<usize>>,
    /// Activity rules of this pool only, added to the product's and to
    /// [`crate::Options::include`] / [`crate::Options::exclude`] (regexes over
    /// `"METHOD /path"`; an exclude wins). A Service Management pool has
    /// [`SERVICE_MANAGEMENT_ACTIVITY_INCLUDE`] and [`SERVICE_MANAGEMENT_ACTIVITY_EXCLUDE`].
    pub activity_include: Vec<String>,
    pub activity_exclude: Vec<String>,
}

impl PoolDef {
    pub fn new(name: &str, needs: &[&str]) -> PoolDef {
        PoolDef {
            name: name.to_owned(),
            needs: needs.iter().map(|s| s.to_string()).collect(),
            ..PoolDef::default()
        }
    }

    /// The Service Management agent pool of the issue's example, named `service`, with
    /// Service Management's activity rules.
    pub fn service_management() -> PoolDef {
        let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        PoolDef {
            activity_include: own(SERVICE_MANAGEMENT_ACTIVITY_INCLUDE),
            activity_exclude: own(SERVICE_MANAGEMENT_ACTIVITY_EXCLUDE),
            ..PoolDef::new("service", SERVICE_MANAGEMENT_NEEDS)
        }
    }
}

/// A compiled `needs` list.
#[derive(Debug, Clone)]
pub struct Needs {
    /// Every pattern's base, matched in one pass.
    set: RegexSet,
    /// Per pattern, in `set`'s order.
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
struct Rule {
    base: String,
    /// `BASE` followed by the trailing look-ahead's text: a match here vetoes the rule.
    unless: Option<Regex>,
}

impl Needs {
    /// Compiles `patterns`; an error names the pattern and what is wrong with it.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Needs, String> {
        let rules = patterns
            .iter()
            .map(|p| Rule::new(p.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        let set = RegexSet::new(rules.iter().map(|r| r.base.as_str()))
            .map_err(|e| format!("needs: {e}"))?;
        Ok(Needs { set, rules })
    }

    /// Whether `line` (`"METHOD /path"`) matches any pattern.
    pub fn is_match(&self, line: &str) -> bool {
        if !self.set.is_match(line) {
            return false;
        }
        self.set.matches(line).iter().any(|i| {
            !self.rules[i]
                .unless
                .as_ref()
                .is_some_and(|u| u.is_match(line))
        })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

impl Rule {
    fn new(pattern: &str) -> Result<Rule, String> {
        let (base, ahead) = match trailing_negative_lookahead(pattern) {
            Some(start) => (
                &pattern[..start],
                Some(&pattern[start + 3..pattern.len() - 1]),
            ),
            None => (pattern, None),
        };
        for bad in ["(?=", "(?!", "(?<=", "(?<!"] {
            if base.contains(bad) || ahead.is_some_and(|a| a.contains(bad)) {
                return Err(format!(
                    "needs pattern `{pattern}`: look-around is supported only as one trailing \
                     (?!…); write the exclusion another way (portal lines under \
                     /servicedesk/customer/ never need a seat anyway)"
                ));
            }
        }
        let compile =
            |re: &str| Regex::new(re).map_err(|e| format!("needs pattern `{pattern}`: {e}"));
        compile(base)?;
        Ok(Rule {
            base: base.to_owned(),
            unless: ahead
                .map(|a| compile(&format!("{base}(?:{a})")))
                .transpose()?,
        })
    }
}

/// Where a `(?!…)` group that ends the pattern starts, if one does.
fn trailing_negative_lookahead(p: &str) -> Option<usize> {
    if !p.ends_with(')') {
        return None;
    }
    let start = p.rfind("(?!")?;
    // The group must close exactly at the end: count parentheses, skipping escapes and
    // character classes.
    let bytes = p.as_bytes();
    let (mut depth, mut i, mut in_class) = (0i32, start, false);
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1,
            b'[' if !in_class => in_class = true,
            b']' if in_class => in_class = false,
            b'(' if !in_class => depth += 1,
            b')' if !in_class => {
                depth -= 1;
                if depth == 0 {
                    return (i == bytes.len() - 1).then_some(start);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// `"METHOD /path"`, the text `needs` and activity rules are matched against.
pub fn request_line(method: &str, path: &str) -> String {
    let mut s = String::with_capacity(method.len() + 1 + path.len());
    write_request_line(&mut s, method, path);
    s
}

/// [`request_line`] into `buf` (cleared first), to reuse one buffer for every line.
pub fn write_request_line(buf: &mut String, method: &str, path: &str) {
    buf.clear();
    buf.push_str(method);
    buf.push(' ');
    buf.push_str(path);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issues_example_needs_work_with_its_look_ahead() {
        let n = Needs::new(SERVICE_MANAGEMENT_NEEDS).unwrap();
        assert!(n.is_match("GET /jira/servicedesk/projects/HELP/queues/custom/1"));
        assert!(n.is_match("GET /rest/servicedesk/1/servicedesk/HELP/queues/1/issues"));
        assert!(n.is_match("POST /rest/servicedeskapi/request/HELP-1/comment"));
        assert!(n.is_match("GET /servicedesk/agent/HELP"));
        assert!(!n.is_match("GET /servicedesk/customer/portal/1"));
        assert!(!n.is_match("GET /browse/HELP-1"));
        assert!(!n.is_match("GET /rest/api/2/issue/HELP-1"));
    }

    #[test]
    fn only_a_trailing_negative_look_ahead_is_accepted() {
        let n = Needs::new(&[r"^GET /a/(?!b\)|[)]c)"]).unwrap();
        assert!(n.is_match("GET /a/x"));
        assert!(!n.is_match("GET /a/b)"));
        assert!(!n.is_match("GET /a/)c"));
        for bad in [
            r"^GET /(?=a)",
            r"^GET /(?!a)b",
            r"(?<!x)GET",
            r"^GET (?!(?!a))",
        ] {
            let e = Needs::new(&[bad]).unwrap_err();
            assert!(e.contains("look-around"), "{bad}: {e}");
        }
        let e = Needs::new(&["^GET /(unclosed"]).unwrap_err();
        assert!(e.contains("(unclosed"), "{e}");
        assert!(Needs::new::<&str>(&[]).unwrap().is_empty());
    }

    #[test]
    fn portal_lines_need_no_seat() {
        let n = Needs::new(NO_SEAT).unwrap();
        assert!(n.is_match("GET /servicedesk/customer/portal/1"));
        assert!(n.is_match("POST /servicedesk/customer/portal/1/create/10"));
        assert!(!n.is_match("GET /jira/servicedesk/projects/HELP"));
    }
}
