#!/usr/bin/env node
import '../dist/gsync-ctl.mjs';
