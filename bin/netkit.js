#!/usr/bin/env node
// netkit's executable: run the CLI and hand its status to Node; every socket closes, so Node exits.
import { main } from '../dist/netkit.js';

process.exitCode = await main(process.argv.slice(2));
