"""Creates N DocumentReferences through the API and prints their ids."""
import concurrent.futures
import json
import os
import sys
import urllib.request


def auth(headers):
    """Adds the harness's access token (BENCH_TOKEN), when there is one."""
    token = os.environ.get("BENCH_TOKEN")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers

base, count, doc_path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
body = open(doc_path, "rb").read()

# What the document names must exist first (the server refuses dangling subjects and authors).
FIXTURES = [
    {"resourceType": "Organization", "id": "bench-hospital-01", "name": "Bench Hospital"},
    {"resourceType": "Practitioner", "id": "bench-practitioner-01"},
    {"resourceType": "Patient", "id": "bench-patient-0001",
     "managingOrganization": {"reference": "Organization/bench-hospital-01"}},
]
for fixture in FIXTURES:
    req = urllib.request.Request(
        f"{base}/{fixture['resourceType']}/{fixture['id']}",
        data=json.dumps(fixture).encode(),
        method="PUT",
        headers=auth({"Content-Type": "application/fhir+json", "Prefer": "return=minimal"}),
    )
    with urllib.request.urlopen(req) as resp:
        resp.read()


def create(_):
    req = urllib.request.Request(
        f"{base}/DocumentReference",
        data=body,
        method="POST",
        headers=auth({"Content-Type": "application/fhir+json", "Prefer": "return=minimal"}),
    )
    with urllib.request.urlopen(req) as resp:
        location = resp.headers["Location"]
        return location.split("/DocumentReference/")[1].split("/")[0]


with concurrent.futures.ThreadPoolExecutor(8) as pool:
    for id_ in pool.map(create, range(count)):
        print(id_)
