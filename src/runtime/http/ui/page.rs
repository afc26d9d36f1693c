//! The frame every page shares: head, style, navigation and the small inline
//! script. Nothing is loaded from anywhere: the style and script are inline
//! (the CSP allows exactly that), the icon is an empty data: URL so browsers
//! do not ask for /favicon.ico.

use std::fmt::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use super::html::Esc;

/// Sent with every page: nothing from any origin but the inline style and
/// script, and images only as data: URLs.
pub const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; \
     img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Seconds between reloads while the page is open.
pub const REFRESH_SECS: u32 = 10;

const STYLE: &str = r#"
:root{color-scheme:light dark;--bg:#fff;--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--card:#f6f8fa;
--ok:#1a7f37;--warn:#9a6700;--info:#0969da;--bad:#cf222e;--held:#6e7781;--bar:#0969da}
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--fg:#e6edf3;--muted:#9198a1;--line:#3d444d;
--card:#151b23;--ok:#3fb950;--warn:#d29922;--info:#4493f8;--bad:#f85149;--held:#9198a1;--bar:#4493f8}}
body{margin:0 auto;max-width:76rem;padding:1rem;font:15px/1.45 system-ui,sans-serif;background:var(--bg);color:var(--fg)}
a{color:var(--info)}
h1{font-size:1.4rem;margin:.2rem 0 .8rem}h2{font-size:1.1rem;margin:0 0 .5rem}
header nav{display:flex;gap:1rem;align-items:baseline;flex-wrap:wrap;border-bottom:1px solid var(--line);padding-bottom:.5rem}
header nav .brand{font-weight:700;text-decoration:none;color:var(--fg)}
section{margin:1.4rem 0}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid var(--line);vertical-align:top}
th{font-weight:600;color:var(--muted);font-size:.9em;white-space:nowrap}
.scroll{overflow-x:auto}
code,pre{font:13px/1.4 ui-monospace,SFMono-Regular,Menlo,monospace}
pre{white-space:pre-wrap;word-break:break-word;margin:0}
.state{display:inline-block;padding:0 .5rem;border-radius:1em;font-size:.85em;font-weight:600;border:1px solid currentColor;white-space:nowrap}
.s-Synced,.r-ok,.pass{color:var(--ok)}.s-OutOfSync,.r-partial{color:var(--warn)}.s-Progressing{color:var(--info)}
.s-Degraded,.s-Error,.r-error,.fail{color:var(--bad)}.s-Held{color:var(--held)}
.bar{position:relative;height:.8rem;min-width:8rem;border:1px solid var(--line);border-radius:.4rem;background:var(--card);overflow:hidden}
.bar .fill{display:block;height:100%;background:var(--bar)}
.bar .tick{position:absolute;top:0;bottom:0;width:2px;margin-left:-1px;background:var(--fg);opacity:.35}
.steps{display:flex;gap:.4rem;list-style:none;padding:0;margin:.4rem 0;flex-wrap:wrap}
.steps li{padding:0 .45rem;border:1px solid var(--line);border-radius:.3rem}
.steps li.done{background:var(--bar);border-color:var(--bar);color:var(--bg)}
.steps li.current{outline:2px solid var(--bar);outline-offset:1px}
.gates{list-style:none;padding:0;margin:.3rem 0}
.card{border:1px solid var(--line);border-radius:.4rem;padding:.6rem .8rem;margin:.6rem 0;background:var(--card)}
.alert{border:1px solid var(--bad);color:var(--bad);padding:.5rem .7rem;border-radius:.4rem}
.secret,.absent,.muted{color:var(--muted);font-style:italic}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;margin:0}
dl.facts dt{color:var(--muted)}dl.facts dd{margin:0;min-width:0;overflow-wrap:anywhere}
footer{margin-top:2rem;color:var(--muted);font-size:.9em}
@media (max-width:40rem){body{padding:.5rem;font-size:14px}.wide{display:none}dl.facts{grid-template-columns:1fr}dl.facts dd{margin-bottom:.3rem}}
"#;

/// Keeps `data-live` instants current every second (against the server's
/// clock, which the body carries; countdowns read `due` once they have come),
/// and reloads the page unless `?refresh=off`. Without it (a text browser) the
/// page says to reload by hand.
const SCRIPT: &str = r#"
(function () {
  var skew = Number(document.body.getAttribute("data-now")) - Date.now();
  function span(ms) {
    var s = Math.round(Math.abs(ms) / 1000), m = Math.floor(s / 60), h = Math.floor(m / 60);
    if (s < 60) return s + "s";
    if (m < 60) return m + "m " + (s % 60) + "s";
    if (h < 24) return h + "h " + (m % 60) + "m";
    return Math.floor(h / 24) + "d " + (h % 24) + "h";
  }
  function tick() {
    var now = Date.now() + skew;
    document.querySelectorAll("time[data-live]").forEach(function (el) {
      var t = Date.parse(el.getAttribute("datetime"));
      if (isNaN(t)) return;
      var d = t - now;
      if (el.getAttribute("data-live") === "countdown" && d < 1000) {
        el.textContent = "due";
        return;
      }
      el.textContent = Math.abs(d) < 1000 ? "now" : d > 0 ? "in " + span(d) : span(d) + " ago";
    });
  }
  tick();
  setInterval(tick, 1000);
  var note = document.getElementById("refresh");
  if (/[?&]refresh=off/.test(location.search)) {
    note.innerHTML = 'Auto-refresh is off (<a href="?">resume</a>).';
  } else {
    note.innerHTML = 'Refreshes every REFRESH_SECS s (<a href="?refresh=off">stop</a>).';
    setTimeout(function () { location.reload(); }, REFRESH_SECS * 1000);
  }
})();
"#;

/// A whole page around `body` (already HTML).
pub fn render(title: &str, now: SystemTime, body: &str) -> String {
    let now_ms = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let mut out = String::with_capacity(body.len() + STYLE.len() + SCRIPT.len() + 1024);
    let _ = write!(
        out,
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>{title}</title>
<link rel="icon" href="data:,">
<style>{STYLE}</style>
</head>
<body data-now="{now_ms}">
<header><nav><a class="brand" href="/">ecsync</a> <a href="/status">/status</a> <a href="/metrics">/metrics</a></nav></header>
<main>
{body}
</main>
<footer><p><span id="refresh">Reload the page for newer passes.</span> Times are relative to the controller's clock; hover for the instant.</p></footer>
<script>{script}</script>
</body>
</html>
"#,
        title = Esc(title),
        script = SCRIPT.replace("REFRESH_SECS", &REFRESH_SECS.to_string()),
    );
    out
}
