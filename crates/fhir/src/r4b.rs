//! FHIR R4B (4.3.0): for ImagingStudy, Bundle and OperationOutcome the same JSON as R4 (4.0.1).

use fhir_sdk::r4b::{
    resources::{
        Bundle, BundleEntry, BundleEntryRequest, BundleEntryResponse, BundleEntrySearch, BundleLink,
        CapabilityStatement, CapabilityStatementImplementation, CapabilityStatementRest,
        CapabilityStatementRestResource, CapabilityStatementRestResourceInteraction,
        CapabilityStatementRestResourceSearchParam, CapabilityStatementRestSecurity, CapabilityStatementSoftware,
        ImagingStudy, ImagingStudySeries, ImagingStudySeriesInstance, OperationOutcome, OperationOutcomeIssue,
    },
    types::{Coding, Extension, ExtensionValue, Identifier, Meta, Reference},
};

crate::shared::shared_builders!();

// R4B codes modalities, body sites and laterality as plain Codings
fn modality(coding: Coding) -> Result<Coding, FhirError> {
    Ok(coding)
}

fn laterality(coding: Coding) -> Result<Coding, FhirError> {
    Ok(coding)
}

fn body_site(coding: Coding) -> Result<Coding, FhirError> {
    Ok(coding)
}
