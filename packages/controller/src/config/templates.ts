/**
 * What `gsync-ctl init` writes: files that load as they are (no node, no project yet) and
 * show every field commented out, with its default. A line of example JSON is commented with
 * "// " and a line of prose with "// " followed by a letter, so uncommenting the examples
 * gives a config that loads (the tests do exactly that).
 */

export const NODES_TEMPLATE = `// gsync nodes: the machines that run agents, and settings shared by every project.
// JSON with comments. A field left out takes its default, shown here commented out.
// Add a node with "gsync-ctl node add NAME --host HOST"; it keeps these comments.
{
  "nodes": [
    // An SSH node: only "name" and "host" are needed.
    // {
    //   "name": "gpu-1",                        // letters, digits, ".", "_" or "-"
    //   "transport": "ssh",                     // or "local": a folder on this machine plays the node (demos, tests)
    //   "host": "10.0.0.7",                     // host name, IP, or an alias from ~/.ssh/config (resolved with ssh -G)
    //   "port": 22,                             // port, user and identity_file override what the ssh config says
    //   "user": "alice",
    //   "identity_file": "~/.ssh/id_ed25519",
    //   "known_hosts": "~/.ssh/known_hosts",    // the host key is checked against this file (default: the ssh config's)
    //   "work_root": "~/dispatch",              // where task dirs go on the node (~ is the node user's home)
    //   "node_bin": "node",                     // the Node.js 18+ binary on the node
    //   "agent": "claude",                      // an argv list, or a profile from "agents" (default: claude -p {spec})
    //   "agent_timeout_seconds": 3600,          // the agent's process group is killed after this (default: the top-level value)
    //   "max_parallel": 4,                      // agents running at once on the node; more wait there, queued
    //   "connect_timeout_seconds": 20,          // SSH handshake timeout
    //   "keepalive_seconds": 15,                // three unanswered keepalives end a stalled connection
    //   "answer_timeout_seconds": 300,          // a node command that sends nothing for this long is ended
    //   "stale_after_seconds": 21600            // this node's tasks turn stale after this long unanswered (default: the top-level value)
    // },
    // A local node; its home defaults to nodes/<name> in this folder.
    // { "name": "scratch", "transport": "local", "home": "nodes/scratch" },
  ],

  // Named agent argv lists: {spec} is replaced by the spec's text, {spec_file} by its path.
  // The profiles "claude" and "codex" are built in, and may be redefined here.
  // "agents": { "codex": ["codex", "exec", "--full-auto", "{spec}"] },

  // "git_config": {
  //   "default_sync_mode": "bundle",            // for projects that name none: "bundle" (over SSH), "git" (a shared remote) or "scp" (plain files)
  //   "branch_prefix": "task/",                 // task branches are <prefix><project>-<task_id>-<node>
  //   "auto_cleanup_branches": false,           // delete a task's branch right after its merge
  //   "conflict_handler": "codex",              // agent (profile or argv) that resolves conflicts (default: none)
  //   "github_org": "my-org"                    // git mode without repo_url: the remote is git@github.com:<org>/<project>.git
  // },

  // "ssh_config": "~/.ssh/config",              // the ssh config hosts are resolved with (ssh -F)
  // "agent_timeout_seconds": 3600,              // the agent timeout of nodes and projects that set none
  // "stale_after_seconds": 21600,               // a running task whose node has not answered for this long turns stale
  // "max_result_bytes": 2147483648,             // largest result bundle accepted (2 GiB)
  // "max_blob_bytes": 104857600,                // largest single file a result may add (100 MiB)
  // "max_result_paths": 100000,                 // most paths a result may change
  // "max_result_commits": 10000,                // most commits a result may carry
  // "transfer_retries": 3,                      // tries again, with backoff, for a cut or stalled transfer
  // "retention_days": 30,                       // cleanup drops events older than this
  // "alert_command": ["logger", "-t", "gsync"], // argv (no shell) run with each alert as one JSON line on stdin (default: none)
  // "github_token_env": "GITHUB_TOKEN",         // an https:// shared remote: the variable holding its token, here and on each node
  // "secrets": {                                // added to the built-in secret rules (see the README's Security section)
  //   "deny_paths": ["config/prod/**"],         // globs of paths that never travel
  //   "allow_paths": ["test/fixtures/**"],      // globs exempt from every check
  //   "deny_patterns": ["sk_live_[0-9A-Za-z]{24}"] // regexes of secret content
  // },
}
`;

export const PROJECTS_TEMPLATE = `// gsync projects: each key is a project's name, its value where the repository is and how tasks travel.
// JSON with comments. A field left out takes its default, shown here commented out.
// Add a project with "gsync-ctl project add NAME --repo PATH"; it keeps these comments.
{
  // "web": {
  //   "repo_local": "~/src/web",               // the repository on this machine (the only field needed)
  //   "main_branch": "main",                   // tasks start from it and merge into it
  //   "sync_mode": "bundle",                   // "bundle", "git" or "scp" (default: nodes.json's git_config.default_sync_mode)
  //   "repo_url": "git@github.com:me/web.git", // the shared remote of "git" mode, without credentials in it
  //   "agent": "claude",                       // as for nodes; the project's wins over the node's
  //   "agent_timeout_seconds": 3600,
  //   "verify_command": ["pnpm", "test"],      // the test gate: run in a throw-away checkout of each merge before main moves
  //   "verify_timeout_seconds": 1800,
  //   "verify_isolation": "sandbox",           // "sandbox" (bubblewrap) or "none" (runs with your rights)
  //   "verify_readonly_paths": ["~/.nvm"],     // what the sandboxed test gate may read besides the system
  //   "conflict_handler": "codex",             // agent that resolves this project's conflicts (default: git_config's)
  //   "secrets": { "deny_paths": ["*.pem"] }   // added to nodes.json's secrets for this project
  // },
}
`;
