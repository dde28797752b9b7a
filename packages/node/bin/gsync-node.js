#!/usr/bin/env node
import '../dist/gsync-node.mjs';
