// An independent implementation of fhirledger's Merkle log (RFC 9162 tree
// shape, Keccak-256 from ethers), written from the RFC and the leaf format in
// the README, sharing no code with the server's fhirledger-merkle crate. The
// Rust tests hand it what the server stored or answered and compare.
//
//   node merkle.mjs root < {"leaves": ["<leaf data hex>", ...]}
//     -> {"root": "0x…", "leafHashes": ["0x…", ...]}
//   node merkle.mjs leaf < {"leafData": "<hex>"}
//     -> {"kind": 1|2, "resourceType", "id", "versionId", "contentSha256", "recordedMicros", "salt"}
import { readFileSync } from "node:fs";
import { concat, getBytes, hexlify, keccak256, toUtf8String } from "ethers";

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
  default:
    throw new Error(`unknown command ${process.argv[2]}`);
}
process.stdout.write(JSON.stringify(out));
