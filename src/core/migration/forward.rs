//! The arithmetic of a weighted forward action: which action ecsync manages,
//! the ECS share of its traffic, and the weights for a given share.

/// A listener or rule action, as far as traffic shifting cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwardView<'a> {
    /// A forward action: target group ARNs and their weights (`None`:
    /// unweighted).
    Forward(Vec<(&'a str, Option<i32>)>),
    /// Any other action (authenticate, fixed response, redirect).
    Other,
}

/// The index of the forward action ecsync manages — the one that sends only
/// to the ECS and legacy target groups — and the ECS share of its traffic,
/// in percent.
pub fn managed_forward(
    actions: &[ForwardView],
    ecs: &str,
    legacy: &str,
) -> Result<(usize, u8), String> {
    let (index, targets) = actions
        .iter()
        .enumerate()
        .filter_map(|(i, a)| match a {
            ForwardView::Forward(t) => Some((i, t)),
            ForwardView::Other => None,
        })
        .find(|(_, t)| t.iter().any(|(arn, _)| *arn == ecs || *arn == legacy))
        .ok_or_else(|| {
            "no forward action to the legacy or ECS target group: nothing to migrate".to_string()
        })?;
    if let Some((other, _)) = targets
        .iter()
        .find(|(arn, _)| *arn != ecs && *arn != legacy)
    {
        return Err(format!(
            "the forward action also sends to {other}: not managed by ecsync, left alone"
        ));
    }
    // A single unweighted group takes all traffic; in a list, AWS's default is 1.
    let weight = |want: &str| -> i64 {
        targets
            .iter()
            .filter(|(arn, _)| *arn == want)
            .map(|(_, w)| i64::from(w.unwrap_or(1)).max(0))
            .sum()
    };
    let (e, l) = (weight(ecs), weight(legacy));
    if e + l == 0 {
        return Err("the forward action's weights are all zero".into());
    }
    let pct = (e * 100 + (e + l) / 2) / (e + l);
    Ok((index, u8::try_from(pct).unwrap_or(100)))
}

/// (ECS, legacy) weights that send `percent` to ECS.
pub fn weights(percent: u8) -> (i32, i32) {
    let pct = i32::from(percent.min(100));
    (pct, 100 - pct)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_round_trip_through_the_share() {
        for pct in [0u8, 1, 10, 33, 50, 99, 100, 200] {
            let (e, l) = weights(pct);
            let view = [ForwardView::Forward(vec![
                ("ecs", Some(e)),
                ("legacy", Some(l)),
            ])];
            assert_eq!(
                managed_forward(&view, "ecs", "legacy"),
                Ok((0, pct.min(100)))
            );
        }
    }

    #[test]
    fn other_actions_are_skipped() {
        let views = [
            ForwardView::Other,
            ForwardView::Forward(vec![("legacy", None)]),
        ];
        assert_eq!(managed_forward(&views, "ecs", "legacy"), Ok((1, 0)));
    }
}
