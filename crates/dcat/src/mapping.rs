//! Where a dataset's events become triples: the dataset's current document (see
//! `cireg_model::AggregateState::Dataset`) as DCAT-AP / HealthDCAT-AP / EUCAIM, in the dataset's
//! own named graph. The graph is rebuilt whole on every change of the dataset.

use cireg_model::{vocab, Agent, Coding, Contact, Dataset, DatasetStatus, LangMap, Period};
use oxigraph::model::{vocab::xsd, GraphName, Literal, NamedNode, NamedOrBlankNode, Quad, Term};

use crate::{iris::PublicBase, ns::*};

/// Collects the quads of one graph.
pub struct GraphBuilder {
    graph: GraphName,
    pub quads: Vec<Quad>,
}

pub fn iri(s: impl Into<String>) -> NamedNode {
    NamedNode::new_unchecked(s)
}

/// An IRI from provider input, if it is a valid IRI (schemas already check the form).
fn checked_iri(s: &str) -> Option<NamedNode> {
    NamedNode::new(s).ok()
}

pub fn term(ns: &str, local: &str) -> NamedNode {
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
            self.a(&concept, term(SKOS, "Concept"));
            if let Some(display) = &c.display {
                self.add(&concept, term(RDFS, "label"), Literal::new_simple_literal(display));
            }
            // DCAT-AP wants a label on every concept: the provider's display, else the code
            let label = c.display.as_deref().unwrap_or(&c.code);
            self.add(&concept, term(SKOS, "prefLabel"), Literal::new_simple_literal(label));
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

impl GraphBuilder {
    /// A `foaf:Agent` with its `cv:ContactPoint` at `<node>-contact-point`.
    pub fn agent(&mut self, node: &NamedNode, agent: &Agent) {
        self.a(node, term(FOAF, "Agent"));
        self.lang(node, term(FOAF, "name"), &agent.name);
        if let Some(description) = &agent.description {
            self.lang(node, term(DCT, "description"), description);
        }
        if let Some(home) = &agent.homepage {
            self.typed_link(node, term(FOAF, "homepage"), home, term(FOAF, "Document"));
        }
        if let Some(t) = &agent.type_ {
            self.concept(node, term(DCT, "type"), &vocab::publisher_type_iri(t));
        }
        let contact = iri(format!("{}-contact-point", node.as_str()));
        self.add(node, term(CV, "contactPoint"), contact.clone());
        self.cv_contact(&contact, &agent.contact_point);
    }

    /// A `dcat:Distribution` (also a sample or an analytics report). `legislation` applies when
    /// the distribution names none of its own.
    pub fn distribution(&mut self, x: &NamedNode, dist: &cireg_model::Distribution, legislation: &[String]) {
        self.a(x, term(DCAT, "Distribution"));
        if let Some(title) = &dist.title {
            self.lang(x, term(DCT, "title"), title);
        }
        if let Some(description) = &dist.description {
            self.lang(x, term(DCT, "description"), description);
        }
        self.link(x, term(DCAT, "accessURL"), &dist.access_url);
        if let Some(url) = &dist.download_url {
            self.link(x, term(DCAT, "downloadURL"), url);
        }
        let format = iri(vocab::file_type_iri(&dist.format));
        self.add(x, term(DCT, "format"), format.clone());
        self.a(&format, term(DCT, "MediaTypeOrExtent"));
        if let Some(media) = dist.media_type.as_deref().and_then(|m| checked_iri(&vocab::media_type_iri(m))) {
            self.add(x, term(DCAT, "mediaType"), media.clone());
            self.a(&media, term(DCT, "MediaType"));
        }
        if let Some(licence) = checked_iri(&dist.licence) {
            self.add(x, term(DCT, "license"), licence.clone());
            self.a(&licence, term(DCT, "LicenseDocument"));
        }
        let legislation =
            if dist.applicable_legislation.is_empty() { legislation } else { &dist.applicable_legislation };
        for eli in legislation {
            self.typed_link(x, term(DCATAP, "applicableLegislation"), eli, iri(ELI_LEGAL_RESOURCE));
        }
        if let Some(condition) = &dist.access_condition {
            let rights = iri(vocab::access_condition_iri(condition));
            self.add(x, term(DCT, "rights"), rights.clone());
            self.a(&rights, term(DCT, "RightsStatement"));
        }
        for language in &dist.languages {
            self.typed_link(x, term(DCT, "language"), &vocab::language_iri(language), term(DCT, "LinguisticSystem"));
        }
        if let Some(size) = dist.byte_size {
            self.typed(x, term(DCAT, "byteSize"), size.to_string(), xsd::NON_NEGATIVE_INTEGER);
        }
    }

    /// A `dct:PeriodOfTime` with DCAT start and end dates.
    pub fn period(&mut self, node: &NamedNode, period: &Period) {
        self.a(node, term(DCT, "PeriodOfTime"));
        if let Some(start) = &period.start {
            self.typed(node, term(DCAT, "startDate"), start.clone(), xsd::DATE);
        }
        if let Some(end) = &period.end {
            self.typed(node, term(DCAT, "endDate"), end.clone(), xsd::DATE);
        }
    }

    /// A link to `o`, typed with the class the profiles' range shapes expect of it (they check
    /// `sh:class` on the data as given, without inference).
    pub fn typed_link(&mut self, s: &NamedNode, p: NamedNode, o: &str, class: NamedNode) {
        if let Some(o) = checked_iri(o) {
            self.add(s, p, o.clone());
            self.a(&o, class);
        }
    }

    /// A link to a concept of a controlled vocabulary, typed as a `skos:Concept` so that range
    /// checks see what it is.
    pub fn concept(&mut self, s: &NamedNode, p: NamedNode, concept: &str) {
        if let Some(c) = checked_iri(concept) {
            self.add(s, p, c.clone());
            self.a(&c, term(SKOS, "Concept"));
            let label =
                crate::labels::label(concept).unwrap_or_else(|| concept.rsplit(['/', '#']).next().unwrap_or(concept));
            self.add(&c, term(SKOS, "prefLabel"), Literal::new_language_tagged_literal_unchecked(label, "en"));
        }
    }
}

pub fn datetime_literal(time: &str) -> Literal {
    Literal::new_typed_literal(time, xsd::DATE_TIME)
}

/// The dataset's graph. `None` when the dataset is withdrawn: it leaves the catalogue.
/// When things happened to a dataset: by the provider's clock (the events' `time`) and, once the
/// log holds its events, by the registry's (when the log accepted them).
#[derive(Debug, Clone, Copy)]
pub struct Dates<'a> {
    /// `time` of the publishing event: the dataset's `dct:issued`.
    pub issued: &'a str,
    /// `time` of the latest event: the dataset's `dct:modified`.
    pub modified: &'a str,
    /// When the log accepted the first and the latest event: the catalogue record's `dct:issued`
    /// and `dct:modified`, what harvesters page by. `None` before the log has them (the gate).
    pub recorded: Option<(&'a str, &'a str)>,
}

/// Where a dataset of the central node's catalogue came from.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// The national node's JetStream domain (e.g. `de`): its name in the federation.
    pub node: &'a str,
    /// The national node's public base, when the central node is told it: the IRIs the dataset
    /// has there, which stay its identity.
    pub base: Option<&'a PublicBase>,
}

impl Origin<'_> {
    /// The agent of node `domain` (the publisher of its records and of its sub-catalogue).
    pub fn describe_node(g: &mut GraphBuilder, base: &PublicBase, domain: &str) -> NamedNode {
        let agent = iri(base.node(domain));
        g.a(&agent, term(FOAF, "Agent"));
        g.lang(&agent, term(FOAF, "name"), &LangMap::from([("en".to_owned(), format!("cireg node {domain}"))]));
        agent
    }
}

pub fn dataset_graph(
    base: &PublicBase,
    provider: &str,
    dataset_id: &str,
    status: DatasetStatus,
    dataset: &Dataset,
    dates: Dates<'_>,
    origin: Option<Origin<'_>>,
) -> Option<GraphBuilder> {
    let Dates { issued, modified, recorded } = dates;
    if status == DatasetStatus::Withdrawn {
        return None;
    }
    let d = iri(base.dataset(provider, dataset_id));
    let mut g = GraphBuilder::new(&d);
    g.a(&d, term(DCAT, "Dataset"));
    // One identity across the federation: on the central node, the dataset's IRI at its own
    // node is its identifier (and an adms:Identifier), the IRI it has here being where this
    // catalogue serves it.
    let home = origin.and_then(|o| o.base).map(|b| b.dataset(provider, dataset_id));
    g.text(&d, term(DCT, "identifier"), home.as_deref().unwrap_or(d.as_str()));
    if let Some(home) = &home {
        let id = iri(format!("{}#identifier-at-node", d.as_str()));
        g.add(&d, term(ADMS, "identifier"), id.clone());
        g.a(&id, term(ADMS, "Identifier"));
        g.typed(&id, term(SKOS, "notation"), home.clone(), xsd::ANY_URI);
    }
    g.lang(&d, term(DCT, "title"), &dataset.title);
    g.lang(&d, term(DCT, "description"), &dataset.description);
    g.text(&d, term(DCAT, "version"), &dataset.version);
    for (lang, words) in &dataset.keywords {
        for word in words {
            g.lang(&d, term(DCAT, "keyword"), &LangMap::from([(lang.clone(), word.clone())]));
        }
    }
    g.concept(&d, term(DCAT, "theme"), DATA_THEME_HEAL);
    for c in &dataset.health_categories {
        g.concept(&d, term(HEALTHDCATAP, "healthCategory"), &vocab::health_category_iri(c));
    }
    for t in &dataset.health_themes {
        g.concept(&d, term(HEALTHDCATAP, "healthTheme"), &vocab::health_theme_iri(t));
    }
    g.codes(&d, term(DCT, "type"), &dataset.dataset_types);
    if let Some(level) = &dataset.interoperability_level {
        g.codes(&d, term(EUCAIM, "interoperabilityLevel"), std::slice::from_ref(level));
    }
    if let Some(structured) = dataset.structured_data {
        g.typed(&d, term(HEALTHDCATAP, "hasStructuredData"), structured.to_string(), xsd::BOOLEAN);
    }
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
        g.period(&p, period);
    }
    if let Some(period) = &dataset.retention_period {
        let p = iri(format!("{}#retention-period", d.as_str()));
        g.add(&d, term(HEALTHDCATAP, "retentionPeriod"), p.clone());
        g.period(&p, period);
    }
    if let Some(coverage) = &dataset.population_coverage {
        g.lang(&d, term(HEALTHDCATAP, "populationCoverage"), coverage);
    }
    let mut systems: Vec<&str> = std::iter::once(&dataset.condition)
        .chain(&dataset.image_modalities)
        .chain(&dataset.body_parts)
        .chain(&dataset.birth_sex)
        .map(|c| c.system.as_str())
        .collect();
    systems.sort_unstable();
    systems.dedup();
    for system in systems {
        if let Some(s) = vocab::coding_system_iri(system) {
            g.add(&d, term(HEALTHDCATAP, "hasCodingSystem"), iri(s.clone()));
            g.a(&iri(s), term(DCT, "Standard"));
        }
    }
    for purpose in &dataset.purposes {
        g.typed_link(&d, term(DPV, "hasPurpose"), purpose, term(DPV, "Purpose"));
    }
    for basis in &dataset.legal_bases {
        g.typed_link(&d, term(DPV, "hasLegalBasis"), basis, term(DPV, "LegalBasis"));
    }
    for pd in &dataset.personal_data {
        g.typed_link(&d, term(DPV, "hasPersonalData"), pd, term(DPV, "PersonalData"));
    }
    for page in &dataset.documentation {
        g.typed_link(&d, term(FOAF, "page"), page, term(FOAF, "Document"));
    }
    for language in &dataset.languages {
        g.typed_link(&d, term(DCT, "language"), &vocab::language_iri(language), term(DCT, "LinguisticSystem"));
    }
    if let Some(frequency) = &dataset.frequency {
        g.typed_link(&d, term(DCT, "accrualPeriodicity"), &vocab::frequency_iri(frequency), term(DCT, "Frequency"));
    }
    for (i, certificate) in dataset.quality_certificates.iter().enumerate() {
        if let Some(body) = checked_iri(certificate) {
            let q = iri(format!("{}#quality-certificate-{}", d.as_str(), i + 1));
            g.add(&d, term(DQV, "hasQualityAnnotation"), q.clone());
            g.a(&q, term(DQV, "QualityCertificate"));
            g.add(&q, term(OA, "hasTarget"), d.clone());
            g.add(&q, term(OA, "hasBody"), body);
            g.add(&q, term(OA, "motivatedBy"), iri(format!("{DQV}qualityAssessment")));
        }
    }
    g.codes(&d, term(EUCAIM, "collectionMethod"), &dataset.collection_methods);
    for country in &dataset.countries {
        g.typed_link(&d, term(DCT, "spatial"), &vocab::country_iri(country), term(DCT, "Location"));
    }
    let access_rights = iri(vocab::access_rights_iri(&dataset.access_rights));
    g.add(&d, term(DCT, "accessRights"), access_rights.clone());
    g.a(&access_rights, term(DCT, "RightsStatement"));
    for eli in &dataset.applicable_legislation {
        g.typed_link(&d, term(DCATAP, "applicableLegislation"), eli, iri(ELI_LEGAL_RESOURCE));
    }
    let contact = iri(format!("{}#contact-point", d.as_str()));
    g.add(&d, term(DCAT, "contactPoint"), contact.clone());
    g.vcard(&contact, &dataset.contact_point);

    let publisher = iri(format!("{}#publisher", d.as_str()));
    g.add(&d, term(DCT, "publisher"), publisher.clone());
    g.agent(&publisher, &dataset.publisher);
    if let Some(hdab) = &dataset.hdab {
        let node = iri(format!("{}#hdab", d.as_str()));
        g.add(&d, term(HEALTHDCATAP, "hdab"), node.clone());
        g.agent(&node, hdab);
    }
    if let Some(custodian) = &dataset.custodian {
        let node = iri(format!("{}#custodian", d.as_str()));
        g.add(&d, term(GEODCATAP, "custodian"), node.clone());
        g.agent(&node, custodian);
    }
    g.add(&d, term(CIREG, "provider"), iri(base.provider(provider)));

    if let Some(provenance) = &dataset.provenance {
        let p = iri(format!("{}#provenance", d.as_str()));
        g.add(&d, term(DCT, "provenance"), p.clone());
        g.a(&p, term(DCT, "ProvenanceStatement"));
        g.lang(&p, term(RDFS, "label"), provenance);
    }
    if let Some(landing) = &dataset.landing_page {
        g.typed_link(&d, term(DCAT, "landingPage"), landing, term(FOAF, "Document"));
    }
    if dataset.synthetic {
        g.typed(&d, term(CIREG, "synthetic"), "true", xsd::BOOLEAN);
    }
    if status == DatasetStatus::Deprecated {
        g.add(&d, term(ADMS, "status"), iri(format!("{DATASET_STATUS}DEPRECATED")));
    }
    g.add(&d, term(DCT, "issued"), datetime_literal(issued));
    g.add(&d, term(DCT, "modified"), datetime_literal(modified));

    // The catalogue's record of the dataset: when this registry first listed it and last changed
    // it, by the log's clock.
    let record = iri(base.record(provider, dataset_id));
    g.a(&record, term(DCAT, "CatalogRecord"));
    g.add(&record, term(FOAF, "primaryTopic"), d.clone());
    let (listed, changed) = recorded.unwrap_or((issued, modified));
    g.add(&record, term(DCT, "issued"), datetime_literal(listed));
    g.add(&record, term(DCT, "modified"), datetime_literal(changed));
    // the application profile the record's metadata follows (DCAT-AP allows one)
    g.typed_link(&record, term(DCT, "conformsTo"), DCAT_AP_3, term(DCT, "Standard"));
    let record_status = if status == DatasetStatus::Deprecated { "Deprecated" } else { "Completed" };
    g.concept(&record, term(ADMS, "status"), &format!("http://purl.org/adms/status/{record_status}"));
    if let Some(origin) = origin {
        // the national node published the record; the central catalogue lists it
        let node = Origin::describe_node(&mut g, base, origin.node);
        g.add(&record, term(DCT, "publisher"), node);
    }

    let parts = [
        ("distribution", DCAT, "distribution", &dataset.distributions),
        ("sample", ADMS, "sample", &dataset.samples),
        ("analytics", HEALTHDCATAP, "analytics", &dataset.analytics),
    ];
    for (kind, ns, property, list) in parts {
        for dist in list {
            let x = iri(base.part(provider, dataset_id, kind, &dist.id));
            g.add(&d, term(ns, property), x.clone());
            g.distribution(&x, dist, &dataset.applicable_legislation);
        }
    }
    Some(g)
}

/// The provider's graph: the registered organisation as a `foaf:Agent`.
pub fn provider_graph(
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
        g.typed_link(&p, term(FOAF, "homepage"), home, term(FOAF, "Document"));
    }
    if let Some(t) = &provider.type_ {
        g.concept(&p, term(DCT, "type"), &vocab::publisher_type_iri(t));
    }
    g.typed_link(&p, term(DCT, "spatial"), &vocab::country_iri(&provider.country), term(DCT, "Location"));
    let c = iri(format!("{}#contact-point", p.as_str()));
    g.add(&p, term(CV, "contactPoint"), c.clone());
    g.cv_contact(&c, &provider.contact_point);
    g.add(&p, term(DCT, "modified"), datetime_literal(modified));
    g
}

/// The graph of an aggregate as it stands: a dataset's (none once withdrawn) or a provider's.
/// `subject_parts` are the provider and aggregate id of its log subject.
/// `recorded`: when the log accepted the aggregate's first and latest event, once it has.
/// `origin`: on the central node, the national node the aggregate came from.
pub fn aggregate_graph(
    base: &PublicBase,
    provider: &str,
    id: &str,
    state: &cireg_model::AggregateState,
    recorded: Option<(&str, &str)>,
    origin: Option<Origin<'_>>,
) -> Result<Option<GraphBuilder>, String> {
    use cireg_model::AggregateState;
    Ok(match state {
        AggregateState::Dataset { status, document, issued, modified, .. } => {
            let dataset: Dataset = serde_json::from_value(document.clone()).map_err(|e| e.to_string())?;
            dataset_graph(base, provider, id, *status, &dataset, Dates { issued, modified, recorded }, origin)
        }
        AggregateState::Provider { provider: p, modified, .. } => Some(provider_graph(base, provider, p, modified)),
        AggregateState::Empty
        | AggregateState::Subject { .. }
        | AggregateState::Study { .. }
        | AggregateState::Access { .. } => None,
    })
}

/// Where in a dataset event's `data` a property of the dataset's graph comes from, so that a
/// profile violation can point into the event.
pub fn pointer_for_property(property: &str) -> Option<&'static str> {
    let local = property.rsplit(['#', '/', ':']).next()?;
    Some(match local {
        "title" => "/data/title",
        "description" => "/data/description",
        "version" => "/data/version",
        "keyword" => "/data/keywords",
        "hasCondition" => "/data/condition",
        "hasImageModality" => "/data/imageModalities",
        "hasImageBodyPart" => "/data/bodyParts",
        "hasEquipmentManufacturer" => "/data/equipmentManufacturers",
        "hasBirthSex" => "/data/birthSex",
        "numberOfUniqueIndividuals" => "/data/numberOfSubjects",
        "numberOfRecords" => "/data/numberOfStudies",
        "minTypicalAge" | "maxTypicalAge" => "/data/ageRange",
        "collectionMethod" => "/data/collectionMethods",
        "spatial" => "/data/countries",
        "accessRights" => "/data/accessRights",
        "applicableLegislation" => "/data/applicableLegislation",
        "contactPoint" => "/data/contactPoint",
        "publisher" => "/data/publisher",
        "provenance" => "/data/provenance",
        "landingPage" => "/data/landingPage",
        "healthCategory" => "/data/healthCategories",
        "healthTheme" => "/data/healthThemes",
        "type" => "/data/datasetTypes",
        "interoperabilityLevel" => "/data/interoperabilityLevel",
        "hasStructuredData" => "/data/structuredData",
        "hdab" => "/data/hdab",
        "custodian" => "/data/custodian",
        "hasPurpose" => "/data/purposes",
        "hasLegalBasis" => "/data/legalBases",
        "hasPersonalData" => "/data/personalData",
        "retentionPeriod" => "/data/retentionPeriod",
        "populationCoverage" => "/data/populationCoverage",
        "page" => "/data/documentation",
        "language" => "/data/languages",
        "accrualPeriodicity" => "/data/frequency",
        "hasQualityAnnotation" => "/data/qualityCertificates",
        "distribution" => "/data/distributions",
        "sample" => "/data/samples",
        "analytics" => "/data/analytics",
        _ => return None,
    })
}

/// Who runs this registry and under which terms: the catalogue's own description.
#[derive(Debug, Clone)]
pub struct CatalogInfo {
    pub title: String,
    pub description: String,
    pub publisher_name: String,
    /// The publisher's contact e-mail address (HealthDCAT-AP wants a contact point).
    pub publisher_email: String,
    pub homepage: Option<String>,
    /// EU language authority codes of the catalogue's texts.
    pub languages: Vec<String>,
    /// ELI IRIs of the legislation the catalogue falls under.
    pub applicable_legislation: Vec<String>,
    /// ISO 3166-1 alpha-3 codes of the countries the catalogue covers (when empty, the catalogue
    /// covers the countries its datasets cover).
    pub countries: Vec<String>,
    /// The licence of the catalogue's metadata.
    pub licence: Option<String>,
}

impl Default for CatalogInfo {
    fn default() -> Self {
        CatalogInfo {
            title: "cireg cancer imaging catalogue".to_owned(),
            description: "Imaging datasets of cancer patients announced by European data providers \
                          (DCAT-AP 3, HealthDCAT-AP, EUCAIM profile)."
                .to_owned(),
            publisher_name: "cireg registry operator".to_owned(),
            publisher_email: "registry@example.org".to_owned(),
            homepage: None,
            languages: vec!["ENG".to_owned()],
            // GDPR and the European Health Data Space regulation
            applicable_legislation: vec![
                "http://data.europa.eu/eli/reg/2016/679/oj".to_owned(),
                "http://data.europa.eu/eli/reg/2025/327/oj".to_owned(),
            ],
            countries: Vec::new(),
            licence: Some("http://publications.europa.eu/resource/authority/licence/CC0".to_owned()),
        }
    }
}

/// The `dcat:Catalog` node and what it owns (publisher, SPARQL service), without its datasets.
/// `issued` and `modified` are the earliest and latest dataset dates, when there are datasets.
/// The catalogue's own dates and coverage, from its datasets.
#[derive(Debug, Clone, Copy, Default)]
pub struct CatalogExtent<'a> {
    /// The earliest and latest dataset record dates.
    pub issued: Option<&'a str>,
    pub modified: Option<&'a str>,
    /// The countries the datasets cover (ISO 3166-1 alpha-3), used when the operator names none.
    pub countries: &'a [String],
    /// On the central node: the national nodes its datasets came from (JetStream domains), each
    /// a sub-catalogue, with when it was last confirmed if it cannot be reached now.
    pub nodes: &'a [(String, Option<String>)],
}

pub fn catalog_graph(base: &PublicBase, info: &CatalogInfo, extent: CatalogExtent<'_>) -> GraphBuilder {
    let CatalogExtent { issued, modified, countries, nodes } = extent;
    let c = iri(base.catalog());
    let mut g = GraphBuilder::new(&c);
    g.a(&c, term(DCAT, "Catalog"));
    g.lang(&c, term(DCT, "title"), &LangMap::from([("en".to_owned(), info.title.clone())]));
    g.lang(&c, term(DCT, "description"), &LangMap::from([("en".to_owned(), info.description.clone())]));
    let publisher = iri(format!("{}#publisher", c.as_str()));
    g.add(&c, term(DCT, "publisher"), publisher.clone());
    g.agent(
        &publisher,
        &Agent {
            name: LangMap::from([("en".to_owned(), info.publisher_name.clone())]),
            description: None,
            homepage: info.homepage.clone(),
            type_: None,
            contact_point: Contact { email: Some(info.publisher_email.clone()), ..Contact::default() },
        },
    );
    for eli in &info.applicable_legislation {
        g.typed_link(&c, term(DCATAP, "applicableLegislation"), eli, iri(ELI_LEGAL_RESOURCE));
    }
    if let Some(home) = &info.homepage {
        g.typed_link(&c, term(FOAF, "homepage"), home, term(FOAF, "Document"));
    }
    for language in &info.languages {
        g.typed_link(&c, term(DCT, "language"), &vocab::language_iri(language), term(DCT, "LinguisticSystem"));
    }
    let countries = if info.countries.is_empty() { countries } else { &info.countries };
    for country in countries {
        g.typed_link(&c, term(DCT, "spatial"), &vocab::country_iri(country), term(DCT, "Location"));
    }
    if let Some(licence) = &info.licence {
        g.typed_link(&c, term(DCT, "license"), licence, term(DCT, "LicenseDocument"));
    }
    for scheme in [DATA_THEME_SCHEME, HEALTH_CATEGORY_SCHEME] {
        g.typed_link(&c, term(DCAT, "themeTaxonomy"), scheme, term(SKOS, "ConceptScheme"));
        if let Some(title) = crate::labels::label(scheme) {
            g.lang(&iri(scheme), term(DCT, "title"), &LangMap::from([("en".to_owned(), title.to_owned())]));
        }
    }
    if let Some(issued) = issued {
        g.add(&c, term(DCT, "issued"), datetime_literal(issued));
    }
    if let Some(modified) = modified {
        g.add(&c, term(DCT, "modified"), datetime_literal(modified));
    }
    // on the central node, one sub-catalogue per national node, published by it
    for (node, last_confirmed) in nodes {
        let sub = iri(base.node_catalog(node));
        g.add(&c, term(DCT, "hasPart"), sub.clone());
        g.add(&c, term(DCAT, "catalog"), sub.clone());
        g.a(&sub, term(DCAT, "Catalog"));
        g.lang(&sub, term(DCT, "title"), &LangMap::from([("en".to_owned(), format!("{} — node {node}", info.title))]));
        g.lang(
            &sub,
            term(DCT, "description"),
            &LangMap::from([("en".to_owned(), format!("The datasets of the catalogue that cireg node {node} holds."))]),
        );
        let agent = Origin::describe_node(&mut g, base, node);
        g.add(&sub, term(DCT, "publisher"), agent);
        // a node that cannot be reached keeps its datasets here, marked with when it was last
        // confirmed (its sub-catalogue, and so each of its datasets)
        if let Some(at) = last_confirmed {
            g.add(&sub, term(CIREG, "lastConfirmed"), datetime_literal(at));
        }
        for eli in &info.applicable_legislation {
            g.typed_link(&sub, term(DCATAP, "applicableLegislation"), eli, iri(ELI_LEGAL_RESOURCE));
        }
    }
    // the SPARQL endpoint, as the catalogue's data service
    let service = iri(format!("{}/sparql", base.as_str()));
    g.add(&c, term(DCAT, "service"), service.clone());
    g.a(&service, term(DCAT, "DataService"));
    g.lang(
        &service,
        term(DCT, "title"),
        &LangMap::from([("en".to_owned(), format!("{} SPARQL endpoint", info.title))]),
    );
    g.add(&service, term(DCAT, "endpointURL"), service.clone());
    g.typed_link(&service, term(DCT, "conformsTo"), "https://www.w3.org/TR/sparql11-protocol/", term(DCT, "Standard"));
    for eli in &info.applicable_legislation {
        g.typed_link(&service, term(DCATAP, "applicableLegislation"), eli, iri(ELI_LEGAL_RESOURCE));
    }
    g
}
