//! Where an imaging study becomes triples: one named graph per study, `<base>/studies/<id>`, in the
//! registry's imaging vocabulary (`imaging:`, terms named after the DICOM attributes they carry;
//! see the README). Study graphs hold pseudonymised subject data: the public SPARQL endpoint
//! never shows them.

use cireg_dcat::{iri, PublicBase};
use cireg_model::{vocab, Coding, SnomedCode, Study};
use oxigraph::model::{vocab::rdf, vocab::xsd, GraphName, Literal, NamedNode, Quad, Term};

/// The imaging vocabulary.
pub const IMAGING: &str = "https://w3id.org/cireg/imaging#";

fn term(local: &str) -> NamedNode {
    NamedNode::new_unchecked(format!("{IMAGING}{local}"))
}

fn snomed(code: &SnomedCode) -> NamedNode {
    iri(vocab::coding_iri(&Coding { system: vocab::SNOMED.to_owned(), code: code.code.clone(), display: None }))
}

fn modality(code: &str) -> NamedNode {
    iri(vocab::coding_iri(&Coding { system: vocab::DCM.to_owned(), code: code.to_owned(), display: None }))
}

fn integer(n: u64) -> Term {
    Literal::new_typed_literal(n.to_string(), xsd::INTEGER).into()
}

fn text(s: &str) -> Term {
    Literal::new_simple_literal(s).into()
}

/// The graph of a study of `provider`'s subject `pseudonym`.
pub fn study_graph(base: &PublicBase, provider: &str, pseudonym: &str, study: &Study) -> (NamedNode, Vec<Quad>) {
    let id = Study::resource_id(provider, pseudonym, &study.study_instance_uid);
    let node = iri(base.study(&id));
    let graph = GraphName::NamedNode(node.clone());
    let mut quads = Vec::new();
    let mut add = |s: &NamedNode, p: NamedNode, o: Term| quads.push(Quad::new(s.clone(), p, o, graph.clone()));
    add(&node, rdf::TYPE.into_owned(), Term::NamedNode(term("ImagingStudy")));
    add(&node, term("studyInstanceUID"), text(&study.study_instance_uid));
    add(&node, term("subject"), text(pseudonym));
    add(&node, term("provider"), iri(base.provider(provider)).into());
    add(&node, term("dataset"), iri(base.dataset(provider, &study.dataset)).into());
    add(&node, term("started"), Literal::new_typed_literal(&study.started, xsd::DATE_TIME).into());
    if let Some(d) = &study.description {
        add(&node, term("studyDescription"), text(d));
    }
    for m in &study.modalities {
        add(&node, term("modalityInStudy"), modality(m).into());
    }
    add(&node, term("numberOfStudyRelatedSeries"), integer(study.number_of_series));
    add(&node, term("numberOfStudyRelatedInstances"), integer(study.number_of_instances));
    for series in &study.series {
        let s = iri(format!("{}/series/{}", node.as_str(), series.uid));
        add(&node, term("series"), s.clone().into());
        add(&s, rdf::TYPE.into_owned(), Term::NamedNode(term("ImagingSeries")));
        add(&s, term("seriesInstanceUID"), text(&series.uid));
        if let Some(n) = series.number {
            add(&s, term("seriesNumber"), integer(n.into()));
        }
        add(&s, term("modality"), modality(&series.modality).into());
        if let Some(b) = &series.body_site {
            add(&s, term("bodyPartExamined"), snomed(b).into());
        }
        if let Some(l) = &series.laterality {
            add(&s, term("laterality"), snomed(l).into());
        }
        add(&s, term("numberOfSeriesRelatedInstances"), integer(series.number_of_instances));
        if let Some(d) = &series.description {
            add(&s, term("seriesDescription"), text(d));
        }
        for instance in &series.instances {
            let i = iri(format!("{}/instances/{}", s.as_str(), instance.uid));
            add(&s, term("instance"), i.clone().into());
            add(&i, term("sopInstanceUID"), text(&instance.uid));
            add(&i, term("sopClassUID"), text(&instance.sop_class));
            if let Some(n) = instance.number {
                add(&i, term("instanceNumber"), integer(n.into()));
            }
        }
    }
    (node, quads)
}
