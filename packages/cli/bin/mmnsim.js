#!/usr/bin/env node
// The `mmnsim` command: runs the built CLI (packages/cli/dist) and exits with its status.
import { main } from '../dist/index.js';

// `mmnsim ... | head` closes the pipe early: that is not an error.
process.stdout.on('error', (e) => {
  if (e.code === 'EPIPE') process.exit(0);
  throw e;
});
process.exitCode = await main(process.argv.slice(2));
