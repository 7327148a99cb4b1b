"""The Consent benchmark's data, on top of load.py's patients and documents.

    python3 consents.py load BASE PATIENTS [WORKERS] [BATCH]   # loads; prints one JSON line
    python3 consents.py bodies PATIENTS in-force|draft          # PUT bodies for consent_write.lua
    python3 consents.py visible BASE COUNT                      # ids the BENCH_TOKEN caller reads

Every patient pat-N holds one to three Consents in force (N % 3 + 1 of them):
- `bench-consent-N-hospital` (all): permit to every doctor of their hospital
  (Organization/bench-hospital-01); for even N with a nested deny of referral notes;
- `bench-consent-N-shared` (N % 3 in 1, 2): permit to one doctor of another hospital
  (Practitioner/bench-practitioner-50 of bench-hospital-02) for progress notes,
  discharge summaries and patient summaries dated from 2021, until 2030;
- `bench-consent-N-pathology` (N % 3 = 2): deny to every doctor of pathology
  studies dated before 2021.
`bodies draft` gives the same shared Consents as drafts under other ids
(`bench-draft-N`): stored, but in force for nobody, so they keep no rules.
"""
import concurrent.futures
import json
import os
import sys
import time
import urllib.parse
import urllib.request

LOINC = "http://loinc.org"
ROLE = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]}
DOCUMENTS = [{"system": "http://hl7.org/fhir/resource-types", "code": "DocumentReference"}]
# Fixtures the Consents name: the second hospital and its doctor, and a PractitionerRole
# for the first hospital's benchmark doctor (bench-practitioner-00), as a real deployment has.
FIXTURES = [
    {"resourceType": "Organization", "id": "bench-hospital-02", "name": "Second Bench Hospital"},
    {"resourceType": "Practitioner", "id": "bench-practitioner-50"},
    {"resourceType": "PractitionerRole", "id": "bench-role-00", "active": True,
     "practitioner": {"reference": "Practitioner/bench-practitioner-00"},
     "organization": {"reference": "Organization/bench-hospital-01"}},
    {"resourceType": "PractitionerRole", "id": "bench-role-50", "active": True,
     "practitioner": {"reference": "Practitioner/bench-practitioner-50"},
     "organization": {"reference": "Organization/bench-hospital-02"}},
]


def auth(headers):
    """Adds the harness's access token (BENCH_TOKEN), when there is one."""
    token = os.environ.get("BENCH_TOKEN")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def actor(reference):
    return [{"role": ROLE, "reference": {"reference": reference}}]


def consent(id_, n, provision, status="active"):
    return {
        "resourceType": "Consent",
        "id": id_,
        "status": status,
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": LOINC, "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/pat-{n}"},
        "dateTime": "2024-06-01T09:00:00Z",
        "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
        "provision": provision,
    }


def shared(n, id_=None, status="active"):
    return consent(id_ or f"bench-consent-{n}-shared", n, {
        "type": "permit",
        "period": {"end": "2030-01-01T00:00:00Z"},
        "actor": actor("Practitioner/bench-practitioner-50"),
        "class": DOCUMENTS,
        "code": [{"coding": [{"system": LOINC, "code": c}]} for c in ("11506-3", "18842-5", "60591-5")],
        "dataPeriod": {"start": "2021-01-01T00:00:00Z"},
    }, status)


def consents_of(n):
    hospital = {"type": "permit", "actor": actor("Organization/bench-hospital-01"), "class": DOCUMENTS}
    if n % 2 == 0:
        hospital["provision"] = [{"type": "deny", "code": [{"coding": [{"system": LOINC, "code": "57133-1"}]}]}]
    out = [consent(f"bench-consent-{n}-hospital", n, hospital)]
    if n % 3 >= 1:
        out.append(shared(n))
    if n % 3 == 2:
        out.append(consent(f"bench-consent-{n}-pathology", n, {
            "type": "deny",
            "code": [{"coding": [{"system": LOINC, "code": "11526-1"}]}],
            "dataPeriod": {"end": "2020-12-31T23:59:59Z"},
        }))
    return out


def request(url, body=None, method="GET"):
    req = urllib.request.Request(url, data=body, method=method, headers=auth({
        "Content-Type": "application/fhir+json", "Accept": "application/fhir+json", "Prefer": "return=minimal"}))
    with urllib.request.urlopen(req, timeout=600) as resp:
        return resp.status, resp.read()


def put_bundle(base, resources):
    body = json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}} for r in resources
    ]}).encode()
    started = time.monotonic()
    status, _ = request(base, body, "POST")
    if status != 200:
        raise RuntimeError(f"transaction answered {status}")
    return time.monotonic() - started


def load(base, patients, workers, batch):
    put_bundle(base, FIXTURES)
    consents = [c for n in range(patients) for c in consents_of(n)]
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        latencies = sorted(pool.map(lambda s: put_bundle(base, consents[s:s + batch]), range(0, len(consents), batch)))
    elapsed = time.monotonic() - started
    return {"count": len(consents), "seconds": round(elapsed, 1), "per_second": round(len(consents) / elapsed),
            "bundle_p50_s": round(latencies[len(latencies) // 2], 2), "bundle_max_s": round(latencies[-1], 2)}


def visible(base, count):
    """Ids of documents the caller reads, a few from each of many patients."""
    ids, n = [], 0
    while len(ids) < count and n < 100_000:
        query = urllib.parse.urlencode({"patient": f"pat-{n}", "_count": "10", "_elements": "id"})
        _, body = request(f"{base}/DocumentReference?{query}")
        ids += [e["resource"]["id"] for e in json.loads(body).get("entry", []) if e.get("search", {}).get("mode") == "match"]
        n += 1
    return ids[:count]


def main(args):
    if args[0] == "load":
        workers = int(args[3]) if len(args) > 3 else 4
        batch = int(args[4]) if len(args) > 4 else 500
        print(json.dumps(load(args[1], int(args[2]), workers, batch)))
    elif args[0] == "bodies":
        # One line per body: the Consent's id, a tab, the JSON (the shared Consents only, so
        # every write touches a patient's rules the same way).
        patients, kind = int(args[1]), args[2]
        for n in (n for n in range(patients) if n % 3 >= 1):
            body = shared(n) if kind == "in-force" else shared(n, f"bench-draft-{n}", "draft")
            print(f"{body['id']}\t{json.dumps(body)}")
    elif args[0] == "visible":
        for id_ in visible(args[1], int(args[2])):
            print(id_)
    else:
        sys.exit(__doc__)


main(sys.argv[1:])
