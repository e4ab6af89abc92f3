//! `_summary` and `_elements`: a resource with only some of its elements.

use serde_json::Value;

/// Which elements of a resource a response carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subset {
    /// Everything.
    Full,
    /// `_summary=true`: the elements ImagingStudy marks as summary.
    Summary,
    /// `_elements=a,b`: the named top-level elements, with the mandatory ones.
    Elements(Vec<String>),
}

impl Subset {
    /// Whether the resource loses elements (and so carries the `SUBSETTED` tag).
    pub fn is_subsetted(&self) -> bool {
        !matches!(self, Subset::Full)
    }
}

/// Elements every subset keeps: what identifies the resource and what FHIR requires of it.
const ALWAYS: [&str; 5] = ["resourceType", "id", "meta", "status", "subject"];

/// The summary elements of ImagingStudy (R4 and R5 mark these `isSummary`).
const SUMMARY: [&str; 9] = [
    "identifier",
    "modality",
    "started",
    "numberOfSeries",
    "numberOfInstances",
    "series",
    "description",
    "extension",
    "encounter",
];

/// Summary elements of a series (`instance` is not one).
const SERIES_SUMMARY: [&str; 7] =
    ["uid", "number", "modality", "numberOfInstances", "bodySite", "laterality", "started"];

/// Removes from an ImagingStudy (as JSON) what `how` leaves out.
pub fn subset(resource: &mut Value, how: &Subset) {
    let Value::Object(map) = resource else { return };
    match how {
        Subset::Full => {}
        Subset::Summary => {
            map.retain(|k, _| ALWAYS.contains(&k.as_str()) || SUMMARY.contains(&k.as_str()));
            if let Some(Value::Array(series)) = map.get_mut("series") {
                for s in series.iter_mut().filter_map(Value::as_object_mut) {
                    s.retain(|k, _| SERIES_SUMMARY.contains(&k.as_str()));
                }
            }
        }
        Subset::Elements(names) => {
            map.retain(|k, _| ALWAYS.contains(&k.as_str()) || names.iter().any(|n| n == k));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subsets_keep_what_identifies_the_resource() {
        let full = json!({"resourceType": "ImagingStudy", "id": "x", "meta": {}, "status": "available",
            "subject": {}, "started": "2024", "note": [], "series": [{"uid": "1.2", "instance": []}]});
        let mut s = full.clone();
        subset(&mut s, &Subset::Summary);
        assert_eq!(
            s,
            json!({"resourceType": "ImagingStudy", "id": "x", "meta": {}, "status": "available",
            "subject": {}, "started": "2024", "series": [{"uid": "1.2"}]})
        );
        let mut e = full.clone();
        subset(&mut e, &Subset::Elements(vec!["started".into()]));
        assert_eq!(
            e,
            json!({"resourceType": "ImagingStudy", "id": "x", "meta": {}, "status": "available",
            "subject": {}, "started": "2024"})
        );
        let mut f = full.clone();
        subset(&mut f, &Subset::Full);
        assert_eq!(f, full);
    }
}
