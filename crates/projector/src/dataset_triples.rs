//! Where a dataset's events become triples: the dataset's current document (see
//! `cireg_model::AggregateState::Dataset`) as DCAT-AP / HealthDCAT-AP / EUCAIM, in the dataset's
//! own named graph. The graph is rebuilt whole on every change of the dataset.

use cireg_model::{vocab, Coding, Contact, Dataset, DatasetStatus, LangMap};
use oxigraph::model::{vocab::xsd, GraphName, Literal, NamedNode, NamedOrBlankNode, Quad, Term};

use crate::{iris::PublicBase, ns::*};

/// Collects the quads of one graph.
pub(crate) struct GraphBuilder {
    graph: GraphName,
    pub quads: Vec<Quad>,
}

pub(crate) fn iri(s: impl Into<String>) -> NamedNode {
    NamedNode::new_unchecked(s)
}

/// An IRI from provider input, if it is a valid IRI (schemas already check the form).
fn checked_iri(s: &str) -> Option<NamedNode> {
    NamedNode::new(s).ok()
}

pub(crate) fn term(ns: &str, local: &str) -> NamedNode {
    iri(format!("{ns}{local}"))
}

impl GraphBuilder {
    pub fn new(graph: &NamedNode) -> Self {
        GraphBuilder { graph: graph.clone().into(), quads: Vec::new() }
    }

    pub fn add(&mut self, s: &NamedNode, p: NamedNode, o: impl Into<Term>) {
        self.quads.push(Quad::new(NamedOrBlankNode::from(s.clone()), p, o, self.graph.clone()));
    }

    pub fn a(&mut self, s: &NamedNode, class: NamedNode) {
        self.add(s, iri(RDF_TYPE), class);
    }

    pub fn lang(&mut self, s: &NamedNode, p: NamedNode, texts: &LangMap) {
        for (lang, text) in texts {
            match Literal::new_language_tagged_literal(text, lang) {
                Ok(l) => self.add(s, p.clone(), l),
                Err(_) => self.add(s, p.clone(), Literal::new_simple_literal(text)),
            }
        }
    }

    pub fn text(&mut self, s: &NamedNode, p: NamedNode, text: &str) {
        self.add(s, p, Literal::new_simple_literal(text));
    }

    pub fn typed(
        &mut self,
        s: &NamedNode,
        p: NamedNode,
        value: impl Into<String>,
        datatype: oxigraph::model::NamedNodeRef<'_>,
    ) {
        self.add(s, p, Literal::new_typed_literal(value, datatype));
    }

    pub fn link(&mut self, s: &NamedNode, p: NamedNode, o: &str) {
        if let Some(o) = checked_iri(o) {
            self.add(s, p, o);
        }
    }

    pub fn codes(&mut self, s: &NamedNode, p: NamedNode, codings: &[Coding]) {
        for c in codings {
            let concept = iri(vocab::coding_iri(c));
            self.add(s, p.clone(), concept.clone());
            if let Some(display) = &c.display {
                self.add(&concept, term(RDFS, "label"), Literal::new_simple_literal(display));
            }
        }
    }

    /// A `vcard:Kind` contact point (DCAT-AP's `dcat:contactPoint`).
    pub fn vcard(&mut self, node: &NamedNode, contact: &Contact) {
        self.a(node, term(VCARD, "Kind"));
        if let Some(name) = &contact.name {
            self.text(node, term(VCARD, "fn"), name);
        }
        if let Some(email) = &contact.email {
            self.link(node, term(VCARD, "hasEmail"), &format!("mailto:{email}"));
        }
        if let Some(url) = &contact.url {
            self.link(node, term(VCARD, "hasURL"), url);
        }
        if let Some(tel) = &contact.telephone {
            self.text(node, term(VCARD, "hasTelephone"), tel);
        }
    }

    /// A `cv:ContactPoint` (HealthDCAT-AP's agent contact point).
    pub fn cv_contact(&mut self, node: &NamedNode, contact: &Contact) {
        self.a(node, term(CV, "ContactPoint"));
        if let Some(email) = &contact.email {
            self.text(node, term(CV, "email"), email);
        }
        if let Some(url) = &contact.url {
            self.link(node, term(CV, "contactPage"), url);
        }
        if let Some(tel) = &contact.telephone {
            self.text(node, term(CV, "telephone"), tel);
        }
    }
}

pub(crate) fn datetime_literal(time: &str) -> Literal {
    Literal::new_typed_literal(time, xsd::DATE_TIME)
}

/// The dataset's graph. `None` when the dataset is withdrawn: it leaves the catalogue.
pub(crate) fn dataset_graph(
    base: &PublicBase,
    provider: &str,
    dataset_id: &str,
    status: DatasetStatus,
    dataset: &Dataset,
    issued: &str,
    modified: &str,
) -> Option<GraphBuilder> {
    if status == DatasetStatus::Withdrawn {
        return None;
    }
    let d = iri(base.dataset(provider, dataset_id));
    let mut g = GraphBuilder::new(&d);
    g.a(&d, term(DCAT, "Dataset"));
    g.text(&d, term(DCT, "identifier"), d.as_str());
    g.lang(&d, term(DCT, "title"), &dataset.title);
    g.lang(&d, term(DCT, "description"), &dataset.description);
    g.text(&d, term(DCAT, "version"), &dataset.version);
    for (lang, words) in &dataset.keywords {
        for word in words {
            g.lang(&d, term(DCAT, "keyword"), &LangMap::from([(lang.clone(), word.clone())]));
        }
    }
    g.add(&d, term(DCAT, "theme"), iri(DATA_THEME_HEAL));
    g.codes(&d, term(EUCAIM, "hasCondition"), std::slice::from_ref(&dataset.condition));
    g.codes(&d, term(EUCAIM, "hasImageModality"), &dataset.image_modalities);
    g.codes(&d, term(EUCAIM, "hasImageBodyPart"), &dataset.body_parts);
    for name in &dataset.equipment_manufacturers {
        let m = iri(base.manufacturer(name));
        g.add(&d, term(EUCAIM, "hasEquipmentManufacturer"), m.clone());
        g.text(&m, term(RDFS, "label"), name);
    }
    g.codes(&d, term(EUCAIM, "hasBirthSex"), &dataset.birth_sex);
    g.typed(
        &d,
        term(HEALTHDCATAP, "numberOfUniqueIndividuals"),
        dataset.number_of_subjects.to_string(),
        xsd::NON_NEGATIVE_INTEGER,
    );
    g.typed(
        &d,
        term(HEALTHDCATAP, "numberOfRecords"),
        dataset.number_of_studies.to_string(),
        xsd::NON_NEGATIVE_INTEGER,
    );
    if let Some(series) = dataset.number_of_series {
        g.typed(&d, term(CIREG, "numberOfSeries"), series.to_string(), xsd::NON_NEGATIVE_INTEGER);
    }
    if let Some(age) = dataset.age_range {
        g.typed(&d, term(HEALTHDCATAP, "minTypicalAge"), age.min.to_string(), xsd::NON_NEGATIVE_INTEGER);
        g.typed(&d, term(HEALTHDCATAP, "maxTypicalAge"), age.max.to_string(), xsd::NON_NEGATIVE_INTEGER);
    }
    if let Some(period) = &dataset.acquisition_period {
        let p = iri(format!("{}#acquisition-period", d.as_str()));
        g.add(&d, term(DCT, "temporal"), p.clone());
        g.a(&p, term(DCT, "PeriodOfTime"));
        if let Some(start) = &period.start {
            g.typed(&p, term(DCAT, "startDate"), start.clone(), xsd::DATE);
        }
        if let Some(end) = &period.end {
            g.typed(&p, term(DCAT, "endDate"), end.clone(), xsd::DATE);
        }
    }
    g.codes(&d, term(EUCAIM, "collectionMethod"), &dataset.collection_methods);
    for country in &dataset.countries {
        g.add(&d, term(DCT, "spatial"), iri(vocab::country_iri(country)));
    }
    g.add(&d, term(DCT, "accessRights"), iri(vocab::access_rights_iri(&dataset.access_rights)));
    for eli in &dataset.applicable_legislation {
        g.link(&d, term(DCATAP, "applicableLegislation"), eli);
    }
    let contact = iri(format!("{}#contact-point", d.as_str()));
    g.add(&d, term(DCAT, "contactPoint"), contact.clone());
    g.vcard(&contact, &dataset.contact_point);

    let publisher = iri(format!("{}#publisher", d.as_str()));
    g.add(&d, term(DCT, "publisher"), publisher.clone());
    g.a(&publisher, term(FOAF, "Agent"));
    g.lang(&publisher, term(FOAF, "name"), &dataset.publisher.name);
    if let Some(home) = &dataset.publisher.homepage {
        g.link(&publisher, term(FOAF, "homepage"), home);
    }
    if let Some(t) = &dataset.publisher.type_ {
        g.add(&publisher, term(DCT, "type"), iri(vocab::publisher_type_iri(t)));
    }
    let publisher_contact = iri(format!("{}#publisher-contact-point", d.as_str()));
    g.add(&publisher, term(CV, "contactPoint"), publisher_contact.clone());
    g.cv_contact(&publisher_contact, &dataset.publisher.contact_point);
    g.add(&d, term(CIREG, "provider"), iri(base.provider(provider)));

    if let Some(provenance) = &dataset.provenance {
        let p = iri(format!("{}#provenance", d.as_str()));
        g.add(&d, term(DCT, "provenance"), p.clone());
        g.a(&p, term(DCT, "ProvenanceStatement"));
        g.lang(&p, term(RDFS, "label"), provenance);
    }
    if let Some(landing) = &dataset.landing_page {
        g.link(&d, term(DCAT, "landingPage"), landing);
    }
    if dataset.synthetic {
        g.typed(&d, term(CIREG, "synthetic"), "true", xsd::BOOLEAN);
    }
    if status == DatasetStatus::Deprecated {
        g.add(&d, term(ADMS, "status"), iri(format!("{DATASET_STATUS}DEPRECATED")));
    }
    g.add(&d, term(DCT, "issued"), datetime_literal(issued));
    g.add(&d, term(DCT, "modified"), datetime_literal(modified));

    for dist in &dataset.distributions {
        let x = iri(base.distribution(provider, dataset_id, &dist.id));
        g.add(&d, term(DCAT, "distribution"), x.clone());
        g.a(&x, term(DCAT, "Distribution"));
        if let Some(title) = &dist.title {
            g.lang(&x, term(DCT, "title"), title);
        }
        if let Some(description) = &dist.description {
            g.lang(&x, term(DCT, "description"), description);
        }
        g.link(&x, term(DCAT, "accessURL"), &dist.access_url);
        if let Some(url) = &dist.download_url {
            g.link(&x, term(DCAT, "downloadURL"), url);
        }
        g.add(&x, term(DCT, "format"), iri(vocab::file_type_iri(&dist.format)));
        if let Some(media) = &dist.media_type {
            g.link(&x, term(DCAT, "mediaType"), &vocab::media_type_iri(media));
        }
        g.link(&x, term(DCT, "license"), &dist.licence);
        if let Some(size) = dist.byte_size {
            g.typed(&x, term(DCAT, "byteSize"), size.to_string(), xsd::NON_NEGATIVE_INTEGER);
        }
    }
    Some(g)
}

/// The provider's graph: the registered organisation as a `foaf:Agent`.
pub(crate) fn provider_graph(
    base: &PublicBase,
    provider_id: &str,
    provider: &cireg_model::Provider,
    modified: &str,
) -> GraphBuilder {
    let p = iri(base.provider(provider_id));
    let mut g = GraphBuilder::new(&p);
    g.a(&p, term(FOAF, "Agent"));
    g.text(&p, term(DCT, "identifier"), provider_id);
    g.lang(&p, term(FOAF, "name"), &provider.name);
    if let Some(d) = &provider.description {
        g.lang(&p, term(DCT, "description"), d);
    }
    if let Some(home) = &provider.homepage {
        g.link(&p, term(FOAF, "homepage"), home);
    }
    if let Some(t) = &provider.type_ {
        g.add(&p, term(DCT, "type"), iri(vocab::publisher_type_iri(t)));
    }
    g.add(&p, term(DCT, "spatial"), iri(vocab::country_iri(&provider.country)));
    let c = iri(format!("{}#contact-point", p.as_str()));
    g.add(&p, term(CV, "contactPoint"), c.clone());
    g.cv_contact(&c, &provider.contact_point);
    g.add(&p, term(DCT, "modified"), datetime_literal(modified));
    g
}
