//! Instants as people read them on a status page: how long ago, or how long
//! until. The inline script keeps `data-live` ones ticking in the same words.

use std::fmt::Write;
use std::time::{Duration, SystemTime};

use super::html::Esc;

pub fn parse(rfc3339: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(rfc3339.trim()).ok()
}

/// `12s`, `4m 12s`, `3h 4m`, `2d 3h`: two units at most, as a glance needs.
pub fn span(d: Duration) -> String {
    let s = (d.as_millis() + 500) / 1000;
    let m = s / 60;
    let h = m / 60;
    if s < 60 {
        format!("{s}s")
    } else if m < 60 {
        format!("{m}m {}s", s % 60)
    } else if h < 24 {
        format!("{h}h {}m", m % 60)
    } else {
        format!("{}d {}h", h / 24, h % 24)
    }
}

/// `in 4m 12s`, `4m 12s ago` or `now`.
pub fn relative(now: SystemTime, t: SystemTime) -> String {
    match t.duration_since(now) {
        Ok(ahead) if ahead >= Duration::from_secs(1) => format!("in {}", span(ahead)),
        Ok(_) => "now".to_string(),
        Err(e) if e.duration() < Duration::from_secs(1) => "now".to_string(),
        Err(e) => format!("{} ago", span(e.duration())),
    }
}

/// How a shown instant behaves once the page is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// Written once: a commit's time.
    Fixed,
    /// Kept current by the script, `… ago` or `in …`.
    Ticking,
    /// Something is waiting for it: `in …`, then `due` once it has come (the
    /// next pass acts on it), never `… ago`.
    Countdown,
}

/// A `<time>` for an RFC 3339 instant: relative to `now`, the instant itself
/// in its title. A value that does not parse is shown as it is.
pub fn write_time(out: &mut String, rfc3339: &str, now: SystemTime, clock: Clock) {
    let Some(t) = parse(rfc3339) else {
        let _ = write!(out, "{}", Esc(rfc3339));
        return;
    };
    let (attr, rel) = match clock {
        Clock::Fixed => ("", relative(now, t)),
        Clock::Ticking => (r#" data-live="tick""#, relative(now, t)),
        Clock::Countdown if t <= now => (r#" data-live="countdown""#, "due".to_string()),
        Clock::Countdown => (r#" data-live="countdown""#, relative(now, t)),
    };
    let _ = write!(
        out,
        r#"<time datetime="{at}" title="{at}"{attr}>{rel}</time>"#,
        at = Esc(rfc3339),
    );
}

/// `850 ms`, `1.5 s`, `2m 3s`.
pub fn duration_ms(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        span(Duration::from_millis(ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn t(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
    }

    #[test]
    fn relative_reads_both_ways() {
        assert_eq!(relative(t(0), t(252)), "in 4m 12s");
        assert_eq!(relative(t(252), t(0)), "4m 12s ago");
        assert_eq!(relative(t(0), t(0)), "now");
        assert_eq!(relative(t(0), t(3 * 3600 + 240)), "in 3h 4m");
        assert_eq!(relative(t(0), t(2 * 86400 + 3 * 3600)), "in 2d 3h");
        assert_eq!(relative(t(0), t(59)), "in 59s");
    }

    #[test]
    fn a_countdown_carries_its_instant_and_ticks() {
        let mut out = String::new();
        write_time(&mut out, "2023-11-14T22:20:20Z", t(0), Clock::Countdown);
        assert_eq!(
            out,
            r#"<time datetime="2023-11-14T22:20:20Z" title="2023-11-14T22:20:20Z" data-live="countdown">in 7m 0s</time>"#
        );
        // Once it has come it is due, not past.
        let mut due = String::new();
        write_time(&mut due, "2023-11-14T22:20:20Z", t(600), Clock::Countdown);
        assert!(
            due.ends_with(r#"data-live="countdown">due</time>"#),
            "{due}"
        );
        let mut past = String::new();
        write_time(&mut past, "2023-11-14T22:20:20Z", t(600), Clock::Ticking);
        assert!(
            past.ends_with(r#"data-live="tick">3m 0s ago</time>"#),
            "{past}"
        );
        let mut fixed = String::new();
        write_time(&mut fixed, "2023-11-14T22:20:20Z", t(600), Clock::Fixed);
        assert!(!fixed.contains("data-live"), "{fixed}");
        let mut bad = String::new();
        write_time(&mut bad, "<soon>", t(0), Clock::Countdown);
        assert_eq!(bad, "&lt;soon&gt;");
    }

    #[test]
    fn durations() {
        assert_eq!(duration_ms(850), "850 ms");
        assert_eq!(duration_ms(1500), "1.5 s");
        assert_eq!(duration_ms(123_000), "2m 3s");
    }
}
