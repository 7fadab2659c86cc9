// Compile contracts/OneToken.sol with solc-js (npm `solc`, pinned) against npm `@openzeppelin/contracts`
// (pinned) and write the artifact: {contractName, abi, bytecode, deployedBytecode, compiler}.
//
//   node compile.mjs [output.json]     (default: artifacts/OneToken.json)
//
// Settings are fixed (optimizer on, 200 runs, evmVersion cancun) and sources are addressed by stable
// relative names, so the output is byte-for-byte reproducible; tests/unit/test_contract_artifact.py checks it.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const solc = require("solc");

const HERE = dirname(fileURLToPath(import.meta.url));
const CONTRACT = "OneToken";
const SOURCE = `${CONTRACT}.sol`;
const SETTINGS = {
  optimizer: { enabled: true, runs: 200 },
  evmVersion: "cancun",
  metadata: { bytecodeHash: "ipfs" },
};

function findImport(path) {
  // Only package imports are allowed; they resolve inside this folder's node_modules.
  if (!path.startsWith("@openzeppelin/")) return { error: `import not allowed: ${path}` };
  try {
    return { contents: readFileSync(join(HERE, "node_modules", path), "utf8") };
  } catch (err) {
    return { error: `cannot read ${path}: ${err.message}` };
  }
}

const input = {
  language: "Solidity",
  sources: { [SOURCE]: { content: readFileSync(join(HERE, SOURCE), "utf8") } },
  settings: {
    ...SETTINGS,
    outputSelection: { [SOURCE]: { [CONTRACT]: ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
  },
};

const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImport }));
const errors = (output.errors ?? []).filter((e) => e.severity === "error");
for (const e of output.errors ?? []) process.stderr.write(`${e.formattedMessage ?? e.message}\n`);
if (errors.length > 0) process.exit(1);

const compiled = output.contracts[SOURCE][CONTRACT];
const artifact = {
  contractName: CONTRACT,
  abi: compiled.abi,
  bytecode: `0x${compiled.evm.bytecode.object}`,
  deployedBytecode: `0x${compiled.evm.deployedBytecode.object}`,
  compiler: { version: solc.version(), settings: SETTINGS },
};

const target = resolve(process.argv[2] ?? join(HERE, "artifacts", `${CONTRACT}.json`));
mkdirSync(dirname(target), { recursive: true });
writeFileSync(target, `${JSON.stringify(artifact, null, 2)}\n`);
process.stdout.write(`wrote ${target}\n`);
