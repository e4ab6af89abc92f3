//! FHIR R5 (5.0.0).

use fhir_sdk::r5::{
    resources::{
        Bundle, BundleEntry, BundleEntryRequest, BundleEntryResponse, BundleEntrySearch, BundleLink,
        CapabilityStatement, CapabilityStatementImplementation, CapabilityStatementRest,
        CapabilityStatementRestResource, CapabilityStatementRestResourceInteraction,
        CapabilityStatementRestResourceSearchParam, CapabilityStatementRestSecurity, CapabilityStatementSoftware,
        ImagingStudy, ImagingStudySeries, ImagingStudySeriesInstance, OperationOutcome, OperationOutcomeIssue,
    },
    types::{CodeableConcept, CodeableReference, Coding, Extension, ExtensionValue, Identifier, Meta, Reference},
};

crate::shared::shared_builders!();

fn modality(coding: Coding) -> Result<CodeableConcept, FhirError> {
    Ok(CodeableConcept::builder().coding(vec![Some(coding)]).build()?)
}

fn laterality(coding: Coding) -> Result<CodeableConcept, FhirError> {
    modality(coding)
}

fn body_site(coding: Coding) -> Result<CodeableReference, FhirError> {
    Ok(CodeableReference::builder().concept(modality(coding)?).build()?)
}
