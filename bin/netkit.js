#!/usr/bin/env node
// netkit's executable: run the CLI and hand its status to Node; every socket closes, so Node exits.
import module from 'node:module';

// Node 22.1+ can cache compiled code between runs (a no-op on Node 20): start-up is part of the product.
module.enableCompileCache?.();

const { main } = await import('../dist/netkit.js');
process.exitCode = await main(process.argv.slice(2));
