//! English labels of the controlled-vocabulary concepts the mapping links to. DCAT-AP wants every
//! `skos:Concept` it sees to carry a `skos:prefLabel`, and every `skos:ConceptScheme` a
//! `dct:title`. The HealthDCAT-AP vocabularies come from the official files shipped in `shapes/`;
//! the few EU and ADMS terms the mapping uses otherwise are listed here.

use std::{collections::HashMap, sync::OnceLock};

use oxigraph::{
    io::{RdfFormat, RdfParser},
    model::Term,
};

const VOCABULARIES: [&str; 2] = [
    include_str!("../../../shapes/healthdcat-ap-r8/catalogue/healthcategories.rdf"),
    include_str!("../../../shapes/healthdcat-ap-r8/catalogue/health-theme.rdf"),
];

const KNOWN: [(&str, &str); 18] = [
    ("http://publications.europa.eu/resource/authority/data-theme/HEAL", "Health"),
    ("http://publications.europa.eu/resource/authority/data-theme", "Data theme"),
    ("http://purl.org/adms/status/Completed", "Completed"),
    ("http://purl.org/adms/status/Deprecated", "Deprecated"),
    ("http://purl.org/adms/status/UnderDevelopment", "Under development"),
    ("http://purl.org/adms/status/Withdrawn", "Withdrawn"),
    ("http://purl.org/adms/publishertype/Academia-ScientificOrganisation", "Academia/Scientific organisation"),
    ("http://purl.org/adms/publishertype/Company", "Company"),
    ("http://purl.org/adms/publishertype/IndustryConsortium", "Industry consortium"),
    ("http://purl.org/adms/publishertype/LocalAuthority", "Local authority"),
    ("http://purl.org/adms/publishertype/NationalAuthority", "National authority"),
    ("http://purl.org/adms/publishertype/NonGovernmentalOrganisation", "Non-governmental organisation"),
    ("http://purl.org/adms/publishertype/NonProfitOrganisation", "Non-profit organisation"),
    ("http://purl.org/adms/publishertype/PrivateIndividual(s)", "Private individual(s)"),
    ("http://purl.org/adms/publishertype/RegionalAuthority", "Regional authority"),
    ("http://purl.org/adms/publishertype/StandardisationBody", "Standardisation body"),
    ("http://purl.org/adms/publishertype/SupraNationalAuthority", "Supra-national authority"),
    ("http://purl.org/adms/publishertype/Consortium", "Consortium"),
];

fn labels() -> &'static HashMap<String, String> {
    static LABELS: OnceLock<HashMap<String, String>> = OnceLock::new();
    LABELS.get_or_init(|| {
        let mut labels: HashMap<String, String> =
            KNOWN.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        for text in VOCABULARIES {
            for quad in RdfParser::from_format(RdfFormat::RdfXml).for_slice(text.as_bytes()).flatten() {
                let label_predicate = matches!(
                    quad.predicate.as_str(),
                    "http://www.w3.org/2004/02/skos/core#prefLabel" | "http://purl.org/dc/terms/title"
                );
                if let (true, Term::Literal(l)) = (label_predicate, &quad.object) {
                    if l.language() == Some("en") {
                        labels
                            .insert(quad.subject.to_string().trim_matches(['<', '>']).to_owned(), l.value().to_owned());
                    }
                }
            }
        }
        labels
    })
}

/// The English label of a vocabulary term, when the registry knows it.
pub fn label(iri: &str) -> Option<&'static str> {
    labels().get(iri).map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::label;

    #[test]
    fn labels_come_from_the_official_vocabularies() {
        assert_eq!(
            label("https://hdeu-dcat.data.health.europa.eu/resource/authority/health-theme/CANCER_DISEASE"),
            Some("Cancer")
        );
        assert!(label("https://hdeu-dcat.data.health.europa.eu/resource/authority/healthcategories/EMRD").is_some());
        assert!(label("https://hdeu-dcat.data.health.europa.eu/resource/authority/healthcategories").is_some());
        assert_eq!(label("http://publications.europa.eu/resource/authority/data-theme/HEAL"), Some("Health"));
        assert_eq!(label("urn:nothing"), None);
    }
}
