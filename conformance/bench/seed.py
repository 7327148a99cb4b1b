"""Creates N DocumentReferences through the API and prints their ids."""
import concurrent.futures
import json
import sys
import urllib.request

base, count, doc_path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
body = open(doc_path, "rb").read()


def create(_):
    req = urllib.request.Request(
        f"{base}/DocumentReference",
        data=body,
        method="POST",
        headers={"Content-Type": "application/fhir+json", "Prefer": "return=minimal"},
    )
    with urllib.request.urlopen(req) as resp:
        location = resp.headers["Location"]
        return location.split("/DocumentReference/")[1].split("/")[0]


with concurrent.futures.ThreadPoolExecutor(8) as pool:
    for id_ in pool.map(create, range(count)):
        print(id_)
