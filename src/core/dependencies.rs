//! `spec.dependsOn` (DESIGN §3): a service is updated only once each service
//! it depends on has rolled out what Git declares for it. Checked across the
//! whole manifest set (unknown services and cycles are manifest errors), and
//! decided per pass from the plans (wait, hold, or go). Services without
//! dependencies are never looked at here, so they are not slowed down.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::core::manifest::{DesiredService, ManifestError, ManifestSet};
use crate::core::model::{Dependency, ServiceKey};
use crate::core::plan::{Action, ServicePlan};
use crate::core::state::SyncState;

/// The service a dependency names: in the dependent's cluster unless it says.
pub fn key_of(d: &Dependency, dependent: &ServiceKey) -> ServiceKey {
    ServiceKey {
        cluster: d
            .cluster
            .clone()
            .unwrap_or_else(|| dependent.cluster.clone()),
        name: d.service.clone(),
    }
}

/// Whether `d` declares any dependency (cheaper than [`dependencies`]).
pub fn has_dependencies(d: &DesiredService) -> bool {
    d.spec.depends_on.as_ref().is_some_and(|v| !v.is_empty())
}

/// The services `d` depends on, in the order declared.
pub fn dependencies(d: &DesiredService) -> Vec<ServiceKey> {
    d.spec
        .depends_on
        .iter()
        .flatten()
        .map(|dep| key_of(dep, &d.key))
        .collect()
}

/// The checks across manifests: every dependency names a declared service,
/// and no service depends on itself through others. A service that fails
/// them is held like any other with a broken manifest; one that depends on
/// a service held for its own errors is not in error (the plan holds it).
pub fn check(set: &mut ManifestSet) {
    if !set.services.iter().any(|d| has_dependencies(d)) {
        return;
    }
    let graph: BTreeMap<ServiceKey, Vec<ServiceKey>> = set
        .services
        .iter()
        .map(|d| (d.key.clone(), dependencies(d)))
        .collect();
    let mut failed = BTreeSet::new();
    for d in &set.services {
        for (i, dep) in dependencies(d).iter().enumerate() {
            let message = if !graph.contains_key(dep) && !set.held.contains(dep) {
                format!("spec.dependsOn[{i}].service: no service {dep} is declared")
            } else if let Some(path) = path(&graph, dep, &d.key) {
                let cycle: Vec<String> = std::iter::once(&d.key)
                    .chain(&path)
                    .map(ToString::to_string)
                    .collect();
                format!(
                    "spec.dependsOn[{i}].service: a dependency cycle: {}",
                    cycle.join(" -> ")
                )
            } else {
                continue;
            };
            let (file, line, column) = d
                .depends_on_at
                .get(i)
                .cloned()
                .unwrap_or_else(|| (d.source.clone(), 1, 1));
            set.errors.push(ManifestError {
                file,
                line,
                column,
                message,
            });
            set.broken_files.insert(d.source.clone());
            failed.insert(d.key.clone());
        }
    }
    set.services.retain(|d| !failed.contains(&d.key));
    set.held.extend(failed);
}

/// The shortest way from `from` to `to` along dependencies (both included).
fn path(
    graph: &BTreeMap<ServiceKey, Vec<ServiceKey>>,
    from: &ServiceKey,
    to: &ServiceKey,
) -> Option<Vec<ServiceKey>> {
    let mut came_from: BTreeMap<&ServiceKey, &ServiceKey> = BTreeMap::new();
    let mut queue = VecDeque::from([from]);
    let mut seen = BTreeSet::from([from]);
    while let Some(at) = queue.pop_front() {
        if at == to {
            let mut path = vec![at.clone()];
            let mut cur = at;
            while let Some(prev) = came_from.get(cur) {
                path.push((*prev).clone());
                cur = prev;
            }
            path.reverse();
            return Some(path);
        }
        for next in graph.get(at).into_iter().flatten() {
            if seen.insert(next) {
                came_from.insert(next, at);
                queue.push_back(next);
            }
        }
    }
    None
}

/// The plan moves the service to a new revision or spec: a deployment its
/// dependents wait for. Tags alone start none.
fn deploys(plan: &ServicePlan) -> bool {
    plan.actions.iter().any(|a| {
        a.kind().deploys()
            || matches!(
                a,
                Action::RegisterTaskDefinition { .. } | Action::CreateReplacement { .. }
            )
    })
}

/// What a dependent does about one of its dependencies this pass.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    Go,
    Wait(String),
    Hold(String),
}

/// `annotated`: the dependency is report-only by its own annotation, so it
/// is never updated (in a report-mode pass, all are, and the dependent
/// would wait in auto mode: that is what a dry run shows).
fn verdict(dep: &ServiceKey, plan: Option<&ServicePlan>, annotated: bool) -> Verdict {
    let Some(p) = plan else {
        return Verdict::Hold(format!("dependency {dep} is not declared"));
    };
    if let Some(h) = &p.held {
        return Verdict::Hold(format!("dependency {dep} is held: {h}"));
    }
    if let Some(e) = &p.error {
        return Verdict::Hold(format!("dependency {dep} failed: {e}"));
    }
    if let Some(r) = p.rollout.as_ref().filter(|r| r.failed()) {
        let why = r.rollout_reason.as_deref().unwrap_or("no reason given");
        return Verdict::Hold(format!("dependency {dep}'s deployment failed: {why}"));
    }
    if !p.replace.is_empty() {
        return Verdict::Hold(format!(
            "dependency {dep} needs replacement ({})",
            p.replace.join(", ")
        ));
    }
    // A dependency that waits itself deploys too: the wait passes down a chain.
    if deploys(p) {
        if annotated {
            return Verdict::Hold(format!(
                "dependency {dep} is report-only and differs from Git: it will not be updated"
            ));
        }
        return Verdict::Wait(format!("waiting for {dep} to be updated first"));
    }
    if !p.exists {
        return Verdict::Wait(format!("waiting for {dep} to be created"));
    }
    if p.rollout.as_ref().is_some_and(|r| r.in_progress()) {
        return Verdict::Wait(format!("waiting for {dep}'s deployment to complete"));
    }
    Verdict::Go
}

/// Gate every plan that would deploy a service with dependencies: it waits
/// (`waiting`) while a dependency is being updated or rolling out, and is
/// held (`held`) when a dependency failed, is held, or will not be updated.
/// Dependencies are decided first (validation refused cycles), so a wait
/// passes down a chain within one pass.
pub fn gate(plans: &mut [ServicePlan], set: &ManifestSet) {
    let deps: BTreeMap<&ServiceKey, Vec<ServiceKey>> = set
        .services
        .iter()
        .map(|d| (&d.key, dependencies(d)))
        .filter(|(_, deps)| !deps.is_empty())
        .collect();
    let report_only: BTreeSet<&ServiceKey> = set
        .services
        .iter()
        .filter(|d| d.policy.sync == crate::core::state::Mode::Report)
        .map(|d| &d.key)
        .collect();
    let index: BTreeMap<ServiceKey, usize> = plans
        .iter()
        .enumerate()
        .map(|(i, p)| (p.key.clone(), i))
        .collect();
    for key in order(&deps) {
        let Some(&i) = index.get(key) else { continue };
        let p = &plans[i];
        if p.held.is_some() || p.error.is_some() || !deploys(p) {
            continue;
        }
        let mut wait = None;
        let mut hold = None;
        for dep in &deps[key] {
            let annotated = report_only.contains(dep);
            match verdict(dep, index.get(dep).map(|&j| &plans[j]), annotated) {
                Verdict::Go => {}
                Verdict::Wait(w) => {
                    wait.get_or_insert(w);
                }
                Verdict::Hold(h) => {
                    hold.get_or_insert(h);
                }
            }
        }
        let p = &mut plans[i];
        if let Some(h) = hold {
            p.held = Some(h);
        } else if let Some(w) = wait {
            p.waiting = Some(w);
        }
    }
}

/// Services with dependencies, each after those it depends on.
fn order<'a>(deps: &BTreeMap<&'a ServiceKey, Vec<ServiceKey>>) -> Vec<&'a ServiceKey> {
    let mut out: Vec<&ServiceKey> = Vec::new();
    let mut placed: BTreeSet<&ServiceKey> = BTreeSet::new();
    // At most one round per service: a cycle (refused by validation) cannot loop.
    for _ in 0..=deps.len() {
        for (key, ds) in deps {
            if !placed.contains(key)
                && ds
                    .iter()
                    .all(|d| !deps.contains_key(d) || placed.iter().any(|p| *p == d))
            {
                placed.insert(*key);
                out.push(*key);
            }
        }
    }
    out
}

/// After the pass: a dependent left waiting on a dependency that ended the
/// pass failed (a pre-deploy hook failed, an apply error) is held instead,
/// with the reason, until the dependency recovers.
pub fn failed_dependency(
    deps: &[ServiceKey],
    state_of: impl Fn(&ServiceKey) -> Option<(SyncState, Option<String>)>,
) -> Option<String> {
    deps.iter().find_map(|dep| {
        let (state, why) = state_of(dep)?;
        matches!(
            state,
            SyncState::Degraded | SyncState::Error | SyncState::Held
        )
        .then(|| match why {
            Some(w) => format!("dependency {dep} is {state}: {w}"),
            None => format!("dependency {dep} is {state}"),
        })
    })
}

#[cfg(test)]
mod tests;
