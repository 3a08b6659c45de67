// Validate one glTF/GLB read from stdin with the Khronos glTF-Validator (npm `gltf-validator`).
// Prints one JSON object on stdout: {"ok": true, "report": <validator report>} or
// {"ok": false, "reason": "..."} when the input is not glTF at all (the validator refused to parse it).
// Exit codes: 0 = a report or a refusal was printed; 3 = the validator module cannot be loaded.
// node_modules is resolved from the repository root (two levels above this file), whatever the cwd is.
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const require = createRequire(path.join(repoRoot, 'package.json'));

let validator;
try {
  validator = require('gltf-validator');
} catch (err) {
  process.stderr.write(`gltf-validator not found from ${repoRoot}: ${err.message}\n`);
  process.exit(3);
}

const maxIssues = Number(process.argv[2] || 100);

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const bytes = new Uint8Array(Buffer.concat(chunks));

try {
  const report = await validator.validateBytes(bytes, {
    maxIssues,
    // Uploads must be self-contained: any external URI is reported by the validator as an IO error.
    externalResourceFunction: (uri) => Promise.reject(`external resource not allowed: ${uri}`),
  });
  process.stdout.write(JSON.stringify({ ok: true, report }));
} catch (err) {
  process.stdout.write(JSON.stringify({ ok: false, reason: String(err) }));
}
