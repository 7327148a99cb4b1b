#!/usr/bin/env python3
"""One-shot chain provisioning for deploy/compose.yaml's `provision` service.

Makes the chain ready for `fhirledger serve` to anchor, and is safe to run at
every `docker compose up`:

1. waits until the node answers `eth_chainId` with FHIRLEDGER_CHAIN_ID and
   has produced a block;
2. if FHIRLEDGER_ANCHOR_CONTRACT holds no code, runs `fhirledger chain
   deploy` with the owner's key (FHIRLEDGER_CHAIN_KEY_FILE) -- but only after
   checking that the owner's next contract would land at exactly that address
   (CREATE address = keccak(rlp([owner, nonce]))), so a deployment never ends
   up somewhere the replicas are not configured to look;
3. if the writer account (derived from --writer-key-file) is not yet a writer
   of the contract, runs `fhirledger chain add-writer` with the owner's key.

Why Python: the binary has no command that prints the account of a key file
or the code at an address, and both need Keccak-256 (not hashlib's SHA3-256)
and secp256k1. They come from the pinned packages of
deploy/provision-requirements.txt (eth-keys, eth-utils, rlp, eth-hash with
pycryptodome), and `--self-test` checks them against known answers. Nothing
here signs: the transactions are sent by the fhirledger binary itself.

Every setting comes from the environment the `fhirledger chain` commands
read (FHIRLEDGER_CHAIN_RPC_URL, FHIRLEDGER_CHAIN_ID,
FHIRLEDGER_ANCHOR_CONTRACT, FHIRLEDGER_CHAIN_KEY_FILE), so the subcommands
started here see exactly what this script checked.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request

try:
    import rlp
    from eth_keys import keys
    from eth_utils import ValidationError, function_signature_to_4byte_selector, keccak
    from eth_utils import to_canonical_address, to_checksum_address
except ImportError as e:
    sys.exit(f"provision: the Python package {e.name} is missing: run it with "
             "deploy/provision-requirements.txt installed (deploy/README.md says how)")

# As the server reads a key file (adapters/chain/src/key.rs): one 0x-prefixed
# 32-byte hex key, whitespace around it ignored.
_KEY = re.compile(r"0[xX][0-9a-fA-F]{64}")


def address_of_key(text: str) -> str:
    """The account of a key file's text. No error repeats any of the text."""
    text = text.strip()
    if not _KEY.fullmatch(text):
        raise ValueError("a key file holds one 0x-prefixed 32-byte hex key")
    try:
        key = keys.PrivateKey(bytes.fromhex(text[2:]))
    except ValidationError:
        # eth-keys' message would show the key's value.
        raise ValueError("the key is out of secp256k1's range (zero or above the curve order)") from None
    return key.public_key.to_checksum_address()


def create_address(sender: str, nonce: int) -> str:
    """Where a contract created by `sender` at `nonce` lands: keccak(rlp([sender, nonce]))[12:]."""
    return to_checksum_address(keccak(rlp.encode([to_canonical_address(sender), nonce]))[12:])


def selector(signature: str) -> str:
    return function_signature_to_4byte_selector(signature).hex()


# --- JSON-RPC -----------------------------------------------------------------


class RpcError(Exception):
    pass


def rpc(url, method, params, timeout=10):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = json.load(response)
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise RpcError(f"{method}: {e}") from e
    if "error" in answer:
        raise RpcError(f"{method}: {answer['error']}")
    return answer["result"]


def wait_for_chain(url, chain_id, deadline):
    """Until the node reports our chain id and has a block past genesis."""
    last = None
    while True:
        try:
            reported = int(rpc(url, "eth_chainId", []), 16)
            if reported != chain_id:
                # A wrong network never fixes itself: stop at once.
                sys.exit(f"provision: {url} reports chain id {reported}, "
                         f"FHIRLEDGER_CHAIN_ID is {chain_id}")
            block = int(rpc(url, "eth_blockNumber", []), 16)
            if block > 0:
                return block
            last = "no block produced yet"
        except RpcError as e:
            last = str(e)
        if time.monotonic() > deadline:
            sys.exit(f"provision: the chain at {url} is not ready: {last}")
        time.sleep(2)


def fhirledger(*args):
    """Runs a `fhirledger chain ...` command; its JSON line on stdout."""
    done = subprocess.run(["fhirledger", *args], stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        sys.exit(f"provision: fhirledger {' '.join(args)} exited {done.returncode}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def env(name):
    value = os.environ.get(name, "").strip()
    if not value:
        sys.exit(f"provision: {name} is not set")
    return value


def provision(writer_key_file, timeout):
    url = env("FHIRLEDGER_CHAIN_RPC_URL")
    chain_id = int(env("FHIRLEDGER_CHAIN_ID"), 0)
    contract = env("FHIRLEDGER_ANCHOR_CONTRACT")
    try:
        contract = to_checksum_address(contract)
    except ValueError:
        sys.exit(f"provision: FHIRLEDGER_ANCHOR_CONTRACT is not an address: {contract}")
    with open(env("FHIRLEDGER_CHAIN_KEY_FILE")) as f:
        owner = address_of_key(f.read())
    with open(writer_key_file) as f:
        writer = address_of_key(f.read())

    block = wait_for_chain(url, chain_id, time.monotonic() + timeout)
    print(f"provision: chain {chain_id} at {url}, block {block}; owner {owner}, writer {writer}")

    if rpc(url, "eth_getCode", [contract, "latest"]) in ("0x", "0x0", ""):
        nonce = int(rpc(url, "eth_getTransactionCount", [owner, "latest"]), 16)
        lands = create_address(owner, nonce)
        if lands != contract:
            sys.exit(
                f"provision: no contract at {contract}, and deploying now (owner nonce {nonce}) "
                f"would create {lands} instead. network.env's FHIRLEDGER_ANCHOR_CONTRACT must be "
                f"where the owner's deployment lands (its first transaction on a fresh chain): "
                f"start from a fresh chain, or set the address the existing deployment printed."
            )
        deployed = fhirledger("chain", "deploy")
        if to_checksum_address(deployed["contract"]) != contract:
            sys.exit(f"provision: deployed at {deployed['contract']}, expected {contract}")
        print(f"provision: deployed AuditAnchor at {contract} (tx {deployed['tx']}, block {deployed['block']})")
    else:
        print(f"provision: AuditAnchor already at {contract}")

    call = {"to": contract, "data": "0x" + selector("isWriter(address)") + "0" * 24 + writer[2:].lower()}
    if int(rpc(url, "eth_call", [call, "latest"]) or "0x0", 16) == 1:
        print(f"provision: {writer} already anchors")
    else:
        added = fhirledger("chain", "add-writer", writer)
        print(f"provision: {writer} may anchor now (tx {added['tx']}, block {added['block']})")


def _expect(what, got, want):
    # Not `assert`: the checks must also run under `python -O`.
    if got != want:
        sys.exit(f"provision: self-test failed: {what} gave {got}, expected {want}")


def self_test():
    """Known answers for everything provision() computes, through the installed packages."""
    # Keccak-256 (Ethereum's, not SHA3-256), from the backend eth-hash picked.
    _expect("keccak256('')", keccak(b"").hex(),
            "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470")
    _expect("keccak256('The quick brown fox...')",
            keccak(b"The quick brown fox jumps over the lazy dog").hex(),
            "4d741b6f1eb29cb2a9b9911c82f56fa8d73b04959d3d9d222895df6c0b28aa15")
    _expect("selector", selector("transfer(address,uint256)"), "a9059cbb")
    # EIP-55's own example.
    _expect("EIP-55", to_checksum_address("0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed"),
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed")
    # anvil's first development account and its first two contracts.
    key = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
    account = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    _expect("the account of anvil's key 0", address_of_key(key), account)
    _expect("the account of a key file", address_of_key(f"  0X{key[2:].upper()}\n"), account)
    _expect("CREATE address, nonce 0", create_address(account, 0),
            "0x5FbDB2315678afecb367f032d93F642f64180aa3")
    _expect("CREATE address, nonce 1", create_address(account, 1),
            "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512")
    # Key files the server refuses are refused here too.
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141  # secp256k1's order
    for bad in ("", key[2:], key[:-2], key + "00", key[:-1] + "g", "0x" + "0" * 64, f"0x{n:064x}"):
        try:
            address_of_key(bad)
        except ValueError:
            continue
        sys.exit(f"provision: self-test failed: accepted the key file text {bad!r}")
    print("provision: self-test passed")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writer-key-file", help="key file of the account the replicas anchor with")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for the chain")
    parser.add_argument("--self-test", action="store_true", help="check the hashing and key code against known answers, then exit")
    parser.add_argument("--address-of", metavar="KEY_FILE",
                        help="print the account of a key file (for `chain add-writer`), then exit")
    args = parser.parse_args()
    if args.self_test:
        self_test()
        return
    if args.address_of:
        try:
            with open(args.address_of) as f:
                print(address_of_key(f.read()))
        except (OSError, ValueError) as e:
            sys.exit(f"provision: {args.address_of}: {e}")
        return
    if not args.writer_key_file:
        parser.error("--writer-key-file is required")
    try:
        provision(args.writer_key_file, args.timeout)
    except (RpcError, OSError, ValueError) as e:
        sys.exit(f"provision: {e}")


if __name__ == "__main__":
    main()
