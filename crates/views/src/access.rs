//! Access requests as their researchers and data holders read them, and the permits they grant.
//! Built from the projector's bookkeeping (an access request has no graph: it is never in SPARQL)
//! and kept up to date from the change journal like the other read models.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use cireg_model::{AccessRequest, AccessStep, AggregateState, DatasetAccess};
use cireg_projector::{projected_access_requests, ProjectedAccess};
use oxigraph::store::Store;
use time::{format_description::well_known::Rfc3339, OffsetDateTime};

/// One data holder's part of an access request.
#[derive(Debug, Clone, PartialEq)]
pub struct AccessPart {
    pub provider: String,
    /// Number of its events (what `expectedversion` names).
    pub version: u64,
    pub request: AccessRequest,
    /// When it was requested and last changed (RFC 3339).
    pub requested: String,
    pub modified: String,
    /// Each dataset asked for (by id) and where it stands.
    pub datasets: BTreeMap<String, DatasetAccess>,
    pub steps: Vec<AccessStep>,
}

impl AccessPart {
    fn of(projected: ProjectedAccess) -> Option<Self> {
        let AggregateState::Access { request, requested, modified, datasets, steps } = projected.state else {
            return None;
        };
        Some(AccessPart {
            provider: projected.provider,
            version: projected.version,
            request: *request,
            requested,
            modified,
            datasets,
            steps,
        })
    }
}

/// A permit: a researcher may read a dataset's study-level data from `from` until `until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permit {
    pub provider: String,
    pub dataset: String,
    /// Unix seconds.
    pub from: i64,
    pub until: i64,
}

/// Every access request, by request id and data holder.
#[derive(Debug, Clone, Default)]
pub struct AccessBook {
    requests: BTreeMap<String, BTreeMap<String, AccessPart>>,
    /// Request ids by researcher.
    by_researcher: HashMap<String, BTreeSet<String>>,
}

fn unix(instant: &str) -> Option<i64> {
    OffsetDateTime::parse(instant, &Rfc3339).ok().map(OffsetDateTime::unix_timestamp)
}

impl AccessBook {
    /// Every access request in `store`.
    pub fn build(store: &Store) -> std::io::Result<Self> {
        let mut book = AccessBook::default();
        for projected in projected_access_requests(store).map_err(std::io::Error::other)? {
            let (provider, id) = (projected.provider.clone(), projected.id.clone());
            book.set(&provider, &id, Some(projected));
        }
        Ok(book)
    }

    /// Sets the part of request `id` at `provider` to `projected` (`None`: gone).
    pub fn set(&mut self, provider: &str, id: &str, projected: Option<ProjectedAccess>) {
        let parts = self.requests.entry(id.to_owned()).or_default();
        match projected.and_then(AccessPart::of) {
            Some(part) => {
                self.by_researcher.entry(part.request.researcher.clone()).or_default().insert(id.to_owned());
                parts.insert(provider.to_owned(), part);
            }
            None => {
                parts.remove(provider);
            }
        }
        if parts.is_empty() {
            self.requests.remove(id);
        }
        // a request id whose parts are gone leaves its researcher's list
        self.by_researcher.retain(|_, ids| {
            ids.retain(|i| self.requests.contains_key(i));
            !ids.is_empty()
        });
    }

    /// The parts of request `id`, by data holder.
    pub fn request(&self, id: &str) -> Option<&BTreeMap<String, AccessPart>> {
        self.requests.get(id)
    }

    /// Every request, newest id order aside: by request id.
    pub fn requests(&self) -> impl Iterator<Item = (&String, &BTreeMap<String, AccessPart>)> {
        self.requests.iter()
    }

    /// The requests of `researcher`.
    pub fn of_researcher<'a>(
        &'a self,
        researcher: &str,
    ) -> impl Iterator<Item = (&'a String, &'a BTreeMap<String, AccessPart>)> + 'a {
        self.by_researcher.get(researcher).into_iter().flatten().filter_map(|id| self.requests.get_key_value(id))
    }

    /// The permits `researcher` holds at unix second `now`: approved datasets whose time has
    /// come and not passed, and that were neither revoked nor withdrawn since.
    pub fn permits(&self, researcher: &str, now: i64) -> Vec<Permit> {
        let mut out = Vec::new();
        for (_, parts) in self.of_researcher(researcher) {
            for part in parts.values() {
                for (dataset, access) in &part.datasets {
                    let DatasetAccess::Approved { from, until, .. } = access else { continue };
                    let (Some(from), Some(until)) = (unix(from), unix(until)) else { continue };
                    if from <= now && now < until {
                        out.push(Permit { provider: part.provider.clone(), dataset: dataset.clone(), from, until });
                    }
                }
            }
        }
        out
    }

    /// Number of request parts.
    pub fn len(&self) -> usize {
        self.requests.values().map(BTreeMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.requests.is_empty()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn part(provider: &str, researcher: &str, datasets: &[(&str, DatasetAccess)]) -> ProjectedAccess {
        ProjectedAccess {
            provider: provider.into(),
            id: "r".into(),
            version: 2,
            state: AggregateState::Access {
                request: Box::new(AccessRequest {
                    researcher: researcher.into(),
                    title: "t".into(),
                    purposes: vec![],
                    description: "d".into(),
                    ethics_approval: "e".into(),
                    datasets: datasets.iter().map(|(d, _)| d.to_string()).collect(),
                }),
                requested: "2026-01-01T00:00:00Z".into(),
                modified: "2026-01-02T00:00:00Z".into(),
                datasets: datasets.iter().map(|(d, a)| (d.to_string(), a.clone())).collect(),
                steps: vec![],
            },
        }
    }

    #[test]
    fn permits_are_approvals_within_their_time() {
        let approved = |until: &str| DatasetAccess::Approved {
            from: "2026-01-02T00:00:00Z".into(),
            until: until.into(),
            conditions: None,
        };
        let mut book = AccessBook::default();
        book.set(
            "p1",
            "r1",
            Some(part(
                "p1",
                "alice",
                &[
                    ("d1", approved("2026-02-01T00:00:00Z")),
                    ("d2", DatasetAccess::Requested),
                    ("d3", DatasetAccess::Revoked { reason: "x".into(), revoked: "2026-01-03T00:00:00Z".into() }),
                ],
            )),
        );
        book.set("p2", "r2", Some(part("p2", "bob", &[("d4", approved("2027-01-01T00:00:00Z"))])));
        let jan15 = unix("2026-01-15T00:00:00Z").unwrap();
        let names = |ps: Vec<Permit>| ps.into_iter().map(|p| p.dataset).collect::<Vec<_>>();
        assert_eq!(names(book.permits("alice", jan15)), ["d1"]);
        assert_eq!(names(book.permits("alice", unix("2026-01-01T12:00:00Z").unwrap())), Vec::<String>::new(), "before");
        assert_eq!(
            names(book.permits("alice", unix("2026-02-01T00:00:00Z").unwrap())),
            Vec::<String>::new(),
            "expired"
        );
        assert_eq!(names(book.permits("bob", jan15)), ["d4"]);
        assert_eq!(names(book.permits("carol", jan15)), Vec::<String>::new());
        assert_eq!(book.len(), 2);
        book.set("p1", "r1", None);
        assert!(book.permits("alice", jan15).is_empty() && book.request("r1").is_none());
        assert_eq!(book.of_researcher("alice").count(), 0);
    }
}
