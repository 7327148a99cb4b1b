// An independent implementation of fhirledger's Merkle log (RFC 9162 tree
// shape, Keccak-256 from ethers), written from the RFC and the leaf format in
// the README, sharing no code with the server's fhirledger-merkle crate. The
// Rust tests hand it what the server stored or answered and compare.
//
//   node merkle.mjs root < {"leaves": ["<leaf data hex>", ...]}
//     -> {"root": "0x…", "leafHashes": ["0x…", ...]}
//   node merkle.mjs leaf < {"leafData": "<hex>"}
//     -> {"kind": 1|2, "resourceType", "id", "versionId", "contentSha256", "recordedMicros", "salt"}
//   node merkle.mjs inclusion < {"parameters": <$proof Parameters>, "rpcUrl": "http://…"}
//     -> {"leafHashOk", "pathOk", "onChainRoot", "rootOnChain"}: the path checked
//        with RFC 9162 §2.1.3.2 and the root read from the contract's rootAt
//   node merkle.mjs consistency < {"parameters": <$consistency Parameters>, "rpcUrl": "http://…"}
//     -> {"pathOk", "fromOnChain", "toOnChain"} (RFC 9162 §2.1.4.2)
import { readFileSync } from "node:fs";
import {
  Contract,
  JsonRpcProvider,
  concat,
  getBytes,
  hexlify,
  keccak256,
  toUtf8String,
} from "ethers";

const leafHash = (data) => keccak256(concat(["0x00", data]));
const nodeHash = (left, right) => keccak256(concat(["0x01", left, right]));

// RFC 9162 §2.1.1: MTH of n leaves splits at the largest power of two below n.
function root(hashes) {
  if (hashes.length === 0) return keccak256("0x");
  if (hashes.length === 1) return hashes[0];
  let k = 1;
  while (k * 2 < hashes.length) k *= 2;
  return nodeHash(root(hashes.slice(0, k)), root(hashes.slice(k)));
}

// The leaf encoding, version 1: 0x01, kind, three u16-prefixed UTF-8 strings,
// the content SHA-256, the recorded time (i64 µs), the salt.
function decodeLeaf(hex) {
  const b = getBytes(hex);
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (b[0] !== 1) throw new Error(`unknown leaf format ${b[0]}`);
  let at = 2;
  const text = () => {
    const n = view.getUint16(at);
    const s = toUtf8String(b.subarray(at + 2, at + 2 + n));
    at += 2 + n;
    return s;
  };
  const resourceType = text();
  const id = text();
  const versionId = text();
  const contentSha256 = hexlify(b.subarray(at, at + 32));
  at += 32;
  const recordedMicros = view.getBigInt64(at).toString();
  at += 8;
  const salt = hexlify(b.subarray(at, at + 32));
  at += 32;
  if (at !== b.length) throw new Error("trailing bytes after the salt");
  return { kind: b[1], resourceType, id, versionId, contentSha256, recordedMicros, salt };
}

// RFC 9162 §2.1.3.2: the root an inclusion path leads to.
function inclusionRoot(index, size, leaf, path) {
  let fn = BigInt(index);
  let sn = BigInt(size) - 1n;
  if (fn > sn) throw new Error("index beyond size");
  let r = leaf;
  for (const p of path) {
    if (sn === 0n) return null;
    if ((fn & 1n) === 1n || fn === sn) {
      r = nodeHash(p, r);
      if ((fn & 1n) === 0n) {
        while ((fn & 1n) === 0n && fn !== 0n) {
          fn >>= 1n;
          sn >>= 1n;
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  return sn === 0n ? r : null;
}

// RFC 9162 §2.1.4.2: whether a consistency path proves root2 extends root1.
function consistencyOk(size1, size2, root1, root2, path) {
  let n1 = BigInt(size1);
  const n2 = BigInt(size2);
  if (n1 === n2) return path.length === 0 && root1 === root2;
  if (n1 === 0n || n1 > n2 || path.length === 0) return false;
  let p = [...path];
  if ((n1 & (n1 - 1n)) === 0n) p = [root1, ...p];
  let fn = n1 - 1n;
  let sn = n2 - 1n;
  while ((fn & 1n) === 1n) {
    fn >>= 1n;
    sn >>= 1n;
  }
  let fr = p[0];
  let sr = p[0];
  for (const c of p.slice(1)) {
    if (sn === 0n) return false;
    if ((fn & 1n) === 1n || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      if ((fn & 1n) === 0n) {
        while ((fn & 1n) === 0n && fn !== 0n) {
          fn >>= 1n;
          sn >>= 1n;
        }
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  return fr === root1 && sr === root2 && sn === 0n;
}

function param(parameters, name) {
  const p = parameters.parameter.find((x) => x.name === name);
  if (!p) throw new Error(`no parameter ${name}`);
  return p.valueDecimal ?? p.valueString;
}

function params(parameters, name) {
  return parameters.parameter.filter((x) => x.name === name).map((x) => x.valueString);
}

async function rootAt(rpcUrl, contract, size) {
  const provider = new JsonRpcProvider(rpcUrl, undefined, { staticNetwork: true });
  const anchor = new Contract(contract, ["function rootAt(uint64) view returns (bytes32)"], provider);
  const root = await anchor.rootAt(BigInt(size));
  provider.destroy();
  return root;
}

const input = JSON.parse(readFileSync(0, "utf8"));
let out;
switch (process.argv[2]) {
  case "root": {
    const leafHashes = input.leaves.map((l) => leafHash(getBytes("0x" + l.replace(/^0x/, ""))));
    out = { root: root(leafHashes), leafHashes };
    break;
  }
  case "leaf":
    out = decodeLeaf("0x" + input.leafData.replace(/^0x/, ""));
    break;
  case "inclusion": {
    const p = input.parameters;
    const leaf = leafHash(param(p, "leafData"));
    const root = inclusionRoot(param(p, "leafIndex"), param(p, "treeSize"), leaf, params(p, "path"));
    const onChainRoot = await rootAt(input.rpcUrl, param(p, "contract"), param(p, "treeSize"));
    out = {
      leafHashOk: leaf === param(p, "leafHash"),
      pathOk: root !== null && root === param(p, "root"),
      onChainRoot,
      rootOnChain: root !== null && root === onChainRoot,
    };
    break;
  }
  case "consistency": {
    const p = input.parameters;
    const from = param(p, "from");
    const to = param(p, "to");
    const fromRoot = await rootAt(input.rpcUrl, param(p, "contract"), from);
    const toRoot = await rootAt(input.rpcUrl, param(p, "contract"), to);
    out = {
      pathOk: consistencyOk(from, to, param(p, "fromRoot"), param(p, "toRoot"), params(p, "path")),
      fromOnChain: fromRoot === param(p, "fromRoot"),
      toOnChain: toRoot === param(p, "toRoot"),
    };
    break;
  }
  default:
    throw new Error(`unknown command ${process.argv[2]}`);
}
process.stdout.write(JSON.stringify(out));
