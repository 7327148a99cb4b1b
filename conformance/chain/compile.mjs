#!/usr/bin/env node
// Compiles adapters/chain/contracts/AuditAnchor.sol with solc-js (the exact
// version pinned in package-lock.json, which must equal the contract's
// pragma) and writes AuditAnchor.abi.json and AuditAnchor.bin beside it.
//
//   node conformance/chain/compile.mjs          writes the artifacts
//   node conformance/chain/compile.mjs --check  exits 1 when the committed
//                                               artifacts differ
//
// The settings are fixed so the output is reproducible:
// - optimizer on, 200 runs;
// - evmVersion "paris": the last fork before PUSH0 (Shanghai), MCOPY and
//   transient storage (Cancun). A Besu QBFT network only runs opcodes of the
//   forks its genesis enables, and permissioned networks often stay on a
//   pre-Shanghai milestone (shanghaiTime unset), where PUSH0 is an invalid
//   opcode; anvil (any recent hardfork) runs paris bytecode as well. The
//   contract needs nothing newer.
// - metadata.bytecodeHash "none": no IPFS/Swarm hash of the metadata (which
//   would change with comments and paths) in the bytecode; only solc's
//   version remains in its CBOR tail.
import { readFileSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import solc from 'solc'

const here = dirname(fileURLToPath(import.meta.url))
const contracts = resolve(here, '../../adapters/chain/contracts')
const name = 'AuditAnchor'
const sourceFile = `${name}.sol`
const abiPath = join(contracts, `${name}.abi.json`)
const binPath = join(contracts, `${name}.bin`)
const check = process.argv.includes('--check')

const source = readFileSync(join(contracts, sourceFile), 'utf8')
const pragma = /pragma solidity (\d+\.\d+\.\d+);/.exec(source)?.[1]
const version = solc.version().split('+')[0]
if (pragma !== version) {
  console.error(`${sourceFile} pins solc ${pragma}, but the installed solc is ${version} (npm ci in conformance/chain)`)
  process.exit(1)
}

const input = {
  language: 'Solidity',
  sources: { [sourceFile]: { content: source } },
  settings: {
    optimizer: { enabled: true, runs: 200 },
    evmVersion: 'paris',
    metadata: { bytecodeHash: 'none' },
    outputSelection: { [sourceFile]: { [name]: ['abi', 'evm.bytecode.object'] } },
  },
}
const output = JSON.parse(solc.compile(JSON.stringify(input)))
let failed = false
for (const diagnostic of output.errors ?? []) {
  console.error(diagnostic.formattedMessage)
  if (diagnostic.severity === 'error') failed = true
}
if (failed) process.exit(1)

const compiled = output.contracts[sourceFile][name]
const abi = JSON.stringify(compiled.abi, null, 2) + '\n'
const bin = compiled.evm.bytecode.object + '\n'

if (check) {
  const stale = []
  for (const [path, fresh] of [[abiPath, abi], [binPath, bin]]) {
    let committed = ''
    try { committed = readFileSync(path, 'utf8') } catch { /* missing counts as stale */ }
    if (committed !== fresh) stale.push(path)
  }
  if (stale.length) {
    console.error(`out of date with ${sourceFile} (solc ${version}): ${stale.join(', ')}\nrun: node conformance/chain/compile.mjs`)
    process.exit(1)
  }
  console.log(`${name}: ABI and bytecode match solc ${version} output`)
} else {
  writeFileSync(abiPath, abi)
  writeFileSync(binPath, bin)
  console.log(`${name}: wrote ${abiPath} and ${binPath} (${(bin.length - 1) / 2} bytes of init code, solc ${version})`)
}
