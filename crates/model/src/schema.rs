//! The JSON Schemas of `schemas/`, compiled once. The files are embedded at build time so the
//! running service validates with exactly the files providers read.

use std::sync::OnceLock;

use jsonschema::{Draft, Registry, Validator};
use serde_json::{json, Value};

use crate::{payload::merge_patch, Event, EventType, Rejection, Violation};

/// A schema file as shipped in `schemas/`.
pub struct SchemaFile {
    pub file_name: &'static str,
    pub id: &'static str,
    pub contents: &'static str,
}

macro_rules! schema_file {
    ($name:literal) => {
        SchemaFile {
            file_name: concat!($name, ".json"),
            id: concat!("urn:cireg:schema:", $name),
            contents: include_str!(concat!("../../../schemas/", $name, ".json")),
        }
    };
}

static FILES: [SchemaFile; 18] = [
    schema_file!("defs.v1"),
    schema_file!("cloudevent.v1"),
    schema_file!("eu.cancerimage.provider.registered.v1"),
    schema_file!("eu.cancerimage.dataset.published.v1"),
    schema_file!("eu.cancerimage.dataset.updated.v1"),
    schema_file!("eu.cancerimage.dataset.distribution.added.v1"),
    schema_file!("eu.cancerimage.dataset.distribution.removed.v1"),
    schema_file!("eu.cancerimage.dataset.deprecated.v1"),
    schema_file!("eu.cancerimage.dataset.withdrawn.v1"),
    schema_file!("eu.cancerimage.study.registered.v1"),
    schema_file!("eu.cancerimage.study.updated.v1"),
    schema_file!("eu.cancerimage.study.retracted.v1"),
    schema_file!("eu.cancerimage.subject.consent.withdrawn.v1"),
    schema_file!("eu.cancerimage.access.requested.v1"),
    schema_file!("eu.cancerimage.access.decided.v1"),
    schema_file!("eu.cancerimage.access.answered.v1"),
    schema_file!("eu.cancerimage.access.withdrawn.v1"),
    schema_file!("eu.cancerimage.access.revoked.v1"),
];

/// Every schema file, for serving under `/schemas/` and for tests.
pub fn schema_files() -> &'static [SchemaFile] {
    &FILES
}

/// At most this many violations are reported for one event.
const MAX_VIOLATIONS: usize = 50;

struct Validators {
    envelope: Validator,
    by_type: Vec<(EventType, Validator)>,
    dataset: Validator,
}

fn validators() -> &'static Validators {
    static V: OnceLock<Validators> = OnceLock::new();
    V.get_or_init(|| {
        // The schema files are part of the binary: failing to compile them is a build defect,
        // caught by the unit tests below, never an input error.
        #[allow(clippy::expect_used)]
        let registry: &'static Registry<'static> = {
            let mut registry = Registry::new();
            for file in &FILES {
                let value: Value = serde_json::from_str(file.contents).expect("schema file is JSON");
                registry = registry.add(file.id, value).expect("schema file registers");
            }
            Box::leak(Box::new(registry.prepare().expect("schema registry resolves")))
        };
        #[allow(clippy::expect_used)]
        let build = |schema: Value| {
            jsonschema::options()
                .with_draft(Draft::Draft202012)
                .should_validate_formats(true)
                .with_registry(registry)
                .build(&schema)
                .expect("schema compiles")
        };
        Validators {
            envelope: build(json!({"$ref": "urn:cireg:schema:cloudevent.v1"})),
            by_type: EventType::ALL
                .into_iter()
                .map(|t| (t, build(json!({"$ref": format!("urn:cireg:schema:{}", t.as_str())}))))
                .collect(),
            dataset: build(json!({"$ref": "urn:cireg:schema:defs.v1#/$defs/Dataset"})),
        }
    })
}

fn violations(validator: &Validator, instance: &Value, prefix: &str) -> Vec<Violation> {
    validator
        .iter_errors(instance)
        .take(MAX_VIOLATIONS)
        .map(|e| Violation {
            pointer: format!("{prefix}{}", e.instance_path().as_str()),
            detail: e.masked().to_string(),
        })
        .collect()
}

/// Parses and validates one event: JSON, then the CloudEvents envelope, then the schema of its
/// type. Returns the typed event, or every violation found with its JSON pointer.
pub fn validate_event(bytes: &[u8]) -> Result<Event, Rejection> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| Rejection::invalid("", format!("not JSON (line {}, column {}): {e}", e.line(), e.column())))?;
    validate_event_value(value)
}

pub(crate) fn validate_event_value(value: Value) -> Result<Event, Rejection> {
    let v = validators();
    if !value.is_object() {
        return Err(Rejection::invalid("", "an event is a JSON object (CloudEvents structured mode)"));
    }
    let found = violations(&v.envelope, &value, "");
    if !found.is_empty() {
        return Err(Rejection::Invalid(found));
    }
    let type_name = value.get("type").and_then(Value::as_str).unwrap_or_default();
    let event_type = EventType::parse(type_name)
        .ok_or_else(|| Rejection::invalid("/type", format!("unknown event type {type_name}")))?;
    let Some((_, validator)) = v.by_type.iter().find(|(t, _)| *t == event_type) else {
        return Err(Rejection::invalid("/type", format!("no schema for {type_name}")));
    };
    // A merge patch uses null to remove a property; the schema types the properties that are set,
    // and the merged document is checked as a whole when the patch is applied.
    let found = if event_type == EventType::DatasetUpdated {
        let mut stripped = value.clone();
        let mut removed = Vec::new();
        if let Some(Value::Object(data)) = stripped.get_mut("data") {
            removed = data.iter().filter(|(_, v)| v.is_null()).map(|(k, _)| k.clone()).collect();
            data.retain(|_, v| !v.is_null());
        }
        let only_removals = !removed.is_empty() && stripped["data"].as_object().is_some_and(|d| d.is_empty());
        let mut found = violations(validator, &stripped, "");
        if only_removals {
            // `{"x": null}` is a whole patch: the emptiness check is about the stripped copy
            found.retain(|v| v.pointer != "/data");
        }
        for name in removed.iter().filter(|name| !dataset_property_names().contains(*name)) {
            found.push(Violation {
                pointer: format!("/data/{name}"),
                detail: "not a dataset property: nothing to remove".to_owned(),
            });
        }
        found
    } else {
        violations(validator, &value, "")
    };
    if !found.is_empty() {
        return Err(Rejection::Invalid(found));
    }
    Event::from_valid_json(value)
}

/// Checks a whole dataset document (as it stands after a merge patch). Pointers are prefixed
/// with `/data` so they point into the event that caused the change.
pub fn validate_dataset_document(doc: &Value) -> Result<(), Vec<Violation>> {
    let found = violations(&validators().dataset, doc, "/data");
    if found.is_empty() {
        Ok(())
    } else {
        Err(found)
    }
}

/// The property names a dataset document may have (`DatasetProperties` in `defs.v1.json`), except
/// the distributions, which change through their own events.
fn dataset_property_names() -> &'static [String] {
    static NAMES: OnceLock<Vec<String>> = OnceLock::new();
    NAMES.get_or_init(|| {
        let defs: Value = serde_json::from_str(include_str!("../../../schemas/defs.v1.json")).unwrap_or_default();
        defs["$defs"]["DatasetProperties"]["properties"]
            .as_object()
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default()
    })
}

/// Applies a merge patch to a dataset document and validates the result.
pub(crate) fn patched_dataset(current: &Value, patch: &Value) -> Result<Value, Rejection> {
    let mut doc = current.clone();
    merge_patch(&mut doc, patch);
    validate_dataset_document(&doc).map_err(Rejection::Invalid)?;
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_compiles_and_every_example_validates() {
        for t in EventType::ALL {
            let path = format!("{}/../../schemas/examples/{}.json", env!("CARGO_MANIFEST_DIR"), t.as_str());
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            let event = validate_event(&bytes).unwrap_or_else(|e| panic!("{path}: {e}"));
            assert_eq!(event.event_type, t);
        }
    }

    #[test]
    fn every_invalid_example_is_rejected_at_its_pointer() {
        let dir = format!("{}/../../schemas/examples/invalid", env!("CARGO_MANIFEST_DIR"));
        let expected: Value = serde_json::from_slice(&std::fs::read(format!("{dir}/expected.json")).unwrap()).unwrap();
        let cases = expected.as_object().unwrap();
        assert!(cases.len() >= 10);
        for (name, want) in cases {
            let bytes = std::fs::read(format!("{dir}/{name}.json")).unwrap();
            let pointer = want["pointer"].as_str().unwrap();
            match validate_event(&bytes) {
                Err(Rejection::Invalid(v)) => assert!(
                    v.iter().any(|v| v.pointer == pointer),
                    "{name}: expected a violation at {pointer:?}, got {v:?}"
                ),
                other => panic!("{name}: expected rejection, got {other:?}"),
            }
        }
    }

    #[test]
    fn not_json_is_rejected_with_position() {
        let err = validate_event(b"{\"id\": ").unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
    }

    #[test]
    fn merged_dataset_must_stay_complete() {
        let path =
            format!("{}/../../schemas/examples/eu.cancerimage.dataset.published.v1.json", env!("CARGO_MANIFEST_DIR"));
        let event: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let err = patched_dataset(&event["data"], &json!({"title": null})).unwrap_err();
        let Rejection::Invalid(v) = err else { panic!() };
        assert_eq!(v[0].pointer, "/data");
        assert!(v[0].detail.contains("title"), "{v:?}");
        assert!(patched_dataset(&event["data"], &json!({"ageRange": null})).is_ok());
    }

    #[test]
    fn a_patch_may_only_remove() {
        let update = |data: Value| {
            let path =
                format!("{}/../../schemas/examples/eu.cancerimage.dataset.updated.v1.json", env!("CARGO_MANIFEST_DIR"));
            let mut event: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
            event["data"] = data;
            validate_event(&serde_json::to_vec(&event).unwrap())
        };
        assert!(update(json!({"landingPage": null})).is_ok());
        let Err(Rejection::Invalid(v)) = update(json!({"bogus": null})) else { panic!("removing an unknown property") };
        assert_eq!(v[0].pointer, "/data/bogus");
        let Err(Rejection::Invalid(v)) = update(json!({})) else { panic!("an empty patch") };
        assert_eq!(v[0].pointer, "/data");
    }
}
