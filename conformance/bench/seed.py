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
