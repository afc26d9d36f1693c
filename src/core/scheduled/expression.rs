//! EventBridge Scheduler expressions: `cron(...)`, `rate(...)`, `at(...)`.
//!
//! Checked here so a typo fails `ecsync validate` with a location instead of
//! a `ValidationException` in the middle of a pass. The rules are the
//! service's own (Scheduler user guide, "Schedule types").

/// Ok, or why `expr` is not a schedule expression.
pub fn check(expr: &str) -> Result<(), String> {
    let inner = |prefix: &str| {
        expr.strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix(')'))
    };
    if let Some(body) = inner("cron(") {
        check_cron(body)
    } else if let Some(body) = inner("rate(") {
        check_rate(body)
    } else if let Some(body) = inner("at(") {
        check_at(body)
    } else {
        Err(format!(
            "{expr:?} is not a schedule expression: cron(...), rate(...) or at(...)"
        ))
    }
}

/// Minutes, hours, day-of-month, month, day-of-week, year.
const CRON_FIELDS: [(&str, u32, u32); 6] = [
    ("minutes", 0, 59),
    ("hours", 0, 23),
    ("day-of-month", 1, 31),
    ("month", 1, 12),
    ("day-of-week", 1, 7),
    ("year", 1970, 2199),
];

fn check_cron(body: &str) -> Result<(), String> {
    let fields: Vec<&str> = body.split_whitespace().collect();
    if fields.len() != CRON_FIELDS.len() {
        return Err(format!(
            "cron({body}) needs 6 fields (minutes hours day-of-month month day-of-week year), not {}",
            fields.len()
        ));
    }
    let (dom, dow) = (fields[2], fields[4]);
    if (dom == "?") == (dow == "?") {
        return Err(format!(
            "cron({body}): exactly one of day-of-month and day-of-week must be ?"
        ));
    }
    for (field, (name, lo, hi)) in fields.iter().zip(CRON_FIELDS) {
        check_cron_field(field, name, lo, hi).map_err(|e| format!("cron({body}): {e}"))?;
    }
    Ok(())
}

fn check_cron_field(field: &str, name: &str, lo: u32, hi: u32) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || ",-*/?#".contains(c);
    if field.is_empty() || !field.chars().all(allowed) {
        return Err(format!(
            "{name} field {field:?} has characters cron does not allow"
        ));
    }
    if field.contains('?') && field != "?" {
        return Err(format!("{name} field {field:?}: ? stands alone"));
    }
    // Plain numbers must be in range; names (JAN, MON), L, W and # are the
    // service's to judge.
    for part in field.split([',', '-', '/']) {
        if let Ok(n) = part.parse::<u32>()
            && !(lo..=hi).contains(&n)
            && !field.contains(&format!("/{part}"))
        {
            return Err(format!("{name} field {field:?}: {n} is outside {lo}-{hi}"));
        }
    }
    Ok(())
}

fn check_rate(body: &str) -> Result<(), String> {
    let mut words = body.split_whitespace();
    let (Some(value), Some(unit), None) = (words.next(), words.next(), words.next()) else {
        return Err(format!(
            "rate({body}) must be a value and a unit, e.g. rate(5 minutes)"
        ));
    };
    let n: u32 = value
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("rate({body}): {value:?} is not a positive whole number"))?;
    let singular = ["minute", "hour", "day"];
    let plural = ["minutes", "hours", "days"];
    match (n == 1, singular.contains(&unit), plural.contains(&unit)) {
        (true, true, _) | (false, _, true) => Ok(()),
        (true, false, true) => Err(format!(
            "rate({body}): a value of 1 takes {:?}",
            unit.trim_end_matches('s')
        )),
        (false, true, _) => Err(format!("rate({body}): a value above 1 takes {unit:?}s")),
        _ => Err(format!(
            "rate({body}): the unit must be minute(s), hour(s) or day(s), not {unit:?}"
        )),
    }
}

/// `yyyy-mm-ddThh:mm:ss`, in the schedule's time zone.
fn check_at(body: &str) -> Result<(), String> {
    let bad = || format!("at({body}) must be a time like at(2027-01-31T03:00:00)");
    let b = body.as_bytes();
    if b.len() != 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| -> Result<u32, String> {
        body.get(r)
            .filter(|s| s.bytes().all(|c| c.is_ascii_digit()))
            .and_then(|s| s.parse().ok())
            .ok_or_else(bad)
    };
    let (month, day, hour, minute, second) = (
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    );
    num(0..4)?;
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return Err(bad());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn expressions() {
        let table: &[(&str, bool)] = &[
            ("cron(0 3 * * ? *)", true),
            ("cron(15 10 ? * MON-FRI *)", true),
            ("cron(0/15 * * * ? *)", true),
            ("cron(0 18 L * ? 2027)", true),
            ("cron(0 3 * * * *)", false),
            ("cron(0 3 ? * ? *)", false),
            ("cron(0 3 * * ?)", false),
            ("cron(60 3 * * ? *)", false),
            ("cron(0 24 * * ? *)", false),
            ("cron(0 3 * * ? *", false),
            ("rate(1 minute)", true),
            ("rate(5 minutes)", true),
            ("rate(12 hours)", true),
            ("rate(1 day)", true),
            ("rate(1 days)", false),
            ("rate(2 hour)", false),
            ("rate(0 minutes)", false),
            ("rate(5 weeks)", false),
            ("rate(five minutes)", false),
            ("at(2027-01-31T03:00:00)", true),
            ("at(2027-13-01T03:00:00)", false),
            ("at(2027-01-31 03:00:00)", false),
            ("at(tomorrow)", false),
            ("0 3 * * *", false),
            ("", false),
        ];
        for (expr, ok) in table {
            assert_eq!(check(expr).is_ok(), *ok, "{expr}: {:?}", check(expr));
        }
    }
}
