//! What R5 and R4B build alike: the same field names on different generated types. Expanded in
//! `r5.rs` and `r4b.rs` with that version's types in scope.

use std::{fmt::Display, str::FromStr};

use crate::FhirError;

/// A FHIR code (or a string field that takes one) from its text.
pub(crate) fn code<T: FromStr>(text: &str) -> Result<T, FhirError>
where
    T::Err: Display,
{
    text.parse().map_err(|e| FhirError::new(format!("{text:?}: {e}")))
}

pub(crate) fn to_json(resource: impl serde::Serialize) -> Result<serde_json::Value, FhirError> {
    serde_json::to_value(resource).map_err(FhirError::new)
}

macro_rules! shared_builders {
    () => {
        use fhir_sdk::{DateTime, Instant};
        use serde_json::Value;

        use crate::{
            shared::{code, to_json},
            BundleKind, Entry, FhirError, Issue, Link, SearchParamInfo, StudyView, DATASET_EXTENSION,
        };
        use cireg_model::vocab::{
            subject_system, DCM as DICOM_SYSTEM, DICOM_UID as DICOM_UID_SYSTEM, SNOMED as SNOMED_SYSTEM,
        };

        fn coding(system: &str, code: &str, display: Option<&str>) -> Result<Coding, FhirError> {
            let builder = Coding::builder().system(system.to_owned()).code(code.to_owned());
            let builder = match display {
                Some(d) => builder.display(d.to_owned()),
                None => builder,
            };
            builder.build().map_err(FhirError::new)
        }

        fn meta(view: &StudyView<'_>) -> Result<Meta, FhirError> {
            let mut tags = Vec::new();
            if view.subsetted {
                let system = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue";
                tags.push(Some(coding(system, "SUBSETTED", Some("subsetted"))?));
            }
            Meta::builder()
                .version_id(view.version.to_string())
                .last_updated(code::<Instant>(view.last_updated)?)
                .tag(tags)
                .build()
                .map_err(FhirError::new)
        }

        fn identifier(uid: &str) -> Result<Identifier, FhirError> {
            Identifier::builder()
                .system(DICOM_UID_SYSTEM.to_owned())
                .value(format!("urn:oid:{uid}"))
                .build()
                .map_err(FhirError::new)
        }

        /// A logical reference to the pseudonymous subject: the registry serves no Patient.
        fn subject(view: &StudyView<'_>) -> Result<Reference, FhirError> {
            let identifier = Identifier::builder()
                .system(subject_system(view.provider))
                .value(view.subject.to_owned())
                .build()
                .map_err(FhirError::new)?;
            Reference::builder().r#type("Patient".to_owned()).identifier(identifier).build().map_err(FhirError::new)
        }

        fn dataset_extension(view: &StudyView<'_>) -> Result<Extension, FhirError> {
            Extension::builder()
                .url(DATASET_EXTENSION.to_owned())
                .value(ExtensionValue::Uri(view.dataset_iri.to_owned()))
                .build()
                .map_err(FhirError::new)
        }

        fn started(view: &StudyView<'_>) -> Result<DateTime, FhirError> {
            code::<DateTime>(&view.study.started)
        }

        fn count(n: u64) -> Result<u32, FhirError> {
            u32::try_from(n).map_err(|_| FhirError::new(format!("{n} is more than an unsignedInt holds")))
        }

        fn sop_class(uid: &str) -> Result<Coding, FhirError> {
            coding("urn:ietf:rfc:3986", &format!("urn:oid:{uid}"), None)
        }

        /// The ImagingStudy of a study. `modality`, `body_site` and `laterality` wrap a coding as
        /// the version wants it (R5: CodeableConcept / CodeableReference; R4B: the Coding).
        pub(crate) fn imaging_study(view: &StudyView<'_>) -> Result<Value, FhirError> {
            let study = view.study;
            let mut series = Vec::new();
            for s in &study.series {
                let mut b = ImagingStudySeries::builder()
                    .uid(s.uid.clone())
                    .modality(modality(coding(DICOM_SYSTEM, &s.modality, None)?)?)
                    .number_of_instances(count(s.number_of_instances)?);
                if let Some(n) = s.number {
                    b = b.number(n);
                }
                if let Some(d) = &s.description {
                    b = b.description(d.clone());
                }
                if let Some(site) = &s.body_site {
                    b = b.body_site(body_site(coding(SNOMED_SYSTEM, &site.code, site.display.as_deref())?)?);
                }
                if let Some(l) = &s.laterality {
                    b = b.laterality(laterality(coding(SNOMED_SYSTEM, &l.code, l.display.as_deref())?)?);
                }
                let mut instances = Vec::new();
                for i in &s.instances {
                    let mut ib =
                        ImagingStudySeriesInstance::builder().uid(i.uid.clone()).sop_class(sop_class(&i.sop_class)?);
                    if let Some(n) = i.number {
                        ib = ib.number(n);
                    }
                    instances.push(Some(ib.build().map_err(FhirError::new)?));
                }
                series.push(Some(b.instance(instances).build().map_err(FhirError::new)?));
            }
            let modalities = study
                .modalities
                .iter()
                .map(|m| coding(DICOM_SYSTEM, m, None).and_then(modality).map(Some))
                .collect::<Result<Vec<_>, _>>()?;
            let mut b = ImagingStudy::builder()
                .id(view.id.to_owned())
                .meta(meta(view)?)
                .extension(vec![dataset_extension(view)?])
                .identifier(vec![Some(identifier(&study.study_instance_uid)?)])
                .status(code("available")?)
                .modality(modalities)
                .subject(subject(view)?)
                .started(started(view)?)
                .number_of_series(count(study.number_of_series)?)
                .number_of_instances(count(study.number_of_instances)?)
                .series(series);
            if let Some(d) = &study.description {
                b = b.description(d.clone());
            }
            to_json(b.build().map_err(FhirError::new)?)
        }

        pub(crate) fn bundle(
            kind: BundleKind,
            total: Option<u32>,
            links: &[Link],
            entries: &[Entry],
        ) -> Result<Value, FhirError> {
            let mut builder = Bundle::builder()
                .r#type(code(match kind {
                    BundleKind::Searchset => "searchset",
                    BundleKind::History => "history",
                })?)
                .timestamp(Instant(time::OffsetDateTime::now_utc()));
            if let Some(total) = total {
                builder = builder.total(total);
            }
            let links = links
                .iter()
                .map(|l| Ok(Some(BundleLink::builder().relation(code(l.relation)?).url(l.url.clone()).build()?)))
                .collect::<Result<Vec<_>, FhirError>>()?;
            let mut slots = Vec::new();
            for entry in entries {
                let mut e = BundleEntry::builder();
                if kind == BundleKind::Searchset {
                    e = e.search(BundleEntrySearch::builder().mode(code("match")?).build().map_err(FhirError::new)?);
                }
                if let Some((method, url)) = &entry.request {
                    e = e
                        .request(
                            BundleEntryRequest::builder()
                                .method(code(method)?)
                                .url(url.clone())
                                .build()
                                .map_err(FhirError::new)?,
                        )
                        .response(
                            BundleEntryResponse::builder().status("200".to_owned()).build().map_err(FhirError::new)?,
                        );
                }
                slots.push(Some(e.build().map_err(FhirError::new)?));
            }
            to_json(builder.link(links).entry(slots).build().map_err(FhirError::new)?)
        }

        pub(crate) fn operation_outcome(issues: &[Issue]) -> Result<Value, FhirError> {
            let issues = issues
                .iter()
                .map(|i| {
                    Ok(Some(
                        OperationOutcomeIssue::builder()
                            .severity(code(i.severity)?)
                            .code(code(i.code)?)
                            .diagnostics(i.diagnostics.clone())
                            .expression(i.expression.iter().cloned().map(Some).collect())
                            .build()
                            .map_err(FhirError::new)?,
                    ))
                })
                .collect::<Result<Vec<_>, FhirError>>()?;
            to_json(OperationOutcome::builder().issue(issues).build().map_err(FhirError::new)?)
        }

        pub(crate) fn capability_statement(
            fhir_version: &str,
            base: &str,
            software_version: &str,
            date: &str,
            params: &[SearchParamInfo],
        ) -> Result<Value, FhirError> {
            let interactions = ["read", "vread", "history-instance", "search-type"]
                .into_iter()
                .map(|c| Ok(Some(CapabilityStatementRestResourceInteraction::builder().code(code(c)?).build()?)))
                .collect::<Result<Vec<_>, FhirError>>()?;
            let search_params = params
                .iter()
                .map(|p| {
                    Ok(Some(
                        CapabilityStatementRestResourceSearchParam::builder()
                            .name(p.name.to_owned())
                            .r#type(code(p.type_)?)
                            .documentation(p.documentation.to_owned())
                            .build()
                            .map_err(FhirError::new)?,
                    ))
                })
                .collect::<Result<Vec<_>, FhirError>>()?;
            let resource = CapabilityStatementRestResource::builder()
                .r#type(code("ImagingStudy")?)
                .interaction(interactions)
                .versioning(code("versioned")?)
                .read_history(true)
                .search_param(search_params)
                .build()
                .map_err(FhirError::new)?;
            let security = CapabilityStatementRestSecurity::builder()
                .cors(true)
                .description(
                    "Every interaction but `metadata` needs `Authorization: Bearer <token>`: a JWT (RS256 or ES256) \
                     from the identity provider this registry trusts, whose role claim holds the researcher role. \
                     Without one: 401 (login); without the role: 403 (forbidden)."
                        .to_owned(),
                )
                .build()
                .map_err(FhirError::new)?;
            let rest = CapabilityStatementRest::builder()
                .mode(code("server")?)
                .security(security)
                .documentation(
                    "Study-level metadata of the registry's datasets, read-only. Studies of subjects that withdrew \
                     consent are erased; retracted studies answer 410 Gone."
                        .to_owned(),
                )
                .resource(vec![Some(resource)])
                .build()
                .map_err(FhirError::new)?;
            let software = CapabilityStatementSoftware::builder()
                .name("cireg".to_owned())
                .version(software_version.to_owned())
                .build()
                .map_err(FhirError::new)?;
            let implementation = CapabilityStatementImplementation::builder()
                .description("cireg, the metadata registry of the European cancer imaging federation".to_owned())
                .url(base.to_owned())
                .build()
                .map_err(FhirError::new)?;
            to_json(
                CapabilityStatement::builder()
                    .status(code("active")?)
                    .date(code::<DateTime>(date)?)
                    .kind(code("instance")?)
                    .fhir_version(code(fhir_version)?)
                    .format(vec![Some("json".to_owned()), Some("application/fhir+json".to_owned())])
                    .software(software)
                    .implementation(implementation)
                    .rest(vec![Some(rest)])
                    .build()
                    .map_err(FhirError::new)?,
            )
        }
    };
}

pub(crate) use shared_builders;
