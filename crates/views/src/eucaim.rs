//! EUCAIM's federated-search "mediator" query: an AST of conditions over the node's collections
//! (here: datasets), answered with the matching collections and their aggregate figures.
//!
//! A dataset matches a condition when it may hold matching subjects: a sex it includes, an age
//! range that overlaps, a diagnosis, modality, body part or manufacturer it lists. Everything is
//! dataset-level; nothing about individual subjects leaves the node.

use serde::Serialize;
use serde_json::Value;

use crate::search::{SearchDoc, SearchIndex};

/// What is wrong with a query, and where (a JSON pointer into the request body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AstError {
    pub pointer: String,
    pub detail: String,
}

fn err(pointer: &str, detail: impl Into<String>) -> AstError {
    AstError { pointer: pointer.to_owned(), detail: detail.into() }
}

/// The keys EUCAIM's AST uses.
pub const KEYS: [&str; 7] = [
    "SNOMEDCT263495000", // sex
    "SNOMEDCT423493009", // age at diagnosis
    "SNOMEDCT439401001", // diagnosis
    "SNOMEDCT432213005", // year of diagnosis
    "RID10311",          // imaging modality
    "SNOMEDCT123037004", // body part
    "C25392",            // manufacturer
];

fn numeric(key: &str) -> bool {
    matches!(key, "SNOMEDCT423493009" | "SNOMEDCT432213005")
}

#[derive(Debug, Clone)]
enum Condition {
    Equals(Value),
    NotEquals(Value),
    In(Vec<Value>),
    Contains(String),
    Between(f64, f64),
    LowerThan(f64),
    GreaterThan(f64),
}

#[derive(Debug, Clone)]
enum Node {
    And(Vec<Node>),
    Or(Vec<Node>),
    Leaf { key: String, condition: Condition },
}

/// A parsed query.
#[derive(Debug, Clone)]
pub struct EucaimQuery(Node);

fn number(v: &Value, pointer: &str) -> Result<f64, AstError> {
    match v {
        Value::Number(n) => n.as_f64().ok_or_else(|| err(pointer, "not a number")),
        Value::String(s) => s.trim().parse().map_err(|_| err(pointer, format!("{s:?} is not a number"))),
        _ => Err(err(pointer, "must be a number")),
    }
}

fn parse_node(v: &Value, pointer: &str) -> Result<Node, AstError> {
    let Some(obj) = v.as_object() else { return Err(err(pointer, "a node is an object")) };
    if let Some(operand) = obj.get("operand") {
        let children = obj
            .get("children")
            .and_then(Value::as_array)
            .ok_or_else(|| err(&format!("{pointer}/children"), "an operand node needs a children array"))?;
        let nodes = children
            .iter()
            .enumerate()
            .map(|(i, c)| parse_node(c, &format!("{pointer}/children/{i}")))
            .collect::<Result<Vec<_>, _>>()?;
        return match operand.as_str() {
            Some("AND") => Ok(Node::And(nodes)),
            Some("OR") => Ok(Node::Or(nodes)),
            _ => Err(err(&format!("{pointer}/operand"), format!("{operand} is not AND or OR"))),
        };
    }
    for k in obj.keys() {
        if !matches!(k.as_str(), "key" | "type" | "value" | "system") {
            return Err(err(&format!("{pointer}/{k}"), "unknown member of a condition (key, type, value)"));
        }
    }
    let key = obj.get("key").and_then(Value::as_str).ok_or_else(|| err(&format!("{pointer}/key"), "missing key"))?;
    if !KEYS.contains(&key) {
        return Err(err(&format!("{pointer}/key"), format!("unknown key {key:?}; known: {}", KEYS.join(", "))));
    }
    let kind =
        obj.get("type").and_then(Value::as_str).ok_or_else(|| err(&format!("{pointer}/type"), "missing type"))?;
    let value = obj.get("value").ok_or_else(|| err(&format!("{pointer}/value"), "missing value"))?;
    let vp = format!("{pointer}/value");
    let condition = match kind {
        "EQUALS" => Condition::Equals(value.clone()),
        "NOT_EQUALS" => Condition::NotEquals(value.clone()),
        "IN" => Condition::In(value.as_array().cloned().ok_or_else(|| err(&vp, "IN takes an array"))?),
        "CONTAINS" if !numeric(key) => {
            Condition::Contains(value.as_str().ok_or_else(|| err(&vp, "CONTAINS takes a string"))?.to_lowercase())
        }
        "BETWEEN" if numeric(key) => {
            let min = value.get("min").ok_or_else(|| err(&format!("{vp}/min"), "BETWEEN needs min"))?;
            let max = value.get("max").ok_or_else(|| err(&format!("{vp}/max"), "BETWEEN needs max"))?;
            Condition::Between(number(min, &format!("{vp}/min"))?, number(max, &format!("{vp}/max"))?)
        }
        "LOWER_THAN" if numeric(key) => Condition::LowerThan(number(value, &vp)?),
        "GREATER_THAN" if numeric(key) => Condition::GreaterThan(number(value, &vp)?),
        "CONTAINS" | "BETWEEN" | "LOWER_THAN" | "GREATER_THAN" => {
            return Err(err(&format!("{pointer}/type"), format!("{kind} does not apply to {key}")))
        }
        other => {
            return Err(err(
                &format!("{pointer}/type"),
                format!(
                    "unknown type {other:?}; known: EQUALS, NOT_EQUALS, IN, CONTAINS, BETWEEN, LOWER_THAN, GREATER_THAN"
                ),
            ))
        }
    };
    if numeric(key) {
        match &condition {
            Condition::Equals(v) | Condition::NotEquals(v) => {
                number(v, &vp)?;
            }
            Condition::In(vs) => {
                for (i, v) in vs.iter().enumerate() {
                    number(v, &format!("{vp}/{i}"))?;
                }
            }
            _ => {}
        }
    }
    Ok(Node::Leaf { key: key.to_owned(), condition })
}

impl EucaimQuery {
    /// Parses a request body `{"ast": {...}}`.
    pub fn parse(body: &Value) -> Result<Self, AstError> {
        let ast = body.get("ast").ok_or_else(|| err("/ast", "missing: the query is {\"ast\": {...}}"))?;
        Ok(EucaimQuery(parse_node(ast, "/ast")?))
    }
}

/// The values a dataset has for a string key, lowercase, with their aliases.
fn string_values(doc: &SearchDoc, key: &str) -> Vec<String> {
    let mut out = Vec::new();
    match key {
        "SNOMEDCT263495000" => {
            for s in &doc.sex {
                out.push(s.code.to_lowercase());
                out.push(s.label.to_lowercase());
                match s.code.as_str() {
                    "248152002" => out.extend(["female".to_owned(), "f".to_owned()]),
                    "248153007" => out.extend(["male".to_owned(), "m".to_owned()]),
                    _ => {}
                }
            }
        }
        "SNOMEDCT439401001" => {
            out.push(doc.cancer.code.to_lowercase());
            out.push(doc.cancer.label.to_lowercase());
        }
        "RID10311" => {
            for m in &doc.modalities {
                out.push(m.code.to_lowercase());
                out.push(m.label.to_lowercase());
                let radlex = match m.code.as_str() {
                    "MR" => &["rid10312", "mr", "mri"][..],
                    "PT" => &["rid10337", "pet"][..],
                    "CT" => &["rid10321", "ct"][..],
                    "NM" | "ST" => &["rid10334", "spect"][..],
                    _ => &[][..],
                };
                out.extend(radlex.iter().map(|s| (*s).to_owned()));
            }
        }
        "SNOMEDCT123037004" => {
            for b in &doc.body_parts {
                out.push(b.code.to_lowercase());
                out.push(b.label.to_lowercase());
            }
        }
        "C25392" => out.extend(doc.manufacturers.iter().map(|m| m.to_lowercase())),
        _ => {}
    }
    out
}

/// The range a dataset covers for a numeric key.
fn range(doc: &SearchDoc, key: &str) -> Option<(f64, f64)> {
    match key {
        "SNOMEDCT423493009" => doc.age_range.map(|(a, b)| (f64::from(a), f64::from(b))),
        // the acquisition period stands for the years of diagnosis
        "SNOMEDCT432213005" => doc.years.map(|(a, b)| (f64::from(a), f64::from(b))),
        _ => None,
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.to_lowercase(),
        other => other.to_string().to_lowercase(),
    }
}

fn matches(node: &Node, doc: &SearchDoc) -> bool {
    match node {
        Node::And(children) => children.iter().all(|c| matches(c, doc)),
        Node::Or(children) => children.iter().any(|c| matches(c, doc)),
        Node::Leaf { key, condition } if numeric(key) => {
            let Some((lo, hi)) = range(doc, key) else { return false };
            let n = |v: &Value| number(v, "").unwrap_or(f64::NAN);
            match condition {
                Condition::Equals(v) => (lo..=hi).contains(&n(v)),
                // some subject may differ unless the whole dataset is that one value
                Condition::NotEquals(v) => !(lo == hi && lo == n(v)),
                Condition::In(vs) => vs.iter().any(|v| (lo..=hi).contains(&n(v))),
                Condition::Between(min, max) => lo <= *max && hi >= *min,
                Condition::LowerThan(x) => lo < *x,
                Condition::GreaterThan(x) => hi > *x,
                Condition::Contains(_) => false,
            }
        }
        Node::Leaf { key, condition } => {
            let values = string_values(doc, key);
            match condition {
                Condition::Equals(v) => values.contains(&text(v)),
                Condition::NotEquals(v) => {
                    let v = text(v);
                    // a dataset of several values always has one that differs
                    !values.contains(&v) || doc_value_count(doc, key) > 1
                }
                Condition::In(vs) => vs.iter().any(|v| values.contains(&text(v))),
                Condition::Contains(s) => values.iter().any(|v| v.contains(s.as_str())),
                _ => false,
            }
        }
    }
}

fn doc_value_count(doc: &SearchDoc, key: &str) -> usize {
    match key {
        "SNOMEDCT263495000" => doc.sex.len(),
        "SNOMEDCT439401001" => 1,
        "RID10311" => doc.modalities.len(),
        "SNOMEDCT123037004" => doc.body_parts.len(),
        "C25392" => doc.manufacturers.len(),
        _ => 0,
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct AgeRange {
    pub min: Option<u32>,
    pub max: Option<u32>,
}

/// One matching collection, in the shape EUCAIM's mediator expects.
#[derive(Debug, Clone, Serialize)]
pub struct Collection {
    pub id: String,
    pub name: String,
    pub studies_count: u64,
    pub subjects_count: u64,
    pub age_range: AgeRange,
    pub gender: Vec<String>,
    pub modality: Vec<String>,
    pub body_parts: Vec<String>,
    pub description: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct EucaimAnswer {
    pub collections: Vec<Collection>,
}

fn gender(code: &str, label: &str) -> String {
    match code {
        "248152002" => "female".to_owned(),
        "248153007" => "male".to_owned(),
        _ => label.to_lowercase(),
    }
}

fn modality_name(code: &str) -> String {
    match code {
        "PT" => "PET".to_owned(),
        "NM" => "SPECT".to_owned(),
        other => other.to_owned(),
    }
}

/// The collections `query` matches.
pub fn eucaim_search(index: &SearchIndex, query: &EucaimQuery) -> EucaimAnswer {
    let collections = index
        .docs
        .iter()
        .filter(|d| matches(&query.0, d))
        .map(|d| Collection {
            id: d.iri.clone(),
            name: d.title.clone(),
            studies_count: d.studies,
            subjects_count: d.subjects,
            age_range: AgeRange { min: d.age_range.map(|a| a.0), max: d.age_range.map(|a| a.1) },
            gender: d.sex.iter().map(|s| gender(&s.code, &s.label)).collect(),
            modality: d.modalities.iter().map(|m| modality_name(&m.code)).collect(),
            body_parts: d.body_parts.iter().map(|b| b.label.clone()).collect(),
            description: d.description.clone(),
        })
        .collect();
    EucaimAnswer { collections }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn malformed_asts_name_the_node() {
        let cases = [
            (json!({}), "/ast"),
            (json!({"ast": {"operand": "XOR", "children": []}}), "/ast/operand"),
            (json!({"ast": {"operand": "AND"}}), "/ast/children"),
            (
                json!({"ast": {"operand": "AND", "children": [{"key": "NOPE", "type": "EQUALS", "value": 1}]}}),
                "/ast/children/0/key",
            ),
            (
                json!({"ast": {"operand": "AND", "children": [{"key": "RID10311", "type": "BETWEEN", "value": 1}]}}),
                "/ast/children/0/type",
            ),
            (
                json!({"ast": {"operand": "OR", "children": [{"operand": "AND", "children": [{"key": "SNOMEDCT423493009", "type": "BETWEEN", "value": {"min": 1}}]}]}}),
                "/ast/children/0/children/0/value/max",
            ),
            (json!({"ast": {"key": "SNOMEDCT423493009", "type": "EQUALS", "value": "old"}}), "/ast/value"),
            (json!({"ast": {"key": "RID10311", "type": "EQUALS", "value": "MR", "extra": 1}}), "/ast/extra"),
        ];
        for (body, pointer) in cases {
            let e = EucaimQuery::parse(&body).unwrap_err();
            assert_eq!(e.pointer, pointer, "{body}: {}", e.detail);
        }
    }
}
