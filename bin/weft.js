#!/usr/bin/env node
// The published entry point: the compiled CLI. `npm install` builds dist/ through `prepare`.
import { main } from '../dist/cli/main.js';

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error) => {
    // main() catches everything it knows; reaching here is a bug in weft itself.
    console.error(error);
    process.exitCode = 70;
  },
);
