//! The application-profile gate: before a dataset event is appended, the dataset as the event would
//! leave it is mapped to RDF (the same mapping the projector uses) and validated with the SHACL
//! shapes of its access level. A violation refuses the event; warnings (the profiles'
//! Recommended properties) do not.

use std::sync::Arc;

use cireg_dcat::{aggregate_graph, pointer_for_property, PublicBase};
use cireg_model::{AggregateState, DatasetStatus, ProfileViolation, Rejection};
use cireg_shapes::{AccessLevel, Severity, Shapes, ShapesError};
use oxigraph::model::Triple;

/// Compiled shapes and the base the mapping mints IRIs under. Cheap to clone.
#[derive(Clone)]
pub struct ProfileGate {
    shapes: Arc<Shapes>,
    base: PublicBase,
}

impl ProfileGate {
    /// Compiles the embedded shapes (about a second in a debug build: do it once at start).
    pub fn load(base: PublicBase) -> Result<Self, ShapesError> {
        Ok(ProfileGate { shapes: Arc::new(Shapes::load()?), base })
    }

    /// Checks the dataset `state` would be in. Providers, withdrawn datasets and empty aggregates
    /// have nothing to check. Blocking: run it off the async threads.
    pub fn check(&self, provider: &str, id: &str, state: &AggregateState) -> Result<(), GateError> {
        let AggregateState::Dataset { status, document, .. } = state else { return Ok(()) };
        if *status == DatasetStatus::Withdrawn {
            return Ok(());
        }
        let access = document.get("accessRights").and_then(|v| v.as_str()).unwrap_or_default();
        let Some(level) = AccessLevel::from_code(access) else {
            return Err(GateError::Rejected(Rejection::invalid(
                "/data/accessRights",
                format!("{access:?} is not an access right the profile knows"),
            )));
        };
        let graph = aggregate_graph(&self.base, provider, id, state, None, None).map_err(GateError::Engine)?;
        let Some(graph) = graph else { return Ok(()) };
        let triples: Vec<Triple> = graph.quads.into_iter().map(Triple::from).collect();
        let report = self.shapes.validate(level, &triples).map_err(|e| GateError::Engine(e.to_string()))?;
        let violations: Vec<ProfileViolation> = report
            .findings
            .into_iter()
            .filter(|f| f.severity == Severity::Violation)
            .map(|f| ProfileViolation {
                pointer: f.path.as_deref().and_then(pointer_for_property).map(str::to_owned),
                focus_node: f.focus_node,
                path: f.path,
                value: f.value,
                message: f.message,
                constraint: f.constraint,
                source_shape: f.source_shape,
            })
            .collect();
        if violations.is_empty() {
            Ok(())
        } else {
            Err(GateError::Rejected(Rejection::Profile(violations)))
        }
    }
}

#[derive(Debug)]
pub enum GateError {
    /// The dataset does not conform.
    Rejected(Rejection),
    /// The gate itself failed; nothing is appended.
    Engine(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use cireg_model::{validate_event, Aggregate};
    use serde_json::{json, Value};
    use std::sync::OnceLock;

    fn gate() -> &'static ProfileGate {
        static GATE: OnceLock<ProfileGate> = OnceLock::new();
        GATE.get_or_init(|| ProfileGate::load(PublicBase::new("https://registry.example.eu").unwrap()).unwrap())
    }

    fn example() -> Value {
        let text = include_str!("../../../schemas/examples/eu.cancerimage.dataset.published.v1.json");
        serde_json::from_str(text).unwrap()
    }

    /// The gate's verdict on the dataset `event` publishes.
    fn check(event: &Value) -> Result<(), GateError> {
        let event = validate_event(&serde_json::to_vec(event).unwrap()).unwrap();
        let mut aggregate = Aggregate::default();
        aggregate.apply(1, &event);
        gate().check(event.provider.as_str(), &event.aggregate, &aggregate.state)
    }

    fn violations(event: &Value) -> Vec<ProfileViolation> {
        match check(event) {
            Err(GateError::Rejected(Rejection::Profile(v))) => v,
            other => panic!("expected a profile rejection, got {other:?}"),
        }
    }

    #[test]
    fn the_example_dataset_conforms() {
        if let Err(e) = check(&example()) {
            panic!("{e:?}");
        }
    }

    #[test]
    fn the_example_conforms_at_every_access_level() {
        for level in ["PUBLIC", "NON_PUBLIC"] {
            let mut e = example();
            e["data"]["accessRights"] = json!(level);
            if let Err(err) = check(&e) {
                panic!("{level}: {err:?}");
            }
        }
    }

    #[test]
    fn a_missing_health_data_access_body_is_named_with_its_pointer() {
        let mut e = example();
        e["data"].as_object_mut().unwrap().remove("hdab");
        let v = violations(&e);
        let hdab: Vec<_> = v.iter().filter(|v| v.path.as_deref().is_some_and(|p| p.ends_with("health#hdab"))).collect();
        assert!(!hdab.is_empty(), "{v:#?}");
        assert!(hdab.iter().all(|v| v.pointer.as_deref() == Some("/data/hdab")), "{hdab:#?}");
        assert!(hdab.iter().any(|v| v.constraint == "sh:MinCountConstraintComponent"), "{hdab:#?}");
        assert!(hdab
            .iter()
            .all(|v| v.focus_node.ends_with("/datasets/synthetic-breast-consortium/breast-mri-screening-2024")));
    }

    #[test]
    fn eucaim_mandatory_properties_are_checked_by_the_registry_shapes() {
        let mut e = example();
        e["data"].as_object_mut().unwrap().remove("interoperabilityLevel");
        let v = violations(&e);
        assert!(
            v.iter().any(|v| v.path.as_deref().is_some_and(|p| p.ends_with("#interoperabilityLevel"))
                && v.message.contains("interoperability tier")
                && v.source_shape.is_some()),
            "{v:#?}"
        );
    }

    #[test]
    fn healthdcat_structured_data_flag_is_required() {
        let mut e = example();
        e["data"].as_object_mut().unwrap().remove("structuredData");
        let v = violations(&e);
        assert!(v.iter().any(|v| v.pointer.as_deref() == Some("/data/structuredData")), "{v:#?}");
    }

    #[test]
    fn each_profile_invalid_example_is_refused_where_expected() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas/examples/profile-invalid");
        let expected: Value = serde_json::from_slice(&std::fs::read(format!("{dir}/expected.json")).unwrap()).unwrap();
        let expected = expected.as_object().unwrap();
        assert!(expected.len() >= 4);
        for (name, want) in expected {
            let event: Value = serde_json::from_slice(&std::fs::read(format!("{dir}/{name}.json")).unwrap()).unwrap();
            let v = violations(&event);
            assert!(
                v.iter().any(|v| v.pointer.as_deref() == want["pointer"].as_str()
                    && Some(v.constraint.as_str()) == want["constraint"].as_str()),
                "{name}: wanted {want}, got {v:#?}"
            );
        }
    }

    #[test]
    fn recommended_properties_only_warn() {
        let mut e = example();
        for key in ["healthThemes", "purposes", "custodian", "qualityCertificates", "retentionPeriod"] {
            e["data"].as_object_mut().unwrap().remove(key);
        }
        if let Err(err) = check(&e) {
            panic!("{err:?}");
        }
    }
}
