#!/usr/bin/env python3
"""Checks that the files of deploy/besu agree with each other.

    ./check.sh                       this check and its self-test, in a venv
    python3 check.py [--dir DIR]     the check (needs requirements.txt)
    python3 check.py --self-test     proves the check catches broken copies

Besu cannot run where this is checked, so nothing here starts a node: the
check derives every address and enode URL from the keys themselves and holds
each file against them. It exits 0 with a one-line summary when everything
agrees, 1 naming each disagreement otherwise.

What must agree: genesis.json's extraData names the addresses of
node1/key..node4/key, in that order; every enode URL (allowlists, bootnodes,
for loopback and for compose) carries a node key's public key and the port
and host that node listens at; the accounts allowlists are exactly the
owner and the anchoring writer; network.env's contract is the owner's nonce-0
deployment address and its chain id is genesis.json's; the genesis has free
gas (zeroBaseFee, London) and 2 s blocks; every node takes gas price 0 and
enables both permission files; compose.yaml mounts files that exist, read
only, at the paths compose/config.toml names.

The self-test copies the directory, breaks one thing at a time and asserts
that the check reports each (and that the intact copy passes).
"""

import argparse
import ipaddress
import json
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

import rlp
import yaml
from eth_keys import keys
from eth_utils import keccak

HERE = Path(__file__).resolve().parent
NODES = [1, 2, 3, 4]
SERVICES = {f"besu{n}": n for n in NODES}
BFT_MIX_HASH = "0x63746963616c2062797a616e74696e65206661756c7420746f6c6572616e6365"
# Chain ids of public dev tooling (anvil, Hardhat, Ganache) and of
# `fhirledger dev`: a transaction signed for one of them would be valid here.
RESERVED_CHAIN_IDS = {1: "Ethereum mainnet", 1337: "a common dev chain id", 31337: "anvil's/Hardhat's", 48879: "`fhirledger dev`'s"}
REQUIRED_APIS = {"ETH", "NET", "QBFT", "WEB3"}
# No authentication on the RPC: nothing that changes peers, allowlists or
# exposes internals.
FORBIDDEN_APIS = {"ADMIN", "DEBUG", "PERM"}
KEY_RE = re.compile(r"\A0x[0-9a-fA-F]{64}\n?\Z")
ENODE_RE = re.compile(r"\Aenode://([0-9a-fA-F]{128})@([^:@/]+):(\d+)(?:\?discport=\d+)?\Z")
ADDRESS_RE = re.compile(r"\A0x[0-9a-fA-F]{40}\Z")
IMAGE_RE = re.compile(r"\Ahyperledger/besu:(\d+\.\d+\.\d+)\Z")


class Enode:
    def __init__(self, pubkey: str, host: str, port: int):
        self.pubkey, self.host, self.port = pubkey.lower(), host, port

    def key(self):
        return (self.pubkey, self.host, self.port)

    def __str__(self):
        return f"enode://{self.pubkey[:8]}…@{self.host}:{self.port}"


def parse_enode(text):
    m = ENODE_RE.match(text) if isinstance(text, str) else None
    return Enode(m.group(1), m.group(2), int(m.group(3))) if m else None


def contract_address(owner: bytes, nonce: int = 0) -> str:
    return "0x" + keccak(rlp.encode([owner, nonce]))[12:].hex()


class Check:
    def __init__(self, root: Path):
        self.root = root
        self.problems = []
        self.chain_id = None
        self.image = None
        self.compose_configs = {}
        # (validator number, container path) -> named volume mounted there
        self.volume_of = {}

    def fail(self, where, message):
        line = f"{where}: {message}"
        if line not in self.problems:
            self.problems.append(line)

    # ---- reading ------------------------------------------------------------

    def read(self, rel):
        path = self.root / rel
        try:
            return path.read_text()
        except OSError as e:
            self.fail(rel, f"cannot read ({e.strerror})")
            return None

    def toml(self, rel):
        text = self.read(rel)
        if text is None:
            return None
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            self.fail(rel, f"not TOML: {e}")
            return None

    def key(self, rel):
        text = self.read(rel)
        if text is None:
            return None
        # Besu's --node-private-key-file takes exactly one line; fhirledger's
        # --key-file one 0x-prefixed key.
        if not KEY_RE.match(text):
            self.fail(rel, "expected one line holding one 0x-prefixed 64-digit hex private key")
            return None
        try:
            return keys.PrivateKey(bytes.fromhex(text.strip()[2:]))
        except Exception:
            self.fail(rel, "not a valid secp256k1 private key (zero or above the curve order)")
            return None

    # ---- the checks ---------------------------------------------------------

    def run(self):
        self.node_keys = {n: self.key(f"node{n}/key") for n in NODES}
        self.owner = self.key("keys/owner.key")
        self.writer = self.key("keys/anchor-writer.key")
        present = [k for k in list(self.node_keys.values()) + [self.owner, self.writer] if k]
        if len({k.to_bytes() for k in present}) != len(present):
            self.fail("keys", "two of the six keys (node1..4, owner, anchor-writer) are the same key")
        self.node_addr = {n: k.public_key.to_address() if k else None for n, k in self.node_keys.items()}
        self.node_pub = {n: k.public_key.to_bytes().hex() if k else None for n, k in self.node_keys.items()}
        self.owner_addr = self.owner.public_key.to_address() if self.owner else None
        self.writer_addr = self.writer.public_key.to_address() if self.writer else None
        self.contract = contract_address(self.owner.public_key.to_canonical_address()) if self.owner else None

        self.check_genesis()
        native = self.check_native_configs()
        self.check_allowlists("permissions_config.toml", native)
        compose = self.check_compose()
        if compose is not None:
            self.check_allowlists("compose/permissions_config.toml", compose)
        self.check_network_env()
        self.check_readme()
        return self.problems

    def check_genesis(self):
        where = "genesis.json"
        text = self.read(where)
        if text is None:
            return
        try:
            genesis = json.loads(text)
        except ValueError as e:
            self.fail(where, f"not JSON: {e}")
            return
        config = genesis.get("config") if isinstance(genesis, dict) else None
        if not isinstance(config, dict):
            self.fail(where, "no config object")
            return
        chain_id = config.get("chainId")
        if not isinstance(chain_id, int) or isinstance(chain_id, bool) or chain_id <= 0:
            self.fail(where, f"config.chainId must be a positive integer, not {chain_id!r}")
        else:
            self.chain_id = chain_id
            if chain_id in RESERVED_CHAIN_IDS:
                self.fail(where, f"config.chainId {chain_id} is {RESERVED_CHAIN_IDS[chain_id]}: transactions signed there would replay here")
        # Free gas on a London chain needs zeroBaseFee, else the base fee
        # rises above the 0 fhirledger pays.
        if config.get("zeroBaseFee") is not True:
            self.fail(where, f"config.zeroBaseFee must be true (free gas), not {config.get('zeroBaseFee')!r}")
        if config.get("londonBlock") != 0:
            self.fail(where, f"config.londonBlock must be 0, not {config.get('londonBlock')!r}")
        for other in ("ibft2", "clique", "ethash"):
            if other in config:
                self.fail(where, f"config.{other}: QBFT is the only consensus here")
        qbft = config.get("qbft")
        if not isinstance(qbft, dict):
            self.fail(where, "no config.qbft object")
        else:
            if qbft.get("blockperiodseconds") != 2:
                self.fail(where, f"config.qbft.blockperiodseconds must be 2 (the pace of fhirledger's 2 s anchoring interval), not {qbft.get('blockperiodseconds')!r}")
            for name in ("epochlength", "requesttimeoutseconds"):
                value = qbft.get(name)
                if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                    self.fail(where, f"config.qbft.{name} must be a positive integer, not {value!r}")
        if "baseFeePerGas" in genesis and not _hex_is(genesis["baseFeePerGas"], 0):
            self.fail(where, f"baseFeePerGas must be 0x0, not {genesis['baseFeePerGas']!r}")
        if not _hex_at_least(genesis.get("gasLimit"), 30_000_000):
            self.fail(where, f"gasLimit {genesis.get('gasLimit')!r} is not a hex number of at least 30,000,000")
        if str(genesis.get("mixHash", "")).lower() != BFT_MIX_HASH:
            self.fail(where, "mixHash must be the BFT constant " + BFT_MIX_HASH)
        if not _hex_is(genesis.get("difficulty"), 1):
            self.fail(where, f"difficulty must be 0x1, not {genesis.get('difficulty')!r}")
        if not isinstance(genesis.get("alloc", {}), dict):
            self.fail(where, "alloc must be an object")
        self.check_extra_data(where, genesis.get("extraData"))

    def check_extra_data(self, where, extra):
        where = f"{where} extraData"
        try:
            raw = bytes.fromhex(extra[2:]) if isinstance(extra, str) and extra.startswith("0x") else None
        except ValueError:
            raw = None
        if raw is None:
            self.fail(where, "not 0x-prefixed hex")
            return
        try:
            items = rlp.decode(raw)
        except Exception as e:
            self.fail(where, f"not RLP: {e}")
            return
        # Besu's QbftExtraDataCodec: [vanity (32 bytes), [validators], vote
        # ([] for none), round (integer 0 = empty string), [seals]].
        if not isinstance(items, list) or len(items) != 5:
            self.fail(where, "must be the RLP list [vanity, validators, vote, round, seals]")
            return
        vanity, validators, vote, round_, seals = items
        if not isinstance(vanity, bytes) or len(vanity) != 32:
            self.fail(where, "vanity must be 32 bytes")
        if vote != []:
            self.fail(where, "the vote must be the empty list")
        if round_ != b"":
            self.fail(where, "the round must be 0 (the empty string)")
        if seals != []:
            self.fail(where, "the seal list must be empty")
        if rlp.encode(items) != raw:
            self.fail(where, "not canonical RLP")
        if not isinstance(validators, list) or not all(isinstance(v, bytes) and len(v) == 20 for v in validators):
            self.fail(where, "validators must be a list of 20-byte addresses")
            return
        named = ["0x" + v.hex() for v in validators]
        expected = [self.node_addr[n] for n in NODES]
        if None in expected:
            return
        if named != expected:
            if sorted(named) == sorted(expected):
                self.fail(where, f"names node1..node4's addresses in another order: {', '.join(named)} (expected {', '.join(expected)})")
            else:
                for n in NODES:
                    if self.node_addr[n] not in named:
                        self.fail(where, f"does not name node{n}'s address {self.node_addr[n]}")
                for a in named:
                    if a not in expected:
                        self.fail(where, f"names {a}, the address of no node key")
                if len(named) != len(NODES):
                    self.fail(where, f"names {len(named)} validators, not {len(NODES)}")
        if named != sorted(named):
            # Besu lists validators in ascending order in every later block.
            self.fail(where, "validators are not in ascending address order")

    # Settings every node needs, natively or in compose; `path` maps a path
    # in the config to the file it reaches (None: nothing there).
    def check_common(self, where, cfg, path, permissions_rel):
        if str(cfg.get("min-gas-price")) != "0":
            self.fail(where, f"min-gas-price must be 0 (fhirledger pays gas price 0), not {cfg.get('min-gas-price')!r}")
        # Optional (Besu lowers it to min-gas-price), but never above 0.
        if "tx-pool-min-gas-price" in cfg and str(cfg["tx-pool-min-gas-price"]) != "0":
            self.fail(where, f"tx-pool-min-gas-price must be 0, not {cfg['tx-pool-min-gas-price']!r}")
        for kind in ("nodes", "accounts"):
            if cfg.get(f"permissions-{kind}-config-file-enabled") is not True:
                self.fail(where, f"permissions-{kind}-config-file-enabled must be true")
            target = cfg.get(f"permissions-{kind}-config-file")
            reached = path(target) if isinstance(target, str) else None
            if reached != permissions_rel:
                self.fail(where, f"permissions-{kind}-config-file {target!r} must reach {permissions_rel} (reaches {reached or 'nothing'})")
        genesis = cfg.get("genesis-file")
        if (path(genesis) if isinstance(genesis, str) else None) != "genesis.json":
            self.fail(where, f"genesis-file {genesis!r} does not reach genesis.json")
        if cfg.get("rpc-http-enabled") is not True:
            self.fail(where, "rpc-http-enabled must be true")
        apis = cfg.get("rpc-http-api")
        apis = {str(a).upper() for a in apis} if isinstance(apis, list) else set()
        if not REQUIRED_APIS <= apis:
            self.fail(where, f"rpc-http-api lacks {', '.join(sorted(REQUIRED_APIS - apis))}")
        if apis & FORBIDDEN_APIS:
            self.fail(where, f"rpc-http-api must not offer {', '.join(sorted(apis & FORBIDDEN_APIS))} (the RPC has no authentication)")
        hosts = cfg.get("host-allowlist")
        if not isinstance(hosts, list) or "*" in hosts:
            self.fail(where, "host-allowlist must be a list of host names, without *")
        for name in ("p2p-port", "rpc-http-port"):
            if not isinstance(cfg.get(name), int):
                self.fail(where, f"{name} must be an integer")

    def check_bootnodes(self, where, cfg, expected, allowlisted, own):
        bootnodes = cfg.get("bootnodes")
        if not isinstance(bootnodes, list) or not bootnodes:
            self.fail(where, "bootnodes must list the other validators")
            return
        for text in bootnodes:
            e = parse_enode(text)
            if e is None:
                self.fail(where, f"bootnode {text!r} is not an enode URL")
                continue
            self.match_enode(where + " bootnodes", e, expected)
            if own is not None and e.pubkey == self.node_pub.get(own):
                self.fail(where, f"bootnodes name node{own} itself")
            # Besu will not start when a bootnode is missing from the nodes
            # allowlist.
            if allowlisted is not None and e.key() not in allowlisted:
                self.fail(where, f"bootnode {e} is not in the nodes-allowlist")

    def match_enode(self, where, e, expected):
        """expected: node number -> (host, port) that node listens at."""
        owner = next((n for n in NODES if self.node_pub[n] == e.pubkey), None)
        if owner is None:
            # With a node key unreadable (reported already), its enode URLs
            # would only repeat that.
            if None not in self.node_pub.values():
                self.fail(where, f"{e} carries the public key of no node key")
        elif owner in expected and (e.host, e.port) != expected[owner]:
            host, port = expected[owner]
            self.fail(where, f"{e} names node{owner}'s key at {e.host}:{e.port}, but node{owner} listens at {host}:{port}")
        return owner

    def native_path(self, p):
        # Relative paths are relative to the working directory, deploy/besu,
        # where the README starts Besu.
        full = (self.root / p).resolve()
        try:
            rel_path = full.relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return None
        return rel_path if full.exists() else None

    def check_native_configs(self):
        configs = {}
        native_path = self.native_path
        for n in NODES:
            rel = f"node{n}/config.toml"
            cfg = self.toml(rel)
            if cfg is None:
                continue
            configs[n] = cfg
            self.check_common(rel, cfg, native_path, "permissions_config.toml")
            key = cfg.get("node-private-key-file")
            if (native_path(key) if isinstance(key, str) else None) != f"node{n}/key":
                self.fail(rel, f"node-private-key-file {key!r} must be node{n}/key")
            if cfg.get("p2p-host") != "127.0.0.1":
                self.fail(rel, f"p2p-host must be 127.0.0.1 (the loopback enode URLs name it), not {cfg.get('p2p-host')!r}")
            if cfg.get("rpc-http-host") not in ("127.0.0.1", "localhost"):
                self.fail(rel, f"rpc-http-host must be loopback, not {cfg.get('rpc-http-host')!r}")
        for name in ("p2p-port", "rpc-http-port", "data-path"):
            seen = {}
            for n, cfg in configs.items():
                value = cfg.get(name)
                if value is None:
                    self.fail(f"node{n}/config.toml", f"{name} is not set")
                elif value in seen:
                    self.fail(f"node{n}/config.toml", f"{name} {value!r} is node{seen[value]}'s too")
                else:
                    seen[value] = n
        expected = {n: ("127.0.0.1", cfg.get("p2p-port")) for n, cfg in configs.items()}
        allowlisted = self.allowlisted("permissions_config.toml")
        for n, cfg in configs.items():
            self.check_bootnodes(f"node{n}/config.toml", cfg, expected, allowlisted, own=n)
        return expected

    def allowlisted(self, rel):
        cfg = self.toml(rel)
        entries = cfg.get("nodes-allowlist") if cfg else None
        if not isinstance(entries, list):
            return None
        return {e.key() for e in map(parse_enode, entries) if e}

    def check_allowlists(self, rel, expected):
        cfg = self.toml(rel)
        if cfg is None:
            return
        entries = cfg.get("nodes-allowlist")
        if not isinstance(entries, list):
            self.fail(rel, "nodes-allowlist must be a list of enode URLs")
        else:
            found = set()
            for text in entries:
                e = parse_enode(text)
                if e is None:
                    self.fail(rel, f"nodes-allowlist entry {text!r} is not an enode URL")
                    continue
                n = self.match_enode(rel + " nodes-allowlist", e, expected)
                if n in found:
                    self.fail(rel, f"nodes-allowlist names node{n} twice")
                if n is not None:
                    found.add(n)
            for n in NODES:
                if n not in found and self.node_pub[n]:
                    self.fail(rel, f"nodes-allowlist lacks node{n}'s enode URL")
        accounts = cfg.get("accounts-allowlist")
        want = {self.owner_addr: "the owner", self.writer_addr: "the anchoring writer"}
        if not isinstance(accounts, list):
            self.fail(rel, "accounts-allowlist must be a list of addresses")
            return
        seen = set()
        for a in accounts:
            # Besu takes an address only with a lowercase 0x prefix.
            if not isinstance(a, str) or not ADDRESS_RE.match(a) or not a.startswith("0x"):
                self.fail(rel, f"accounts-allowlist entry {a!r} is not a 0x-prefixed address")
                continue
            a = a.lower()
            if a in seen:
                self.fail(rel, f"accounts-allowlist names {a} twice")
            seen.add(a)
            if a not in want:
                self.fail(rel, f"accounts-allowlist names {a}, which is neither the owner's nor the anchoring writer's address")
        for a, who in want.items():
            if a and a not in seen:
                self.fail(rel, f"accounts-allowlist lacks {who}'s address {a}")

    def check_compose(self):
        rel = "compose.yaml"
        text = self.read(rel)
        if text is None:
            return None
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as e:
            self.fail(rel, f"not YAML: {e}")
            return None
        services = doc.get("services") if isinstance(doc, dict) else None
        if not isinstance(services, dict):
            self.fail(rel, "no services")
            return None
        if set(services) != set(SERVICES):
            self.fail(rel, f"services must be exactly {', '.join(SERVICES)}, not {', '.join(services)}")
        network = (doc.get("networks") or {}).get("fhirledger")
        if not isinstance(network, dict):
            self.fail(rel, "the network fhirledger is not declared (with its ipam subnet)")
            network = {}
        ipam = ((network.get("ipam") or {}).get("config") or [{}])[0]
        try:
            subnet = ipaddress.ip_network(ipam.get("subnet"))
            dynamic = ipaddress.ip_network(ipam["ip_range"]) if ipam.get("ip_range") else None
        except (TypeError, ValueError):
            self.fail(rel, "networks.fhirledger.ipam.config[0].subnet must be a subnet")
            subnet = dynamic = None
        named_volumes = set((doc.get("volumes") or {}).keys())
        base = self.toml("compose/config.toml") or {}
        expected, configs, ips = {}, {}, {}
        for name, service in services.items():
            n = SERVICES.get(name)
            if n is None or not isinstance(service, dict):
                continue
            where = f"{rel} {name}"
            image = service.get("image")
            m = IMAGE_RE.match(image) if isinstance(image, str) else None
            if not m:
                self.fail(where, f"image {image!r} must be hyperledger/besu pinned to a version (X.Y.Z)")
            elif self.image and image != self.image:
                self.fail(where, f"image {image} differs from the other validators' {self.image}")
            else:
                self.image = image
            ip = ((service.get("networks") or {}).get("fhirledger") or {}).get("ipv4_address") if isinstance(service.get("networks"), dict) else None
            if not ip:
                self.fail(where, "must be on the network fhirledger at a fixed ipv4_address (enode URLs take addresses)")
            else:
                if ip in ips.values():
                    self.fail(where, f"ipv4_address {ip} is another validator's too")
                ips[n] = ip
                addr = ipaddress.ip_address(ip)
                if subnet and addr not in subnet:
                    self.fail(where, f"ipv4_address {ip} is outside the subnet {subnet}")
                if dynamic and addr in dynamic:
                    self.fail(where, f"ipv4_address {ip} is inside ip_range {dynamic}, where Docker hands out addresses")
            mounts = self.mounts(where, n, service, named_volumes)
            command = service.get("command")
            args = shlex.split(command) if isinstance(command, str) else list(command or [])
            overrides = {}
            for arg in args:
                if isinstance(arg, str) and arg.startswith("--") and "=" in arg:
                    k, v = arg[2:].split("=", 1)
                    overrides[k] = v
            config_target = overrides.pop("config-file", None)
            if mounts.get(config_target) != "compose/config.toml":
                self.fail(where, f"--config-file {config_target!r} must be where compose/config.toml is mounted")
            cfg = dict(base)
            for k, v in overrides.items():
                cfg[k] = int(v) if v.isdigit() else v
            configs[n] = cfg

            def container_path(p, mounts=mounts):
                return mounts.get(p)

            self.check_common(where, cfg, container_path, "compose/permissions_config.toml")
            key = cfg.get("node-private-key-file")
            if mounts.get(key) != f"node{n}/key":
                self.fail(where, f"node-private-key-file {key!r} must be where node{n}/key is mounted (it is {mounts.get(key) or 'nothing'})")
            data = cfg.get("data-path")
            if data not in mounts.named:
                self.fail(where, f"data-path {data!r} must be a named volume (writable, kept across restarts)")
            if cfg.get("p2p-host") != ip:
                self.fail(where, f"--p2p-host {cfg.get('p2p-host')!r} must be its ipv4_address {ip} (the address its enode URL names)")
            if cfg.get("rpc-http-host") != "0.0.0.0":
                self.fail(where, f"rpc-http-host must be 0.0.0.0 so other containers reach it, not {cfg.get('rpc-http-host')!r}")
            hosts = cfg.get("host-allowlist") or []
            if name not in hosts:
                self.fail(where, f"host-allowlist lacks {name}: http://{name}:… would be refused")
            for port in service.get("ports") or []:
                spec = str(port)
                parts = spec.split(":")
                if len(parts) != 3 or parts[0] != "127.0.0.1":
                    self.fail(where, f"port {spec!r} must be published on 127.0.0.1 only (no authentication on JSON-RPC)")
                elif parts[2] != str(cfg.get("rpc-http-port")):
                    self.fail(where, f"port {spec!r} publishes {parts[2]}, not its RPC port {cfg.get('rpc-http-port')}")
            expected[n] = (ip, cfg.get("p2p-port"))
        volumes_used = {}
        for n, cfg in configs.items():
            data = cfg.get("data-path")
            volume = self.volume_of.get((n, data))
            if volume and volume in volumes_used:
                self.fail(f"{rel} besu{n}", f"data volume {volume} is besu{volumes_used[volume]}'s too")
            elif volume:
                volumes_used[volume] = n
        if configs.get(1) and configs[1].get("rpc-http-port") != 8545:
            self.fail(f"{rel} besu1", "JSON-RPC must be at port 8545 (other services use http://besu1:8545)")
        self.compose_configs = configs
        allowlisted = self.allowlisted("compose/permissions_config.toml")
        for n, cfg in configs.items():
            # Shared config: every validator is a bootnode, itself included.
            self.check_bootnodes(f"{rel} besu{n} (compose/config.toml)", cfg, expected, allowlisted, own=None)
        return expected

    def mounts(self, where, n, service, named_volumes):
        """Container path -> file relative to the directory (bind mounts);
        .named holds the container paths of named volumes."""
        result = _Mounts()
        for v in service.get("volumes") or []:
            if isinstance(v, str):
                parts = v.split(":")
                source, target = parts[0], parts[1] if len(parts) > 1 else None
                read_only = len(parts) > 2 and "ro" in parts[2].split(",")
                bind = source.startswith((".", "/", "~"))
            elif isinstance(v, dict):
                source, target = v.get("source"), v.get("target")
                read_only = v.get("read_only") is True
                bind = v.get("type") == "bind"
            else:
                continue
            if not bind:
                if source not in named_volumes:
                    self.fail(where, f"volume {source} is not declared under volumes")
                result.named.add(target)
                self.volume_of[(n, target)] = source
                continue
            path = (self.root / source).resolve()
            if not path.is_file():
                self.fail(where, f"mounts {source}, which does not exist (Docker would mount an empty directory)")
                continue
            if not read_only:
                self.fail(where, f"mounts {source} writable: configuration and keys are mounted read-only (:ro)")
            try:
                result[target] = path.relative_to(self.root.resolve()).as_posix()
            except ValueError:
                result[target] = str(path)
        return result

    def check_network_env(self):
        rel = "network.env"
        text = self.read(rel)
        if text is None:
            return
        env, comments = {}, {}
        for line in text.splitlines():
            line = line.strip()
            if not line:
                continue
            if line.startswith("#"):
                m = re.match(r"#\s*(contract owner|anchoring writer):\s*(0x[0-9a-fA-F]{40})\b", line)
                if m:
                    comments[m.group(1)] = m.group(2).lower()
                continue
            if "=" not in line:
                self.fail(rel, f"{line!r} is not KEY=value")
                continue
            k, v = line.split("=", 1)
            env[k.strip()] = v.strip()
        chain_id = env.get("FHIRLEDGER_CHAIN_ID")
        if chain_id is None:
            self.fail(rel, "FHIRLEDGER_CHAIN_ID is not set")
        elif self.chain_id is not None and chain_id != str(self.chain_id):
            self.fail(rel, f"FHIRLEDGER_CHAIN_ID={chain_id}, but genesis.json's chainId is {self.chain_id}")
        contract = env.get("FHIRLEDGER_ANCHOR_CONTRACT")
        if contract is None:
            self.fail(rel, "FHIRLEDGER_ANCHOR_CONTRACT is not set")
        elif self.contract and contract.lower() != self.contract:
            self.fail(rel, f"FHIRLEDGER_ANCHOR_CONTRACT={contract}, but the owner's first deployment (nonce 0) creates {self.contract}")
        for who, mine in (("contract owner", self.owner_addr), ("anchoring writer", self.writer_addr)):
            if who not in comments:
                self.fail(rel, f"no '# {who}: 0x…' comment")
            elif mine and comments[who] != mine:
                self.fail(rel, f"the {who} comment names {comments[who]}, but the key's address is {mine}")
        if env.get("FHIRLEDGER_CHAIN_GAS_PRICE", "0") != "0":
            self.fail(rel, "FHIRLEDGER_CHAIN_GAS_PRICE must be 0: the accounts hold no ether")
        url = env.get("FHIRLEDGER_CHAIN_RPC_URL")
        if url is not None:
            parts = urlsplit(url)
            n = SERVICES.get(parts.hostname or "")
            cfg = self.compose_configs.get(n)
            if parts.scheme != "http" or n is None:
                self.fail(rel, f"FHIRLEDGER_CHAIN_RPC_URL={url} must be http:// one of the compose validators")
            elif cfg is not None and parts.port != cfg.get("rpc-http-port"):
                self.fail(rel, f"FHIRLEDGER_CHAIN_RPC_URL={url}, but besu{n}'s RPC port is {cfg.get('rpc-http-port')}")

    def check_readme(self):
        rel = "README.md"
        if not (self.root / rel).exists():
            return
        text = self.read(rel) or ""
        known = {a for a in [*self.node_addr.values(), self.owner_addr, self.writer_addr, self.contract] if a}
        for a in sorted(set(re.findall(r"0x[0-9a-fA-F]{40}(?![0-9a-fA-F])", text))):
            if a.lower() not in known:
                self.fail(rel, f"names {a}, which is no address of this network (stale?)")
        if self.chain_id is not None and not re.search(rf"\b{self.chain_id}\b", text):
            self.fail(rel, f"does not mention the chain id {self.chain_id}")
        for image in sorted(set(re.findall(r"hyperledger/besu:[\w.-]+", text))):
            if self.image and image != self.image:
                self.fail(rel, f"names {image}, but compose.yaml runs {self.image}")

    def summary(self):
        name = "deploy/besu" if self.root == HERE else str(self.root)
        return (
            f"{name} is consistent: chain id {self.chain_id}; validators "
            + ", ".join(self.node_addr[n] for n in NODES)
            + f"; owner {self.owner_addr}; anchoring writer {self.writer_addr}; contract {self.contract}; {self.image}"
        )


class _Mounts(dict):
    def __init__(self):
        super().__init__()
        self.named = set()


def _hex_int(value):
    try:
        return int(value, 16) if isinstance(value, str) and value.lower().startswith("0x") else None
    except ValueError:
        return None


def _hex_is(value, want):
    return _hex_int(value) == want


def _hex_at_least(value, minimum):
    v = _hex_int(value)
    return v is not None and v >= minimum


def check(root: Path):
    c = Check(root)
    return c.run(), c


# ---- self-test -----------------------------------------------------------------


def _replace(path: Path, old: str, new: str, count: int = 1):
    text = path.read_text()
    if old not in text:
        raise AssertionError(f"mutation: {old!r} not found in {path.name}")
    path.write_text(text.replace(old, new, count))


def _replace_ci(path: Path, old: str, new: str):
    text, n = re.subn(re.escape(old), new, path.read_text(), count=1, flags=re.IGNORECASE)
    if n != 1:
        raise AssertionError(f"mutation: {old!r} not found in {path.name}")
    path.write_text(text)


def _fresh_key_text():
    import secrets

    return "0x" + keys.PrivateKey(secrets.token_bytes(32)).to_bytes().hex() + "\n"


def _genesis_edit(d: Path, edit):
    path = d / "genesis.json"
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc, indent=2) + "\n")


def _extra_data_edit(d: Path, edit):
    def change(doc):
        items = rlp.decode(bytes.fromhex(doc["extraData"][2:]))
        edit(items)
        doc["extraData"] = "0x" + rlp.encode(items).hex()

    _genesis_edit(d, change)


def _swap_validators(items):
    items[1][0], items[1][1] = items[1][1], items[1][0]


def _address_of(d: Path, rel: str) -> str:
    return keys.PrivateKey(bytes.fromhex((d / rel).read_text().strip()[2:])).public_key.to_address()


def _mutations(root: Path):
    """(what, how, a word the check's report must contain)."""
    readme = [
        ("a stale address in the README", lambda d: (d / "README.md").write_text((d / "README.md").read_text() + "\n0x" + "12" * 20 + "\n"), "README.md"),
    ] if (root / "README.md").exists() else []
    return readme + [
        ("swap two validators in extraData", lambda d: _extra_data_edit(d, _swap_validators), "another order"),
        ("drop a validator from extraData", lambda d: _extra_data_edit(d, lambda i: i[1].pop()), "does not name node4"),
        ("a vote in extraData", lambda d: _extra_data_edit(d, lambda i: i.__setitem__(2, [b"\x11" * 20, b"\x81"])), "vote"),
        ("a non-zero round in extraData", lambda d: _extra_data_edit(d, lambda i: i.__setitem__(3, b"\x01")), "round"),
        ("replace the anchoring writer in the accounts allowlist",
         lambda d: _replace_ci(d / "permissions_config.toml", '"' + _address_of(d, "keys/anchor-writer.key") + '"', '"0x' + "ab" * 20 + '"'),
         "accounts-allowlist"),
        ("replace node2's key", lambda d: (d / "node2/key").write_text(_fresh_key_text()), "node2"),
        ("replace the owner's key", lambda d: (d / "keys/owner.key").write_text(_fresh_key_text()), "FHIRLEDGER_ANCHOR_CONTRACT"),
        ("replace the anchoring writer's key", lambda d: (d / "keys/anchor-writer.key").write_text(_fresh_key_text()), "anchoring writer"),
        ("owner and writer share a key", lambda d: shutil.copy(d / "keys/owner.key", d / "keys/anchor-writer.key"), "same key"),
        ("a key file of two lines", lambda d: (d / "node4/key").write_text((d / "node4/key").read_text() + "\n"), "one line"),
        ("change the chain id in network.env", lambda d: _replace(d / "network.env", "FHIRLEDGER_CHAIN_ID=", "FHIRLEDGER_CHAIN_ID=1"), "FHIRLEDGER_CHAIN_ID"),
        ("change the chain id in genesis.json", lambda d: _genesis_edit(d, lambda g: g["config"].__setitem__("chainId", 31337)), "chainId"),
        ("change the contract in network.env",
         lambda d: _replace(d / "network.env", "FHIRLEDGER_ANCHOR_CONTRACT=0x", "FHIRLEDGER_ANCHOR_CONTRACT=0x" + "0" * 40 + "#"),
         "FHIRLEDGER_ANCHOR_CONTRACT"),
        ("name another writer in network.env",
         lambda d: _replace(d / "network.env", "# anchoring writer: 0x", "# anchoring writer: 0x" + "cd" * 20 + " #"), "anchoring writer"),
        ("change node3's p2p port", lambda d: _replace(d / "node3/config.toml", "p2p-port=30305", "p2p-port=30315"), "node3 listens at 127.0.0.1:30315"),
        ("change a port in the nodes allowlist", lambda d: _replace(d / "permissions_config.toml", "@127.0.0.1:30306", "@127.0.0.1:30316"), "nodes-allowlist"),
        ("two nodes on one RPC port", lambda d: _replace(d / "node2/config.toml", "rpc-http-port=8546", "rpc-http-port=8545"), "rpc-http-port"),
        ("a bootnode with an unknown key", _foreign_bootnode, "public key of no node key"),
        ("zeroBaseFee off", lambda d: _genesis_edit(d, lambda g: g["config"].__setitem__("zeroBaseFee", False)), "zeroBaseFee"),
        ("5-second blocks", lambda d: _genesis_edit(d, lambda g: g["config"]["qbft"].__setitem__("blockperiodseconds", 5)), "blockperiodseconds"),
        ("node4 with a minimum gas price", lambda d: _replace(d / "node4/config.toml", "min-gas-price=0\n", "min-gas-price=1000\n"), "min-gas-price"),
        ("node1 without account permissioning",
         lambda d: _replace(d / "node1/config.toml", "permissions-accounts-config-file-enabled=true", "permissions-accounts-config-file-enabled=false"),
         "permissions-accounts-config-file-enabled"),
        ("the compose file mounts a missing key", lambda d: _replace(d / "compose.yaml", "./node2/key:", "./node2/key.missing:"), "does not exist"),
        ("the compose file mounts a key writable", lambda d: _replace(d / "compose.yaml", "./node3/key:/config/key:ro", "./node3/key:/config/key"), "writable"),
        ("the compose file gives besu2 node3's key", lambda d: _replace(d / "compose.yaml", "./node2/key:", "./node3/key:"), "node2/key"),
        ("the compose containers use the loopback allowlist",
         lambda d: _replace(d / "compose.yaml", "./compose/permissions_config.toml:", "./permissions_config.toml:", 4), "permissions-nodes-config-file"),
        ("move besu3 to another address", lambda d: _replace(d / "compose.yaml", "ipv4_address: 172.30.15.13", "ipv4_address: 172.30.15.23"), "besu3"),
        ("an unpinned image", lambda d: _replace(d / "compose.yaml", "image: hyperledger/besu:", "image: hyperledger/besu:latest#"), "image"),
        ("RPC published on every interface", lambda d: _replace(d / "compose.yaml", '"127.0.0.1:8545:8545"', '"8545:8545"'), "127.0.0.1 only"),
        ("besu1 not reachable by name", lambda d: _replace(d / "compose/config.toml", '"besu1",', ""), "host-allowlist lacks besu1"),
    ]


def _foreign_bootnode(d: Path):
    # A well-formed enode URL whose key is no validator's.
    path = d / "node1/config.toml"
    text, n = re.subn(r'"enode://[0-9a-f]{128}@', '"enode://' + "ee" * 64 + "@", path.read_text(), count=1)
    if n != 1:
        raise AssertionError("no bootnode in node1/config.toml")
    path.write_text(text)


def _known_answers():
    """The primitives against published values, so a library change that
    broke them could not make wrong files look consistent."""
    failures = []
    # Private key 1 -> its well-known address.
    if keys.PrivateKey((1).to_bytes(32, "big")).public_key.to_address() != "0x7e5f4552091a69125d5dfcb7b8c2659029395bdf":
        failures.append("address of private key 1")
    # The CREATE address example of the Ethereum yellow-paper era, nonce 0 and 1.
    sender = bytes.fromhex("6ac7ea33f8831ea9dcc53393aaa88b25a785dbf0")
    if contract_address(sender, 0) != "0xcd234a471b72ba2f1ccf0a70fcaba648a5eecd8d" or contract_address(sender, 1) != "0x343c43a37d37dff08ae8c4a11544c718abb4fcf8":
        failures.append("contract address of (sender, nonce)")
    # Besu's QBFT documentation: the extraData of its four-validator example.
    doc = bytes.fromhex(
        "f87aa00000000000000000000000000000000000000000000000000000000000000000f854944592c8e45706cc08b8f44b11e43cba0cfc5892cb94"
        "06e23768a0f59cf365e18c2e0c89e151bcdedc7094c5327f96ee02d7bcbc1bf1236b8c15148971e1de94ab5e7f4061c605820d3744227eed91ff8e2c8908c080c0"
    )
    validators = ["4592c8e45706cc08b8f44b11e43cba0cfc5892cb", "06e23768a0f59cf365e18c2e0c89e151bcdedc70", "c5327f96ee02d7bcbc1bf1236b8c15148971e1de", "ab5e7f4061c605820d3744227eed91ff8e2c8908"]
    if rlp.encode([b"\x00" * 32, [bytes.fromhex(v) for v in validators], [], b"", []]) != doc:
        failures.append("QBFT extraData encoding (Besu's documented example)")
    return failures


def self_test(root: Path) -> int:
    failures = [f"known answer: {f}" for f in _known_answers()]
    with tempfile.TemporaryDirectory(prefix="besu-check-selftest-") as tmp:
        base = Path(tmp) / "intact"
        shutil.copytree(root, base, ignore=shutil.ignore_patterns("data", "__pycache__", "*.log"))
        problems, _ = check(base)
        if problems:
            print("self-test: the intact copy does not pass, so no mutation can be judged:", file=sys.stderr)
            for p in problems:
                print(f"  - {p}", file=sys.stderr)
            return 1
        mutations = _mutations(base)
        for i, (what, mutate, expect) in enumerate(mutations):
            d = Path(tmp) / f"m{i}"
            shutil.copytree(base, d)
            try:
                mutate(d)
            except Exception as e:
                failures.append(f"{what}: could not apply ({e!r})")
                continue
            problems, _ = check(d)
            if not problems:
                failures.append(f"{what}: not reported")
            elif not any(expect in p for p in problems):
                failures.append(f"{what}: reported, but nothing mentions {expect!r}: {problems}")
        # The command line as well: exit 1, the problem named on stdout.
        d = Path(tmp) / "cli"
        shutil.copytree(base, d)
        _replace(d / "network.env", "FHIRLEDGER_CHAIN_ID=", "FHIRLEDGER_CHAIN_ID=7")
        run = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--dir", str(d)], capture_output=True, text=True)
        if run.returncode != 1 or "FHIRLEDGER_CHAIN_ID" not in run.stdout:
            failures.append(f"command line: exit {run.returncode}, output {run.stdout!r} {run.stderr!r}")
        run = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--dir", str(base)], capture_output=True, text=True)
        if run.returncode != 0 or len(run.stdout.splitlines()) != 1:
            failures.append(f"command line on the intact copy: exit {run.returncode}, output {run.stdout!r} {run.stderr!r}")
    if failures:
        print(f"self-test: {len(failures)} failures:", file=sys.stderr)
        for f in failures:
            print(f"  - {f}", file=sys.stderr)
        return 1
    print(f"self-test: {len(mutations)} corruptions each reported, known answers hold, command line exits 0/1")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, default=HERE, help="the network directory (default: this script's)")
    parser.add_argument("--self-test", action="store_true", help="prove the check catches corruptions of a copy of --dir")
    args = parser.parse_args()
    root = args.dir.resolve()
    if args.self_test:
        return self_test(root)
    problems, c = check(root)
    if problems:
        print(f"{root}: {len(problems)} inconsistenc{'y' if len(problems) == 1 else 'ies'}:")
        for p in problems:
            print(f"  - {p}")
        return 1
    print(c.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
