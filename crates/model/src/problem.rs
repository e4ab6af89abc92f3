use serde::{Deserialize, Serialize};

use crate::{ProfileViolation, Rejection, Violation};

/// RFC 9457 problem details: the one shape every refusal takes, over HTTP and as a NATS reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_: String,
    pub title: String,
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The event the problem is about, when its id could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// Each violation with a JSON pointer into the submitted event.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<Violation>,
    /// Each failed SHACL constraint, when the application profile refused the change.
    #[serde(default, rename = "shaclResults", skip_serializing_if = "Vec::is_empty")]
    pub shacl_results: Vec<ProfileViolation>,
}

/// What a problem's `type` starts with inside the registry (HTTP answers turn it into a page URL).
pub const PROBLEM_BASE: &str = "urn:cireg:problem:";

impl Problem {
    pub fn new(status: u16, kind: &str, title: impl Into<String>, detail: Option<String>) -> Self {
        Problem {
            type_: format!("{PROBLEM_BASE}{kind}"),
            title: title.into(),
            status,
            detail,
            event_id: None,
            errors: Vec::new(),
            shacl_results: Vec::new(),
        }
    }

    pub fn from_rejection(rejection: &Rejection, event_id: Option<&str>) -> Self {
        let mut p = match rejection {
            Rejection::Invalid(violations) => {
                let mut p = Problem::new(400, "invalid-event", "The event is not valid", Some(rejection.to_string()));
                p.errors = violations.clone();
                p
            }
            Rejection::Conflict { detail, pointer } => {
                let mut p =
                    Problem::new(409, "conflict", "The event conflicts with the current state", Some(detail.clone()));
                if let Some(pointer) = pointer {
                    p.errors.push(Violation { pointer: pointer.clone(), detail: detail.clone() });
                }
                p
            }
            Rejection::Forbidden(detail) => {
                Problem::new(403, "forbidden", "The sender may not send this event", Some(detail.clone()))
            }
            Rejection::Profile(violations) => {
                let mut p = Problem::new(
                    422,
                    "profile-violation",
                    "The dataset would not conform to the DCAT-AP / HealthDCAT-AP / EUCAIM application profile",
                    Some(rejection.to_string()),
                );
                p.errors = violations
                    .iter()
                    .map(|v| Violation { pointer: v.pointer.clone().unwrap_or_default(), detail: v.to_string() })
                    .collect();
                p.shacl_results = violations.clone();
                p
            }
        };
        p.event_id = event_id.map(str::to_owned);
        p
    }
}
