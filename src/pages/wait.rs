//! The waiting page: position, an estimate, the admin's logo and message,
//! English or German; it polls by itself and moves on once admitted. Without
//! JavaScript a meta refresh reloads it (each load is a poll too).

use super::{escape, html_page, json_str, local_path, Lang};

/// Where a waiter stands, as a poll of the queue reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueState {
    Admitted,
    Waiting { position: usize, eta_s: Option<u64> },
    Unavailable,
    Unknown,
}

pub struct WaitView<'a> {
    pub lang: Lang,
    pub state: &'a QueueState,
    /// Where to go once admitted (a checked local path).
    pub to: &'a str,
    pub retry_s: u64,
    pub logo_url: Option<&'a str>,
    pub message: Option<&'a str>,
    pub login_url: &'a str,
}

struct Texts {
    title: &'static str,
    waiting: &'static str,
    position: &'static str,
    eta: &'static str,
    eta_unknown: &'static str,
    auto: &'static str,
    unavailable: &'static str,
    unknown: &'static str,
    login: &'static str,
}

const EN: Texts = Texts {
    title: "All licences are in use",
    waiting: "Every licence is taken at the moment. You are in the queue and will be let in automatically as soon as one frees up — keep this page open.",
    position: "Your position in the queue",
    eta: "Estimated wait",
    eta_unknown: "a few minutes",
    auto: "This page checks again by itself every",
    unavailable: "The licence service is unavailable right now; the administrator has been told. This page keeps trying by itself.",
    unknown: "Your waiting place has expired or your session is unknown. Please log in again.",
    login: "Log in",
};

const DE: Texts = Texts {
    title: "Alle Lizenzen sind vergeben",
    waiting: "Im Moment sind alle Lizenzen vergeben. Sie stehen in der Warteschlange und werden automatisch eingelassen, sobald eine frei wird — lassen Sie diese Seite geöffnet.",
    position: "Ihre Position in der Warteschlange",
    eta: "Geschätzte Wartezeit",
    eta_unknown: "einige Minuten",
    auto: "Diese Seite prüft selbständig alle",
    unavailable: "Der Lizenzdienst ist gerade nicht erreichbar; der Administrator wurde informiert. Diese Seite versucht es selbständig weiter.",
    unknown: "Ihr Warteplatz ist abgelaufen oder Ihre Sitzung ist unbekannt. Bitte melden Sie sich erneut an.",
    login: "Anmelden",
};

fn texts(lang: Lang) -> &'static Texts {
    match lang {
        Lang::En => &EN,
        Lang::De => &DE,
    }
}

fn fmt_eta(lang: Lang, s: u64) -> String {
    let m = s.div_ceil(60).max(1);
    match lang {
        Lang::En if m == 1 => "about 1 minute".into(),
        Lang::En => format!("about {m} minutes"),
        Lang::De if m == 1 => "etwa 1 Minute".into(),
        Lang::De => format!("etwa {m} Minuten"),
    }
}

fn seconds(lang: Lang, s: u64) -> String {
    match (lang, s) {
        (Lang::En, 1) => "second".into(),
        (Lang::En, _) => format!("{s} seconds"),
        (Lang::De, 1) => "Sekunde".into(),
        (Lang::De, _) => format!("{s} Sekunden"),
    }
}

fn header(v: &WaitView<'_>) -> String {
    let mut out = String::new();
    if let Some(logo) = v.logo_url {
        out.push_str(&format!(
            "<img class=\"logo\" src=\"{}\" alt=\"\">",
            escape(logo)
        ));
    }
    out
}

/// The polling script: asks `/iumgate/api/queue` and moves on once admitted.
fn script(to: &str, retry_s: u64) -> String {
    format!(
        "<script>(function(){{var to={to};var every={ms};\
function go(t){{window.location.replace(t||to);}}\
function poll(){{fetch('/iumgate/api/queue?to='+encodeURIComponent(to),{{credentials:'same-origin',cache:'no-store'}})\
.then(function(r){{return r.json();}}).then(function(s){{\
if(s.state==='admitted'){{go(s.to);return;}}\
var p=document.getElementById('pos');if(p&&s.position){{p.textContent=s.position;}}\
var e=document.getElementById('eta');if(e&&s.eta_seconds!==undefined){{e.setAttribute('data-s',s.eta_seconds);}}\
setTimeout(poll,(s.retry_after||every/1000)*1000);}})\
.catch(function(){{setTimeout(poll,every);}});}}\
setTimeout(poll,every);}})();</script>",
        to = json_str(to),
        ms = retry_s * 1000
    )
}

pub fn render(v: &WaitView<'_>) -> String {
    let t = texts(v.lang);
    let refresh = format!(
        "<meta http-equiv=\"refresh\" content=\"{}\"><noscript></noscript>",
        v.retry_s
    );
    let mut body = header(v);
    body.push_str(&format!("<h1>{}</h1>", escape(t.title)));
    if let Some(m) = v.message {
        body.push_str(&format!("<p class=\"message\">{}</p>", escape(m)));
    }
    match v.state {
        QueueState::Waiting { position, eta_s } => {
            body.push_str(&format!("<p>{}</p>", escape(t.waiting)));
            if *position > 0 {
                body.push_str(&format!(
                    "<p>{}: <strong id=\"pos\">{position}</strong></p>",
                    escape(t.position)
                ));
            }
            let eta = eta_s
                .map(|s| fmt_eta(v.lang, s))
                .unwrap_or_else(|| t.eta_unknown.to_string());
            body.push_str(&format!(
                "<p>{}: <span id=\"eta\">{}</span></p>",
                escape(t.eta),
                escape(&eta)
            ));
        }
        QueueState::Unavailable => {
            body.push_str(&format!("<p>{}</p>", escape(t.unavailable)));
        }
        QueueState::Unknown | QueueState::Admitted => {
            body.push_str(&format!(
                "<p>{}</p><p><a href=\"{}\">{}</a></p>",
                escape(t.unknown),
                escape(v.login_url),
                escape(t.login)
            ));
            return html_page(v.lang, t.title, &body, "");
        }
    }
    body.push_str(&format!(
        "<p class=\"muted\">{} {}.</p>",
        escape(t.auto),
        escape(&seconds(v.lang, v.retry_s))
    ));
    body.push_str(&script(v.to, v.retry_s));
    html_page(v.lang, t.title, &body, &refresh)
}

/// Shown instead of a page when a grant failed (directory unavailable).
pub fn unavailable_page(lang: Lang, retry_s: u64, to: &str) -> String {
    let to = local_path(to).unwrap_or("/");
    render(&WaitView {
        lang,
        state: &QueueState::Unavailable,
        to,
        retry_s,
        logo_url: None,
        message: None,
        login_url: "/",
    })
    .replace(
        "<meta http-equiv=\"refresh\"",
        &format!("<meta http-equiv=\"refresh\" data-to=\"{}\"", escape(to)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view<'a>(state: &'a QueueState, lang: Lang) -> WaitView<'a> {
        WaitView {
            lang,
            state,
            to: "/browse/ABC-1",
            retry_s: 10,
            logo_url: Some("https://x/logo.svg\"><script>"),
            message: Some("Bitte <b>warten</b>"),
            login_url: "/login.jsp?os_destination=%2F",
        }
    }

    #[test]
    fn shows_position_estimate_logo_and_message_escaped() {
        let st = QueueState::Waiting {
            position: 3,
            eta_s: Some(125),
        };
        let html = render(&view(&st, Lang::En));
        assert!(html.contains("<strong id=\"pos\">3</strong>"));
        assert!(html.contains("about 3 minutes"));
        assert!(html.contains("logo.svg&quot;&gt;&lt;script&gt;"));
        assert!(html.contains("Bitte &lt;b&gt;warten&lt;/b&gt;"));
        assert!(html.contains("http-equiv=\"refresh\" content=\"10\""));
        assert!(html.contains("/iumgate/api/queue"));
    }

    #[test]
    fn speaks_german() {
        let st = QueueState::Waiting {
            position: 1,
            eta_s: None,
        };
        let html = render(&view(&st, Lang::De));
        assert!(html.contains("Warteschlange"));
        assert!(html.contains("lang=\"de\""));
    }
}
