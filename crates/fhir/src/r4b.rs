//! FHIR R4B (4.3.0): for ImagingStudy, Bundle and OperationOutcome the same JSON as R4 (4.0.1).

use fhir_sdk::r4b::{
    resources::{
        Bundle, BundleEntry, BundleEntryRequest, BundleEntryResponse, BundleEntrySearch, BundleLink,
        CapabilityStatement, CapabilityStatementImplementation, CapabilityStatementRest,
        CapabilityStatementRestResource, CapabilityStatementRestResourceInteraction,
        CapabilityStatementRestResourceSearchParam, CapabilityStatementSoftware, ImagingStudy, ImagingStudySeries,
        ImagingStudySeriesInstance, OperationOutcome, OperationOutcomeIssue,
    },
    types::{Coding, Extension, ExtensionValue, Identifier, Meta, Reference},
};

crate::shared::shared_builders!();

pub(crate) fn imaging_study(view: &StudyView<'_>) -> Result<Value, FhirError> {
    let study = view.study;
    let mut series = Vec::new();
    for s in &study.series {
        let mut b = ImagingStudySeries::builder()
            .uid(s.uid.clone())
            .modality(coding(DICOM_SYSTEM, &s.modality, None)?)
            .number_of_instances(count(s.number_of_instances)?);
        if let Some(n) = s.number {
            b = b.number(n);
        }
        if let Some(d) = &s.description {
            b = b.description(d.clone());
        }
        if let Some(site) = &s.body_site {
            b = b.body_site(coding(SNOMED_SYSTEM, &site.code, site.display.as_deref())?);
        }
        if let Some(l) = &s.laterality {
            b = b.laterality(coding(SNOMED_SYSTEM, &l.code, l.display.as_deref())?);
        }
        let mut instances = Vec::new();
        for i in &s.instances {
            let mut ib = ImagingStudySeriesInstance::builder().uid(i.uid.clone()).sop_class(sop_class(&i.sop_class)?);
            if let Some(n) = i.number {
                ib = ib.number(n);
            }
            instances.push(Some(ib.build().map_err(FhirError::new)?));
        }
        series.push(Some(b.instance(instances).build().map_err(FhirError::new)?));
    }
    let modalities =
        study.modalities.iter().map(|m| coding(DICOM_SYSTEM, m, None).map(Some)).collect::<Result<Vec<_>, _>>()?;
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
