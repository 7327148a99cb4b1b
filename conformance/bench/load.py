"""Loads the search benchmark data set through transaction Bundles and prints one JSON line
of figures: PATIENTS patients (ids pat-0…, identifier urn:bench:mrn|mrn-N) and DOCS
DocumentReferences spread evenly over them, with types, categories and dates that
search.lua's queries select from (see terms.lua).

    python3 load.py BASE PATIENTS DOCS [WORKERS] [BATCH]
"""
import concurrent.futures
import json
import os
import sys
import time
import urllib.request
import uuid


def auth(headers):
    """Adds the harness's access token (BENCH_TOKEN), when there is one."""
    token = os.environ.get("BENCH_TOKEN")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers

base, patients, docs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
workers = int(sys.argv[4]) if len(sys.argv) > 4 else 4
batch = int(sys.argv[5]) if len(sys.argv) > 5 else 1000

TYPES = [
    ("18842-5", "Discharge summary"), ("11506-3", "Progress note"),
    ("34117-2", "History and physical note"), ("28570-0", "Procedure note"),
    ("11488-4", "Consult note"), ("18748-4", "Diagnostic imaging study"),
    ("57133-1", "Referral note"), ("34111-5", "Emergency department note"),
    ("11526-1", "Pathology study"), ("60591-5", "Patient summary"),
]
CATEGORY_SYSTEM = "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category"
CATEGORIES = ["clinical-note", "imaging", "laboratory"]
EPOCH = 1546300800  # 2019-01-01T00:00:00Z
SPAN = 6 * 365 * 86400


def iso(seconds):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(EPOCH + seconds))


def document(i):
    code, display = TYPES[(i * 7) % len(TYPES)]
    at = (i * 2654435761) % SPAN
    patient = f"pat-{i % patients}"
    return {
        "resourceType": "DocumentReference",
        "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:oid:1.3.6.1.4.1.21367.2005.3.7.{i}"},
        "identifier": [{"system": "urn:bench:doc", "value": f"doc-{i}"}],
        "status": "current",
        "docStatus": "final",
        "type": {"coding": [{"system": "http://loinc.org", "code": code, "display": display}]},
        "category": [{"coding": [{"system": CATEGORY_SYSTEM, "code": CATEGORIES[(i * 13) % len(CATEGORIES)]}]}],
        "subject": {"reference": f"Patient/{patient}"},
        "date": iso(at),
        "author": [{"reference": f"Practitioner/bench-practitioner-{i % 50:02d}"}, {"reference": "Organization/bench-hospital-01"}],
        "custodian": {"reference": "Organization/bench-hospital-01"},
        "description": f"{display} number {i}.",
        "content": [{
            "attachment": {"contentType": "application/pdf", "language": "en-US", "url": f"Binary/bench-binary-{i}",
                           "size": 184322, "hash": "2jmj7l5rSw0yVb/vlWAYkK/YBwk=", "title": display},
            "format": {"system": "http://ihe.net/fhir/ihe.formatcode.fhir/CodeSystem/formatcode",
                       "code": "urn:ihe:iti:xds:2017:mimeTypeSufficient"},
        }],
        "context": {"period": {"start": iso(max(at - 3 * 86400, 0)), "end": iso(at)}},
    }


def patient(i):
    return {
        "resourceType": "Patient",
        "id": f"pat-{i}",
        "identifier": [{"system": "urn:bench:mrn", "value": f"mrn-{i}"}],
        "active": True,
        "name": [{"family": f"Family{i % 997}", "given": [f"Given{i % 101}"]}],
        "gender": ["female", "male"][i % 2],
        "birthDate": f"{1940 + i % 70}-{1 + i % 12:02d}-{1 + i % 28:02d}",
    }


def post_bundle(entries):
    body = json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": entries}).encode()
    req = urllib.request.Request(base, data=body, method="POST", headers=auth({
        "Content-Type": "application/fhir+json", "Prefer": "return=minimal"}))
    started = time.monotonic()
    with urllib.request.urlopen(req, timeout=600) as resp:
        resp.read()
        if resp.status != 200:
            raise RuntimeError(f"transaction answered {resp.status}")
    return time.monotonic() - started


def patient_bundle(start):
    return [{"resource": patient(i), "request": {"method": "PUT", "url": f"Patient/pat-{i}"}}
            for i in range(start, min(start + batch, patients))]


def document_bundle(start):
    return [{"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": document(i),
             "request": {"method": "POST", "url": "DocumentReference"}}
            for i in range(start, min(start + batch, docs))]


def load(make, total):
    started = time.monotonic()
    latencies = []
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        for seconds in pool.map(lambda s: post_bundle(make(s)), range(0, total, batch)):
            latencies.append(seconds)
            done = len(latencies) * batch
            if done % 100_000 < batch:
                print(f"  {min(done, total):,} loaded", file=sys.stderr)
    elapsed = time.monotonic() - started
    latencies.sort()
    return {"count": total, "seconds": round(elapsed, 1), "per_second": round(total / elapsed),
            "bundle_p50_s": round(latencies[len(latencies) // 2], 2) if latencies else 0,
            "bundle_max_s": round(latencies[-1], 2) if latencies else 0}


# The hospital and the authors the documents name: the server refuses a document whose
# subject or Practitioner author does not exist.
post_bundle(
    [{"resource": {"resourceType": "Organization", "id": "bench-hospital-01", "name": "Bench Hospital"},
      "request": {"method": "PUT", "url": "Organization/bench-hospital-01"}}]
    + [{"resource": {"resourceType": "Practitioner", "id": f"bench-practitioner-{n:02d}"},
        "request": {"method": "PUT", "url": f"Practitioner/bench-practitioner-{n:02d}"}} for n in range(50)]
    # The patient of document.json, which search.sh's creates post.
    + [{"resource": {"resourceType": "Patient", "id": "bench-patient-0001",
                     "managingOrganization": {"reference": "Organization/bench-hospital-01"}},
        "request": {"method": "PUT", "url": "Patient/bench-patient-0001"}}])
figures = {"patients": load(patient_bundle, patients)}
figures["documents"] = load(document_bundle, docs)
print(json.dumps(figures))
