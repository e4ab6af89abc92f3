"""Independent judges of the catalogue a running cireg serves: rdflib parses every serialisation,
and pySHACL validates the catalogue with the official DCAT-AP 3.0.1 and HealthDCAT-AP R8 shapes and
the registry's EUCAIM shapes, one access level at a time (the HealthDCAT-AP shape sets are per
level). Called by tests/catalog.rs; exits non-zero with a report when a judge disagrees.

usage: judge.py <base-url> <shapes-dir>
"""

import sys
import urllib.request

from pyshacl import validate
from rdflib import RDF, Graph, Namespace, URIRef
from rdflib.compare import isomorphic

DCAT = Namespace("http://www.w3.org/ns/dcat#")
DCT = Namespace("http://purl.org/dc/terms/")
SH = Namespace("http://www.w3.org/ns/shacl#")
ACCESS = "http://publications.europa.eu/resource/authority/access-right/"

FORMATS = [
    ("text/turtle", "turtle", ".ttl"),
    ("application/ld+json", "json-ld", ".jsonld"),
    ("application/rdf+xml", "xml", ".rdf"),
    ("application/n-triples", "nt", ".nt"),
]

COMMON = [
    "dcat-ap-3.0.1/shapes.ttl",
    "dcat-ap-3.0.1/deprecateduris.ttl",
    "healthdcat-ap-r8/shapes/graph-guard.ttl",
    "healthdcat-ap-r8/imports/imports.ttl",
    "healthdcat-ap-r8/ranges/range.ttl",
    "cireg/eucaim-shapes.ttl",
]
LEVELS = {
    "PUBLIC": ["healthdcat-ap-r8/shapes/public-shapes.ttl", "healthdcat-ap-r8/recommended/public-shapes_recommended.ttl"],
    "RESTRICTED": [
        "healthdcat-ap-r8/shapes/restricted-shapes.ttl",
        "healthdcat-ap-r8/recommended/restricted-shapes_recommended.ttl",
    ],
    "NON_PUBLIC": [
        "healthdcat-ap-r8/shapes/non-public-shapes.ttl",
        "healthdcat-ap-r8/recommended/non-public-shapes_recommended.ttl",
    ],
}


def fetch(url, accept):
    request = urllib.request.Request(url, headers={"Accept": accept})
    with urllib.request.urlopen(request, timeout=120) as response:
        return response.headers.get("Content-Type", ""), response.read()


def shapes_graph(shapes_dir, level):
    g = Graph()
    for name in COMMON + LEVELS[level]:
        g.parse(f"{shapes_dir}/{name}", format="turtle", publicID="urn:cireg:shapes/")
    # The HealthDCAT-AP shape files carry one sh:property without sh:path (the hasStructuredData /
    # hasVariables rule), which strict engines refuse; it is a node-level rule, read it as sh:node.
    for shape, prop in list(g.subject_objects(SH.property)):
        if (prop, SH.path, None) not in g:
            g.remove((shape, SH.property, prop))
            g.add((shape, SH.node, prop))
    return g


def owner(iri, datasets):
    """The dataset an IRI of the catalogue belongs to (itself, its #nodes, its distributions, its record)."""
    s = str(iri)
    for d in datasets:
        if s == d or s.startswith(d + "#") or s.startswith(d + "/"):
            return d
        if s == d.replace("/datasets/", "/records/", 1):
            return d
    return None


def main():
    base, shapes_dir = sys.argv[1], sys.argv[2]
    failures = []

    # every serialisation parses, and they all say the same
    graphs = {}
    for media, fmt, ext in FORMATS:
        content_type, body = fetch(f"{base}/catalog{ext}", "*/*")
        if not content_type.startswith(media):
            failures.append(f"/catalog{ext}: Content-Type {content_type!r}, expected {media}")
        graphs[fmt] = Graph().parse(data=body, format=fmt)
        _, negotiated = fetch(f"{base}/catalog", media)
        if not isomorphic(graphs[fmt], Graph().parse(data=negotiated, format=fmt)):
            failures.append(f"/catalog with Accept {media} differs from /catalog{ext}")
    reference = graphs["turtle"]
    for fmt, g in graphs.items():
        if not isomorphic(reference, g):
            failures.append(f"{fmt}: {len(g)} triples, not the same graph as Turtle's {len(reference)}")
    datasets = sorted(str(d) for d in reference.subjects(RDF.type, DCAT.Dataset))
    print(f"judge: {len(reference)} triples, {len(datasets)} datasets, parsed identically in {len(graphs)} formats")
    if not datasets:
        failures.append("the catalogue holds no dataset")

    # pySHACL, per access level: the catalogue with only that level's datasets
    level_of = {}
    for d in datasets:
        rights = [str(o) for o in reference.objects(URIRef(d), DCT.accessRights)]
        level_of[d] = rights[0].removeprefix(ACCESS) if rights else "?"
    for level in LEVELS:
        members = [d for d in datasets if level_of[d] == level]
        if not members:
            continue
        others = [d for d in datasets if level_of[d] != level]
        data = Graph()
        for s, p, o in reference:
            if owner(s, others) or (isinstance(o, URIRef) and owner(o, others)):
                continue
            data.add((s, p, o))
        conforms, _, text = validate(data, shacl_graph=shapes_graph(shapes_dir, level), inference="none", advanced=True, allow_warnings=True)
        violations = text.count("Severity: sh:Violation")
        print(f"judge: pySHACL {level}: {len(members)} datasets, {len(data)} triples, conforms={conforms}, {violations} violations")
        if not conforms or violations:
            failures.append(f"pySHACL {level}:\n{text[:20000]}")

    for f in failures:
        print("FAIL:", f)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
