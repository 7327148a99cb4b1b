#!/usr/bin/env python3
"""Checks of deploy/k8s that a JSON schema cannot express (run by validate.sh).

  check-manifests.py --list   prints the files kustomization.yaml applies
  check-manifests.py          checks them; exits 1 naming each problem

- every file in deploy/k8s is a resource of kustomization.yaml, or one of
  the tooling files, or under postgres/ (the CloudNativePG example, parsed
  here but outside the kustomization: its CRDs are not in the offline schemas);
- no manifest anywhere under deploy/k8s is a Secret carrying data (Secrets
  are created out of band, see deploy/README.md);
- the Deployment probes /health/ready (readiness) and /health/live
  (liveness, startup) on a declared port, with timeouts above the readiness
  check's 2 s database wait; its grace period covers the preStop sleep and
  FHIRLEDGER_SHUTDOWN_SECONDS; its pods run restricted;
- Service, PodDisruptionBudget, HorizontalPodAutoscaler and NetworkPolicy
  select or target the Deployment's pods; the HPA owns the replica count;
- anchoring is configured all or nothing, as `serve` requires.
"""

import os
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
TOOLING = {"kustomization.yaml", "validate.sh", "requirements.txt", "check-manifests.py"}
EXAMPLES = "postgres"
CHAIN = ("FHIRLEDGER_CHAIN_RPC_URL", "FHIRLEDGER_CHAIN_ID", "FHIRLEDGER_ANCHOR_CONTRACT",
         "FHIRLEDGER_CHAIN_KEY_FILE")

problems = []


def fail(message):
    problems.append(message)


def load_all(path):
    with open(path) as f:
        return [doc for doc in yaml.safe_load_all(f) if doc]


def kustomization():
    with open(os.path.join(HERE, "kustomization.yaml")) as f:
        return yaml.safe_load(f)


def resources():
    return list(kustomization().get("resources", []))


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def main():
    listed = resources()
    if len(sys.argv) > 1 and sys.argv[1] == "--list":
        print("\n".join(os.path.join(HERE, name) for name in listed))
        return 0

    # Every file accounted for.
    for name in sorted(os.listdir(HERE)):
        if name in TOOLING or name in listed or name == EXAMPLES:
            continue
        fail(f"{name}: neither a resource of kustomization.yaml nor a known tooling file")
    for name in listed:
        if not os.path.isfile(os.path.join(HERE, name)):
            fail(f"kustomization.yaml lists {name}, which does not exist")

    # Every YAML document under deploy/k8s, the examples included.
    docs = {}
    for folder, _, names in os.walk(HERE):
        for name in names:
            if name.endswith((".yaml", ".yml")):
                path = os.path.join(folder, name)
                rel = os.path.relpath(path, HERE)
                try:
                    docs[rel] = load_all(path)
                except yaml.YAMLError as e:
                    fail(f"{rel}: not YAML: {e}")
    for rel, items in docs.items():
        for doc in items:
            if doc.get("kind") == "Secret" and ("data" in doc or "stringData" in doc):
                fail(f"{rel}: a Secret with data; create Secrets out of band instead")
    for rel, items in docs.items():
        if rel.startswith(EXAMPLES + os.sep):
            for doc in items:
                group = doc.get("apiVersion", "").split("/")[0]
                if group not in ("postgresql.cnpg.io", "barmancloud.cnpg.io"):
                    fail(f"{rel}: {doc.get('kind')} ({doc.get('apiVersion')}) is not a CloudNativePG kind;"
                         f" put core resources in the kustomization")

    by_kind = {}
    for name in listed:
        for doc in docs.get(name, []):
            by_kind.setdefault(doc["kind"], []).append(doc)

    def one(kind):
        found = by_kind.get(kind, [])
        if len(found) != 1:
            fail(f"expected one {kind} in the kustomization, found {len(found)}")
            return {}
        return found[0]

    deployment, service, pdb, hpa = one("Deployment"), one("Service"), one("PodDisruptionBudget"), \
        one("HorizontalPodAutoscaler")
    config = one("ConfigMap").get("data", {})
    policy = one("NetworkPolicy")
    if not deployment:
        return report()

    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    labels = spec["template"]["metadata"]["labels"]
    if not selects(spec["selector"]["matchLabels"], labels):
        fail("Deployment: its selector does not match its pod labels")
    containers = pod["containers"]
    server = containers[0]
    ports = {p.get("name"): p["containerPort"] for p in server.get("ports", [])}

    def probe(name, path):
        p = server.get(name)
        if not p:
            fail(f"Deployment: no {name}")
            return
        get = p.get("httpGet", {})
        if get.get("path") != path:
            fail(f"Deployment: {name} asks {get.get('path')}, not {path}")
        if get.get("port") not in ports and get.get("port") not in ports.values():
            fail(f"Deployment: {name} port {get.get('port')} is not a container port")
        if p.get("timeoutSeconds", 1) < 3:
            fail(f"Deployment: {name} timeoutSeconds below 3 (readiness waits up to 2 s for the database)")

    probe("readinessProbe", "/health/ready")
    probe("livenessProbe", "/health/live")
    probe("startupProbe", "/health/live")

    shutdown = int(config.get("FHIRLEDGER_SHUTDOWN_SECONDS", 25))
    sleep = server.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    if not sleep:
        fail("Deployment: no preStop sleep (endpoints must drop the pod before SIGTERM)")
    grace = pod.get("terminationGracePeriodSeconds", 30)
    if grace <= sleep + shutdown:
        fail(f"Deployment: terminationGracePeriodSeconds {grace} does not exceed preStop {sleep} s"
             f" + FHIRLEDGER_SHUTDOWN_SECONDS {shutdown}")

    pod_security = pod.get("securityContext", {})
    if not pod_security.get("runAsNonRoot"):
        fail("Deployment: runAsNonRoot is not set")
    if pod_security.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        fail("Deployment: seccompProfile is not RuntimeDefault")
    for c in containers:
        sc = c.get("securityContext", {})
        if not sc.get("readOnlyRootFilesystem"):
            fail(f"container {c['name']}: root filesystem is writable")
        if sc.get("allowPrivilegeEscalation") is not False:
            fail(f"container {c['name']}: allowPrivilegeEscalation is not false")
        if sc.get("capabilities", {}).get("drop") != ["ALL"]:
            fail(f"container {c['name']}: capabilities are not dropped")
        if "limits" not in c.get("resources", {}) or "requests" not in c.get("resources", {}):
            fail(f"container {c['name']}: no resource requests and limits")

    if "replicas" in spec and spec["replicas"] != hpa.get("spec", {}).get("minReplicas"):
        fail("Deployment: spec.replicas would fight the HorizontalPodAutoscaler")
    if hpa:
        target = hpa["spec"]["scaleTargetRef"]
        if (target["kind"], target["name"]) != ("Deployment", deployment["metadata"]["name"]):
            fail("HorizontalPodAutoscaler: does not target the Deployment")
        if hpa["spec"].get("minReplicas", 1) < 3:
            fail("HorizontalPodAutoscaler: fewer than 3 replicas at minimum")
    if service and not selects(service["spec"].get("selector"), labels):
        fail("Service: does not select the Deployment's pods")
    if service:
        for p in service["spec"]["ports"]:
            if p["targetPort"] not in ports and p["targetPort"] not in ports.values():
                fail(f"Service: targetPort {p['targetPort']} is not a container port")
    if pdb and not selects(pdb["spec"]["selector"].get("matchLabels"), labels):
        fail("PodDisruptionBudget: does not select the Deployment's pods")
    if policy and not selects(policy["spec"]["podSelector"].get("matchLabels"), labels):
        fail("NetworkPolicy: does not select the Deployment's pods")

    # Anchoring: all four settings or none; the key file is a mounted Secret.
    chain = [k for k in CHAIN if config.get(k)]
    if chain and len(chain) != len(CHAIN):
        fail(f"ConfigMap: anchoring needs all of {', '.join(CHAIN)} or none (has {', '.join(chain)})")
    if config.get("FHIRLEDGER_CHAIN_KEY_FILE"):
        key_dir = os.path.dirname(config["FHIRLEDGER_CHAIN_KEY_FILE"])
        mounts = {m["mountPath"]: m["name"] for m in server.get("volumeMounts", [])}
        volume = {v["name"]: v for v in pod.get("volumes", [])}.get(mounts.get(key_dir), {})
        if "secret" not in volume:
            fail(f"Deployment: FHIRLEDGER_CHAIN_KEY_FILE is not in a Secret volume mounted at {key_dir}")
    env = {e["name"]: e for e in server.get("env", [])}
    if "secretKeyRef" not in env.get("FHIRLEDGER_DATABASE_URL", {}).get("valueFrom", {}):
        fail("Deployment: FHIRLEDGER_DATABASE_URL does not come from a Secret")

    return report()


def report():
    for p in problems:
        print(f"FAIL {p}")
    if problems:
        return 1
    print(f"check-manifests: {len(resources())} resources of kustomization.yaml hold together;"
          f" no Secret with data under deploy/k8s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
