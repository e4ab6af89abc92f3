//! Who reads which study-level data. Studies are pseudonymised personal data, served per dataset:
//! a caller reads the studies of the datasets it holds a valid permit for (an approved access
//! request, `requests.rs`) or a valid grant for (a GA4GH Passport visa of a trusted issuer), those
//! of the providers its token may publish for (a provider's own studies), or every study with the
//! all-studies role. Permits and grants are checked against the clock on every request, so an
//! expired one stops access at once; a revoked permit stops once the read models have the
//! revocation (the revocation's own answer waits for that).

use std::collections::BTreeSet;

use axum::http::HeaderMap;
use cireg_auth::Caller;
use cireg_views::{AccessBook, StudyAccess};

use crate::{auth::Refusal, AppState};

/// What study-level data `caller` may read now, as the state's access book has its permits.
pub(crate) fn access_now(state: &AppState, caller: &Caller) -> StudyAccess {
    access_of(caller, &state.read_models.access(), &state.base, cireg_auth::unix_now())
}

/// What study-level data `caller` may read at unix second `now`, with the permits of `book`.
pub(crate) fn access_of(
    caller: &Caller,
    book: &AccessBook,
    base: &cireg_projector::PublicBase,
    now: u64,
) -> StudyAccess {
    if caller.all_studies {
        return StudyAccess::All;
    }
    let mut datasets: BTreeSet<String> =
        caller.grants.iter().filter(|g| g.valid_at(now)).map(|g| g.dataset.clone()).collect();
    if !caller.subject.is_empty() {
        let now = i64::try_from(now).unwrap_or(i64::MAX);
        datasets.extend(book.permits(&caller.subject, now).into_iter().map(|p| base.dataset(&p.provider, &p.dataset)));
    }
    let providers: BTreeSet<String> = caller.providers.iter().map(|p| p.as_str().to_owned()).collect();
    StudyAccess::Only { datasets, providers }
}

/// The caller of a request for study-level data and what it may read: 401 without a valid token,
/// 403 for a token that could never read a study (no researcher or all-studies role, no
/// provider, no valid visa). A researcher without any permit yet reads nothing: its searches are
/// empty, and a study it asks for is not found.
pub(crate) async fn study_reader(state: &AppState, headers: &HeaderMap) -> Result<(Caller, StudyAccess), Refusal> {
    let Some(caller) = crate::auth::caller(state, headers).await? else {
        return Err(Refusal::Unauthenticated(
            "study-level data needs a bearer token: send Authorization: Bearer <token>".to_owned(),
        ));
    };
    let access = access_now(state, &caller);
    if !caller.researcher && access.is_nothing() {
        let role = state.auth.as_ref().map(|a| a.config().claims.researcher_role.clone()).unwrap_or_default();
        return Err(Refusal::Forbidden(format!(
            "study-level data is for researchers (role {role}) with access to a dataset, for its provider, and for \
             holders of a GA4GH Passport visa granting a dataset: this token is none of these"
        )));
    }
    Ok((caller, access))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use cireg_auth::Grant;
    use cireg_model::ProviderId;

    use super::*;

    fn caller() -> Caller {
        Caller {
            subject: "alice".into(),
            providers: Vec::new(),
            researcher: true,
            all_studies: false,
            operator: false,
            grants: Vec::new(),
        }
    }

    #[test]
    fn grants_count_while_valid_and_roles_widen_access() {
        let grant = |d: &str, from, until| Grant {
            dataset: d.into(),
            from,
            until,
            issuer: "https://dac.example/".into(),
            source: "dac".into(),
        };
        let c = Caller {
            grants: vec![grant("d1", 100, 200), grant("d2", 150, 300), grant("d3", 500, 600)],
            providers: vec![ProviderId::parse("hospital-a").unwrap()],
            ..caller()
        };
        let (book, base) = (AccessBook::default(), cireg_projector::PublicBase::new("http://x.test").unwrap());
        let StudyAccess::Only { datasets, providers } = access_of(&c, &book, &base, 160) else { panic!("not all") };
        assert_eq!(datasets, BTreeSet::from(["d1".to_owned(), "d2".to_owned()]));
        assert_eq!(providers, BTreeSet::from(["hospital-a".to_owned()]));
        let StudyAccess::Only { datasets, .. } = access_of(&c, &book, &base, 200) else { panic!("not all") };
        assert_eq!(datasets, BTreeSet::from(["d2".to_owned()]), "d1 expired at 200");
        assert!(access_of(&caller(), &book, &base, 160).is_nothing());
        assert_eq!(access_of(&Caller { all_studies: true, ..caller() }, &book, &base, 0), StudyAccess::All);
    }
}
