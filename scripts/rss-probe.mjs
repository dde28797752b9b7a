// Loaded with `node --import`: on exit, prints this process's own peak RSS (children not
// included), so a benchmark can tell gsync-ctl's memory from that of the git it runs.
process.on('exit', () => process.stderr.write(`SELF_RSS_KB=${process.resourceUsage().maxRSS}\n`));
